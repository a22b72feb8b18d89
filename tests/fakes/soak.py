"""The fault soak (issue 6): an N-asset build through the in-process CLI against a host emulator
that injects seeded random faults (``Chaos``: 500s, 429s with Retry-After, connections dropped
after the host billed, timeouts, corrupt images), rerun with ``-k`` until every asset is built.
Shared by tests/test_fault_soak.py (which asserts) and benchmarks/fault_soak.py (which prints).

What it measures: builds needed, HTTP requests the host saw, the client's retries, each fault
injected, billed jobs, extra billed jobs (billed minus the jobs the assets needed) next to the
drops after billing on the submit route (the only fault that can bill twice on a host without an
idempotency key: the client cannot tell a dropped, billed submit from one that never arrived), and
wall time. Every output must decode and match the lock: a corrupt image never becomes an output.
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from assetbuild.api import default_provider_factory
from assetbuild.cli import Seams, cli
from assetbuild.store.imageinfo import inspect_image
from tests.fakes.apiframe import ApiframeEmulator
from tests.fakes.ark import ArkEmulator
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.fal import FalEmulator
from tests.fakes.replicate import ReplicateEmulator
from tests.fakes.server import Chaos

EMULATORS: dict[str, tuple[Any, str]] = {  # emulator, the billable submit's route
    "modelark": (ArkEmulator, "generate"),
    "volcengine": (lambda **kw: ArkEmulator(platform="volcengine", **kw), "generate"),
    "evolink": (EvolinkEmulator, "generate"),
    "atlascloud": (AtlasCloudEmulator, "generate"),
    "apiframe": (ApiframeEmulator, "submit"),
    "fal": (FalEmulator, "submit"),
    "replicate": (ReplicateEmulator, "create"),
}
IDEMPOTENT = {"apiframe"}  # hosts whose submits carry an idempotency key
KEY = "sk-soak-key"
# The smallest size every host takes for Seedream 4.0 (1280x720 = its minimum pixel count).
MANIFEST = """
[project]
provider = "h"

[providers.h]
type = "{host}"
base_url = "{url}"
api_key_env = "SOAK_KEY"
concurrency = 8
timeout_s = {timeout_s}
poll_interval_s = 0.01
max_attempts = 5

[defaults]
size = "1280x720"
"""


@dataclass
class SoakFigures:
    host: str
    assets: int
    builds: int = 0
    built: int = 0
    requests: int = 0
    retries: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    submit_drops: int = 0
    late_submits: int = 0  # submits that timed out though no timeout was injected (load): may be billed
    billed: int = 0
    extra_billed: int = 0
    outputs_ok: bool = False
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)  # each build's failed lines

    def line(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.injected.items()))
        return (f"{self.host:<10} {self.assets} assets, {self.builds} builds, {self.requests} requests, "
                f"{self.retries} retries, faults: {faults}; billed {self.billed}, extra billed {self.extra_billed} "
                f"(drops after billing on submit: {self.submit_drops}, late answers: {self.late_submits}), "
                f"{self.wall_s:.1f} s")


def run_soak(host: str, root: Path, *, assets: int = 200, seed: int = 6, max_builds: int = 15,
             timeout_s: float = 0.3, delay_s: float = 1.0, jobs: int = 8) -> SoakFigures:
    """Build ``assets`` assets on ``host`` under chaos until all are built (or ``max_builds``)."""
    make, submit = EMULATORS[host]
    figures = SoakFigures(host, assets)
    project, cache = root / "project", root / "cache"
    project.mkdir(parents=True)
    made: list[Any] = []

    def factory(name: str, config: Any, *, env: Any, clock: Any) -> Any:
        made.append(default_provider_factory(name, config, env=env, clock=clock))
        return made[-1]

    started = time.perf_counter()
    with make(api_key=KEY) as emu:
        emu.chaos = Chaos(seed=seed, delay_s=delay_s)
        body = MANIFEST.format(host=host, url=emu.base_url, timeout_s=timeout_s)
        body += "".join(f'\n[assets.a{i:03d}]\nprompt = "soak image {i}, a fox in a field"\n' for i in range(assets))
        (project / "assetbuild.toml").write_text(body, encoding="utf-8")
        seams = Seams(env={"SOAK_KEY": KEY, "ASSETBUILD_CACHE_DIR": str(cache)}, provider_factory=factory,
                      clock=FakeClock())
        runner = CliRunner()
        for _ in range(max_builds):
            figures.builds += 1
            result = runner.invoke(cli, ["-C", str(project), "build", "-k", "-j", str(jobs)], obj=seams,
                                   catch_exceptions=False)
            figures.failures += [line for line in result.output.splitlines() if line.startswith("failed")]
            if result.exit_code == 0:
                break
        figures.requests = len(emu.requests)
        figures.billed = emu.billed
        counts = emu.chaos.counts
        for route_counts in counts.values():
            for kind, n in route_counts.items():
                figures.injected[kind] = figures.injected.get(kind, 0) + n
        figures.submit_drops = counts.get(submit, {}).get("drop", 0)
        # A submit answered after the client gave up is as ambiguous as a drop, and may have been
        # billed. The injected timeouts never are; any other timed-out submit is the machine's load.
        timed_out = sum("timed out after the request was sent" in line for line in figures.failures)
        figures.late_submits = max(0, timed_out - counts.get(submit, {}).get("timeout", 0))
    figures.wall_s = time.perf_counter() - started
    figures.retries = sum(p._http.retries for p in made if getattr(p, "_http", None) is not None)
    for provider in made:
        provider.close()
    figures.extra_billed = figures.billed - assets
    figures.built, figures.outputs_ok = check_outputs(project)
    return figures


def check_outputs(project: Path) -> tuple[int, bool]:
    """How many assets the lock records, and whether every output it lists decodes in full and
    has the recorded bytes and size."""
    lock = tomllib.loads((project / "assetbuild.lock").read_text(encoding="utf-8"))
    ok = True
    for entry in lock["assets"].values():
        for output in entry["outputs"]:
            data = (project / output["path"]).read_bytes()
            info = inspect_image(data, verify=True)
            ok = ok and hashlib.sha256(data).hexdigest() == output["sha256"]
            ok = ok and (info.width, info.height) == (output["width"], output["height"])
    return len(lock["assets"]), ok
