"""Issue 6 crash soak: SIGKILL a real `assetbuild build` at random moments of a 50-asset
build against each asynchronous host's emulator and the synchronous one, 20 times each, and
rerun. After every rerun: every asset is correct, the lock parses and matches the outputs, no
temp file is left, every image the host delivered is in the cache, and the host billed no
more jobs than the assets plus the submits that were in flight at the kill and that the host
cannot tell apart from new ones.

Which submits a host cannot tell apart: a submit whose reply (the job id) the killed process
never saved. evolink, Atlas Cloud, fal and Replicate take no idempotency key, so the rerun's
submit is a new, billed job; Ark is synchronous (no job id at all), so a request in flight
(its answer not yet saved) is paid again, while one whose answer was saved is downloaded from
it again. Apiframe
takes an Idempotency-Key derived from the fingerprint, so a rerun's submit replays the job:
its bound is 0."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assetbuild.api import Project
from assetbuild.store.cache import Cache
from assetbuild.store.hashing import sha256_bytes
from assetbuild.plan.planner import Action
from tests.conftest import REPO, ProjectDir
from tests.fakes.apiframe import ApiframeEmulator
from tests.fakes.ark import ArkEmulator
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.fal import FalEmulator
from tests.fakes.replicate import ReplicateEmulator
from tests.fakes.server import make_png

KEY = "sk-soak-77aa"
ASSETS = 50
TRIALS = 20
HOSTS: dict[str, Any] = {
    "modelark": ArkEmulator, "evolink": EvolinkEmulator, "atlascloud": AtlasCloudEmulator,
    "apiframe": ApiframeEmulator, "fal": FalEmulator, "replicate": ReplicateEmulator,
}


def unique_images(cls: Any) -> Any:
    """The host's emulator, serving a different image for every result (so 'every delivered
    image is in the cache' means something), as a small PNG: a host's image of another size
    than asked is kept (with a warning), and small images keep 120 builds within CI's time."""

    class Unique(cls):  # type: ignore[misc, valid-type]
        counter = itertools.count(1)

        def serve_result(self, data: bytes, ext: str = "png") -> str:
            n = next(self.counter)
            return super().serve_result(make_png(48, 32, (n % 251, n // 251 % 251, 99)), "png")

    return Unique


def manifest(host: str, url: str, trial: str) -> str:
    """Prompts differ per trial: the emulator lives across trials, and Apiframe would replay an
    earlier trial's jobs by their idempotency keys."""
    lines = [f'[project]\nprovider = "h"\n[providers.h]\ntype = "{host}"\nbase_url = "{url}"\n'
             'api_key_env = "SOAK_KEY"\npoll_interval_s = 0.01\nconcurrency = 8\n[defaults]\nsize = "1K"\n']
    for i in range(ASSETS):
        lines.append(f'[assets.a{i:02d}]\nprompt = "soak asset {i} of trial {trial}"\n')
        if i % 10 == 9:  # a few chained edits
            lines.append(f'references = ["@a{i - 1:02d}"]\n')
    return "".join(lines)


def known_at_kill(root: Path, env: dict[str, str]) -> set[str]:
    """Fingerprints whose job the killed build had saved, or whose images it had cached: a
    rerun resumes or restores them instead of paying again."""
    project = Project.load(root, env=env)
    try:
        known = {d.fingerprint for d in project.plan().decisions
                 if d.action in (Action.UP_TO_DATE, Action.RESTORE) and d.fingerprint}
        known |= {key.rsplit("|", 1)[-1] for key, _ in project.cache.jobs.items()}
    finally:
        project.close()
    return known


def build_cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "assetbuild", "-C", str(root), "build", "-k", "-j", "6"]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("host", sorted(HOSTS))
def test_random_kills_never_pay_twice_nor_lose_a_paid_image(host, tmp_path):
    rng = random.Random(f"soak-{host}")
    emu = unique_images(HOSTS[host])(api_key=KEY).start()
    figures = {"kills": 0, "extra_billed": 0, "lost_in_flight": 0}
    try:
        env = {**os.environ, "SOAK_KEY": KEY}
        # Calibrate: how long a whole build takes, to kill at random moments within it.
        root = tmp_path / "calibrate"
        root.mkdir()
        (root / "assetbuild.toml").write_text(manifest(host, emu.base_url, "calibration"))
        started = time.monotonic()
        subprocess.run(build_cmd(root), env={**env, "ASSETBUILD_CACHE_DIR": str(tmp_path / "calibrate-cache")},
                       cwd=REPO, check=True, capture_output=True, timeout=120)
        full_s = time.monotonic() - started
        for trial in range(TRIALS):
            root, cache = tmp_path / f"t{trial}", tmp_path / f"t{trial}-cache"
            root.mkdir()
            (root / "assetbuild.toml").write_text(manifest(host, emu.base_url, str(trial)))
            trial_env = {**env, "ASSETBUILD_CACHE_DIR": str(cache)}
            billed_before, requests_before = len(emu.submits), len(emu.requests)
            proc = subprocess.Popen(build_cmd(root), env=trial_env, cwd=REPO,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.25, full_s))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            time.sleep(0.3)  # let the emulator finish handling what reached it before the kill
            figures["kills"] += 1
            at_kill = len(emu.submits) - billed_before
            lost = max(0, at_kill - len(known_at_kill(root, trial_env)))

            project = ProjectDir(root, cache)
            project.env["SOAK_KEY"] = KEY
            project.clock = FakeClock()
            res = project.run("build", "-k")
            assert res.exit_code == 0, f"trial {trial}: {res.stderr}"
            check = project.run("check")
            assert check.exit_code == 0, f"trial {trial}: {check.output}"  # lock parses, matches outputs
            for out in (root / "assets").glob("*.png"):
                with Image.open(out) as img:
                    img.load()
            assert not [p for p in root.rglob("*") if p.name.endswith(".assetbuild-tmp")]
            billed = len(emu.submits) - billed_before
            extra = billed - ASSETS
            figures["extra_billed"] += extra
            figures["lost_in_flight"] += lost
            bound = 0 if host == "apiframe" else lost
            assert extra <= bound, f"trial {trial}: billed {billed} for {ASSETS} assets; {lost} in flight at the kill"
            # Every image the host delivered (downloaded by the client) is in the cache.
            store = Cache(cache)
            try:
                delivered = {r.path.rsplit("/", 1)[-1] for r in emu.requests[requests_before:] if r.route == "result"}
                missing = [rid for rid in delivered if store.get_blob(sha256_bytes(emu._results[rid])) is None]
            finally:
                store.close()
            assert not missing, f"trial {trial}: {len(missing)} delivered images not cached"
    finally:
        emu.stop()
    print(f"\n{host}: {figures['kills']} kills, full build {full_s:.2f} s, "
          f"{figures['lost_in_flight']} submits in flight at the kills, {figures['extra_billed']} extra billed jobs")
