"""Issue 3 acceptance, end to end: the CLI builds projects against each host's emulator
(real HTTP on 127.0.0.1), and the lock, the files and the requests the host saw are checked."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import REPO, ProjectDir, png
from tests.fakes.apiframe import ApiframeEmulator
from tests.fakes.ark import ArkEmulator
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.fal import FalEmulator
from tests.fakes.replicate import ReplicateEmulator

KEY = "sk-e2e-SECRET-4f9a7c"
HOSTS: dict[str, Any] = {
    "modelark": lambda **kw: ArkEmulator(**kw),
    "volcengine": lambda **kw: ArkEmulator(platform="volcengine", **kw),
    "evolink": EvolinkEmulator,
    "atlascloud": AtlasCloudEmulator,
    "apiframe": ApiframeEmulator,
    "fal": FalEmulator,
    "replicate": ReplicateEmulator,
}
ASYNC_HOSTS = ["evolink", "atlascloud", "apiframe", "fal", "replicate"]
# how each host's batch request says "3 images" (providers.md): Apiframe has no batch field
BATCH_FIELD = {
    "modelark": lambda b: b.get("sequential_image_generation_options", {}).get("max_images", 1),
    "volcengine": lambda b: b.get("sequential_image_generation_options", {}).get("max_images", 1),
    "evolink": lambda b: b.get("n", 1),
    "atlascloud": lambda b: b.get("max_images", 1),
    "fal": lambda b: b.get("num_images", 1),
    "replicate": lambda b: b["input"].get("max_images", 1),
}
# a failed job each host's emulator can be told to produce (not a refusal)
JOB_FAILURE = {
    "modelark": ("InvalidParameter", "emulated bad parameter"),
    "volcengine": ("InvalidParameter", "emulated bad parameter"),
    "evolink": ("invalid_parameters", "emulated bad parameter"),
    "atlascloud": (1401, "emulated invalid parameter"),
    "apiframe": ("FAILED", "emulated generation failure"),
    "fal": ("FAILED", "emulated generation failure"),
    "replicate": ("FAILED", "emulated generation failure"),
}

PROJECT = """
[project]
provider = "h"
model = "seedream-4.0"

[providers.h]
type = "{type}"
base_url = "{url}"
api_key_env = "E2E_KEY"
poll_interval_s = 0.01
max_attempts = 3
{extra}

[defaults]
size = "2K"

[assets.t2i]
prompt = "a fox on a mountain"

[assets.edit-file]
prompt = "recolour the sneaker"
references = ["ref.png"]

[assets.edit-up]
prompt = "the same fox at night"
references = ["@t2i"]

[assets.batch]
prompt = "three panels of a morning routine"
count = 3
"""


def start(host: str, clock: Any) -> Any:
    return HOSTS[host](api_key=KEY, clock=clock).start()


def setup(project: ProjectDir, host: str, emu: Any, extra: str = "") -> None:
    project.clock = FakeClock()
    project.env["E2E_KEY"] = KEY
    project.write("ref.png", png(64, 48, (200, 30, 30)))
    project.manifest(PROJECT.format(type=host, url=emu.base_url, extra=extra))


def body_contains(requests: list[Any], data: bytes) -> bool:
    b64 = base64.b64encode(data)
    return any(data in r.body or b64 in r.body for r in requests)


@pytest.fixture(params=sorted(HOSTS))
def host(request: Any) -> str:
    return request.param


def test_generate_edit_chain_and_batch_on_each_host(project, host):  # acceptance 1
    emu = start(host, None)
    try:
        setup(project, host, emu)
        res = project.run("build", "--json", "-j", "1")
        assert res.exit_code == 0, res.stderr
        assert json.loads(res.output)["generated"] == 4
        lock = (project.root / "assetbuild.lock").read_text()
        import tomllib

        entries = tomllib.loads(lock)["assets"]
        for asset, n in {"t2i": 1, "edit-file": 1, "edit-up": 1, "batch": 3}.items():
            entry = entries[asset]
            assert entry["provider"] == "h" and entry["model"] == "seedream-4.0"
            assert entry["model_id"] not in ("", "local")
            assert len(entry["outputs"]) == n
            assert entry["cost_usd"] > 0
            for out in entry["outputs"]:
                with Image.open(project.root / out["path"]) as img:
                    assert img.format == "PNG" and img.size == (out["width"], out["height"])
        assert entries["batch"]["cost_usd"] == pytest.approx(3 * entries["t2i"]["cost_usd"])
        assert [o["path"] for o in entries["batch"]["outputs"]] == [f"assets/batch-{i}.png" for i in (1, 2, 3)]
        # the host received the local reference and the upstream output (data URL or upload)
        assert body_contains(emu.requests, project.read("ref.png"))
        assert body_contains(emu.requests, project.read("assets/t2i.png"))
        if host == "apiframe":
            keys = [r.headers["idempotency-key"] for r in emu.submits]
            assert len(emu.submits) == 6 and len(set(keys)) == 6
        else:
            assert len(emu.submits) == 4
            assert sorted(BATCH_FIELD[host](r.json) for r in emu.submits) == [1, 1, 1, 3]
        # nothing in the lock expires or is secret
        assert "http://" not in lock and "https://" not in lock and KEY not in lock
        seen = len(emu.requests)
        again = project.run("build", "--json")
        assert json.loads(again.output)["up_to_date"] == 4 and len(emu.requests) == seen
    finally:
        emu.stop()


def test_failed_job_fails_one_asset_and_keep_going_finishes_the_rest(project, host):  # acceptance 2
    emu = start(host, None)
    try:
        setup(project, host, emu)
        emu.fail_next_job(*JOB_FAILURE[host])
        res = project.run("build", "--json", "-j", "1", "-k")
        assert res.exit_code == 1
        summary = json.loads(res.output)
        assert summary["failed"] == 1 and summary["blocked"] == 1 and summary["generated"] == 2
        failed = [line for line in res.stderr.splitlines() if line.startswith("failed")]
        assert len(failed) == 1 and failed[0].startswith("failed     t2i: h:")
        assert "blocked    edit-up: upstream t2i not built" in res.stderr
        res = project.run("build", "--json")
        assert json.loads(res.output)["generated"] == 2 and res.exit_code == 0
    finally:
        emu.stop()


def test_the_key_appears_nowhere(project, host, tmp_path):  # acceptance 6
    emu = start(host, None)
    try:
        setup(project, host, emu)
        outputs = []
        for args in (("build",), ("plan", "--json"), ("check",), ("explain", "batch"), ("providers",), ("graph",)):
            res = project.run("-v", *args)
            outputs += [res.output, res.stderr]
        emu.api_key = "the-right-key-is-elsewhere"  # now every request is refused (401)
        project.write("ref.png", png(64, 48, (0, 0, 255)))
        res = project.run("-v", "build")
        assert res.exit_code == 1 and "401" in res.output
        outputs += [res.output, res.stderr]
    finally:
        emu.stop()
    assert not any(KEY in text for text in outputs)
    cache = Path(project.env["ASSETBUILD_CACHE_DIR"])
    for root in (project.root, cache):
        for path in root.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path


def test_switching_hosts_of_the_same_model_regenerates_nothing(project):  # acceptance 7
    ark, fal = start("modelark", None), start("fal", None)
    try:
        setup(project, "modelark", ark, extra=f'\n[providers.g]\ntype = "fal"\nbase_url = "{fal.base_url}"\n'
                                              'api_key_env = "E2E_KEY"\npoll_interval_s = 0.01\n')
        assert project.run("build").exit_code == 0
        text = (project.root / "assetbuild.toml").read_text()
        project.manifest(text.replace('provider = "h"', 'provider = "g"'))
        res = project.run("build", "--json")
        assert json.loads(res.output)["up_to_date"] == 4 and fal.requests == []
        # local -> a host is a different model: everything regenerates
        project.manifest(text.replace('provider = "h"', 'provider = "local"'))
        assert json.loads(project.run("build", "--json").output)["generated"] == 4
        # ...and back: the Seedream images are still in the cache, so nothing is paid twice
        project.manifest(text.replace('provider = "h"', 'provider = "g"'))
        plan = json.loads(project.run("plan", "--json").output)
        assert {a["action"] for a in plan["actions"]} == {"restore"} and plan["estimated_cost"] == 0
        assert json.loads(project.run("build", "--json").output)["restored"] == 4 and fal.requests == []
    finally:
        ark.stop()
        fal.stop()


def test_fallback_when_the_primary_is_down_but_not_on_a_refusal(project):  # acceptance 5
    fal = start("fal", None)
    ark = start("modelark", None)
    down = "http://127.0.0.1:9/api/v3"  # nothing listens on port 9 (discard)
    try:
        fallback = (f'fallback = "g"\n\n[providers.g]\ntype = "fal"\nbase_url = "{fal.base_url}"\n'
                    'api_key_env = "E2E_KEY"\npoll_interval_s = 0.01\n')
        setup(project, "modelark", ark, extra=fallback)
        text = (project.root / "assetbuild.toml").read_text()
        project.manifest(text.replace(ark.base_url, down))
        res = project.run("build", "--json", "-j", "1")
        assert res.exit_code == 0, res.stderr
        assert "fallback   t2i:" in res.stderr
        import tomllib

        entries = tomllib.loads((project.root / "assetbuild.lock").read_text())["assets"]
        assert {e["provider"] for e in entries.values()} == {"g"}
        assert len(fal.submits) == 4
        # a refusal on the (up) primary does not fall back
        project.manifest(text.replace('"a fox on a mountain"', '"a fox, refused"'))
        ark.fail_next_job("OutputImageSensitiveContentDetected", "The output image may contain sensitive content")
        before = len(fal.submits)
        res = project.run("build", "--json")
        assert res.exit_code == 1 and "OutputImageSensitiveContentDetected" in res.stderr
        assert len(fal.submits) == before
    finally:
        fal.stop()
        ark.stop()


def test_a_missing_key_stops_the_build_before_any_request(project):
    ark = start("modelark", None)
    try:
        setup(project, "modelark", ark)
        del project.env["E2E_KEY"]
        res = project.run("build")
        assert res.exit_code == 2 and ark.requests == []
        assert res.stderr == ("error: provider h: set the environment variable E2E_KEY to your API key; "
                              "nothing was sent\n")
        assert project.run("plan").exit_code == 0  # planning never needs a key
    finally:
        ark.stop()


def test_images_of_a_failed_partial_batch_are_kept_in_the_cache(project):
    from assetbuild.store.cache import Cache

    ark = start("modelark", None)
    try:
        setup(project, "modelark", ark)
        ark.partial_failure(1)  # the second image of the next batch is refused, HTTP 200
        res = project.run("build", "--json", "-k", "batch")
        assert res.exit_code == 1 and "OutputImageSensitiveContentDetected" in res.stderr
        plan = json.loads(project.run("plan", "--json", "batch").output)
        cache = Cache(Path(project.env["ASSETBUILD_CACHE_DIR"]))
        from assetbuild.api import Project

        fp = Project.load(project.root, env=project.env).plan(["batch"]).decisions[0].fingerprint
        kept = cache.index.get(f"orphans:{fp}")
        assert kept is not None and len(kept) == 2 and all(cache.get_blob(sha) for sha in kept)
        assert plan["actions"][0]["action"] == "generate"
        cache.close()
    finally:
        ark.stop()


def test_providers_command_lists_types_models_and_key_state(project):
    ark = start("modelark", None)
    try:
        setup(project, "modelark", ark, extra='\n[providers.g]\ntype = "fal"\napi_key_env = "UNSET_KEY_VAR"\n')
        res = project.run("providers")
        assert res.exit_code == 0
        assert "h (modelark): key E2E_KEY set" in res.output
        assert "seedream-4.0  -> seedream-4-0-250828" in res.output
        assert "g (fal): key UNSET_KEY_VAR NOT set" in res.output
        rows = {r["name"]: r for r in json.loads(project.run("providers", "--json").output)}
        assert rows["g"]["models"]["seedream-4.5"].startswith("fal-ai/bytedance/seedream/v4.5")
        assert rows["h"]["price_per_image"] == {"seedream-4.0": 0.03, "seedream-4.5": 0.04, "seedream-5.0-lite": 0.035,
                                             "seedream-5.0-pro": 0.09}  # the models table
        assert KEY not in res.output and ark.requests == []
    finally:
        ark.stop()


def test_budget_refuses_before_any_request(project):
    ark = start("modelark", None)
    try:
        setup(project, "modelark", ark)
        plan = json.loads(project.run("plan", "--json").output)
        assert plan["estimated_cost"] == pytest.approx(0.18)
        assert {a["asset"]: a["cost"] for a in plan["actions"]} == pytest.approx(
            {"t2i": 0.03, "edit-file": 0.03, "edit-up": 0.03, "batch": 0.09})
        res = project.run("build", "--max-cost", "0.10")
        assert res.exit_code == 2 and "exceeds the budget of $0.10" in res.stderr
        text = (project.root / "assetbuild.toml").read_text()
        project.manifest(text.replace('model = "seedream-4.0"', 'model = "seedream-4.0"\nmax_cost = 0.05'))
        assert project.run("build").exit_code == 2
        assert ark.requests == []
        project.manifest(text.replace('api_key_env = "E2E_KEY"', 'api_key_env = "E2E_KEY"\nprice_per_image = 0.01'))
        assert json.loads(project.run("plan", "--json").output)["estimated_cost"] == pytest.approx(0.06)
        res = project.run("build", "--json", "--max-cost", "0.06")
        assert res.exit_code == 0 and json.loads(res.output)["cost"] == pytest.approx(0.06)
    finally:
        ark.stop()


def test_concurrency_is_enforced_across_the_whole_build(project):  # acceptance 4
    ark = start("modelark", None)
    ark.hold_s = 0.15
    try:
        setup(project, "modelark", ark, extra="concurrency = 3")
        many = "".join(f'\n[assets.extra{i}]\nprompt = "extra {i}"\n' for i in range(8))
        project.manifest((project.root / "assetbuild.toml").read_text() + many)
        res = project.run("build", "--json", "-j", "8")
        assert res.exit_code == 0, res.stderr
        assert 2 <= ark.max_in_flight <= 3
    finally:
        ark.stop()


def test_requests_per_minute_is_enforced(project):  # acceptance 4
    clock = FakeClock()
    ark = start("modelark", clock)
    try:
        setup(project, "modelark", ark, extra="requests_per_minute = 2")
        project.clock = clock
        res = project.run("build", "--json", "-j", "1")
        assert res.exit_code == 0, res.stderr
        times = sorted(r.at for r in ark.submits)
        assert len(times) == 4
        assert all(later - earlier >= 60 for earlier, later in zip(times, times[2:]))
        assert times[-1] - times[0] >= 60
    finally:
        ark.stop()


@pytest.mark.slow
@pytest.mark.parametrize("host", ASYNC_HOSTS)
def test_killed_build_resumes_the_job_instead_of_paying_again(project, host):  # acceptance 3
    emu = start(host, None)
    emu.polls_until_done = 10**9  # the job stays in progress until we say so
    try:
        project.env["E2E_KEY"] = KEY
        project.write("ref.png", png(64, 48))
        project.manifest(PROJECT.format(type=host, url=emu.base_url, extra="").split("[assets.edit-file]")[0])
        env = {**os.environ, **project.env, "E2E_KEY": KEY}
        proc = subprocess.Popen([sys.executable, "-m", "assetbuild", "-C", str(project.root), "build"],
                                env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(emu.requests) < len(emu.submits) + 3:
            time.sleep(0.02)  # wait for the submit and a few polls
        assert emu.submits, "the build never submitted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not (project.root / "assets" / "t2i.png").exists()
        emu.polls_until_done = 0
        res = project.run("build", "--json")
        assert res.exit_code == 0, res.stderr
        assert json.loads(res.output)["generated"] == 1
        assert len(emu.submits) == 1  # the rerun picked up the job it had paid for
    finally:
        emu.stop()


@pytest.mark.slow
def test_on_a_terminal_a_paid_build_asks_first(project):
    import pty

    ark = start("modelark", None)
    try:
        setup(project, "modelark", ark)
        env = {**os.environ, **project.env}
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "assetbuild", "-C", str(project.root), "build"],
                                env=env, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 20
        while b"Go on?" not in seen and time.monotonic() < deadline:
            seen += os.read(master, 1024)
        assert b"generates 4 asset(s) for an estimated $0.18" in seen
        os.write(master, b"n\n")
        assert proc.wait(20) == 2
        try:
            while chunk := os.read(master, 1024):
                seen += chunk
        except OSError:  # the child closed the terminal
            pass
        os.close(master)
        assert b"build cancelled; nothing was sent" in seen
        assert ark.requests == []
        # --yes skips the question; without a terminal there is none
        res = project.run("build", "--json")
        assert res.exit_code == 0 and json.loads(res.output)["generated"] == 4
    finally:
        ark.stop()
