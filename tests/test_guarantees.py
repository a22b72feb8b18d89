"""Issue 6: the two promises under faults — never pay twice for the same inputs, never lose
an image that was paid for. Each test reproduces one way the promises broke."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assetbuild.api import Project
from assetbuild.store.cache import Cache, CacheRecord
from tests.conftest import ProjectDir, png
from tests.fakes.ark import ArkEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.fal import FalEmulator

KEY = "sk-guarantees-4c1d"

HOST = """
[project]
provider = "h"
model = "seedream-4.0"

[providers.h]
type = "{type}"
base_url = "{url}"
api_key_env = "G_KEY"
poll_interval_s = 0.01
max_attempts = 2
{extra}

[defaults]
size = "1K"

[assets.one]
prompt = "a fox on a mountain"

[assets.two]
prompt = "the same fox at night"
references = ["@one"]
"""


class Crash(BaseException):
    """Stands for a SIGKILL at one exact point: nothing after it runs."""


class CrashingCache(Cache):
    """Dies the first time a result is put in the index, as a kill in that window would."""

    def put_result(self, fingerprint: str, record: CacheRecord) -> None:
        raise Crash()


def host_project(project: ProjectDir, emu: Any, type_: str, extra: str = "") -> None:
    project.clock = FakeClock()
    project.env["G_KEY"] = KEY
    project.manifest(HOST.format(type=type_, url=emu.base_url, extra=extra))


def built(project: ProjectDir, *args: str) -> dict[str, Any]:
    res = project.run("build", "--json", *args)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.output)


def cache_of(project: ProjectDir) -> Cache:
    return Cache(Path(project.env["ASSETBUILD_CACHE_DIR"]))


def test_a_kill_after_the_download_resumes_the_job_instead_of_paying_again(project):  # item 1
    emu = EvolinkEmulator(api_key=KEY).start()
    try:
        host_project(project, emu, "evolink")
        crashing = Project.load(project.root, env=project.env, clock=FakeClock(),
                                cache=CrashingCache(Path(project.env["ASSETBUILD_CACHE_DIR"])))
        with pytest.raises(Crash):
            crashing.build(["one"], jobs=1)
        assert len(emu.submits) == 1  # paid once, images downloaded, killed before they were indexed
        summary = built(project, "one")
        assert summary["generated"] == 1
        assert len(emu.submits) == 1  # the rerun resumed the saved job: nothing paid twice
        cache = cache_of(project)
        try:
            assert list(cache.jobs.items()) == []  # forgotten once its images were safe
        finally:
            cache.close()
    finally:
        emu.stop()


def test_an_output_written_before_the_lock_was_saved_is_not_a_hand_edit(project):  # item 2
    project.write("ref.png", png())
    project.manifest('[project]\nprovider = "local"\n[defaults]\nsize = "64x64"\n'
                     '[assets.a]\nprompt = "first"\n[assets.b]\nprompt = "b"\nreferences = ["@a"]\n')
    built(project)
    lock = project.root / "assetbuild.lock"
    before = lock.read_bytes()
    project.manifest((project.root / "assetbuild.toml").read_text().replace('"first"', '"second"'))
    built(project)
    lock.write_bytes(before)  # as if the build was killed after writing the outputs, before saving the lock
    plan = json.loads(project.run("plan", "--json").output)
    assert {a["action"] for a in plan["actions"]} == {"restore"}, plan
    summary = built(project)
    assert summary["restored"] == 2 and project.calls.total == 0
    assert project.run("check").exit_code == 0


def _corrupt_all_blobs(project: ProjectDir) -> int:
    blobs = [p for p in (Path(project.env["ASSETBUILD_CACHE_DIR"]) / "blobs").rglob("*") if p.is_file()]
    for blob in blobs:
        blob.write_bytes(b"rotten" + blob.read_bytes()[6:])
    return len(blobs)


@pytest.mark.parametrize("flags", [("--offline",), ("--max-cost", "0")])
def test_a_damaged_cached_image_is_never_paid_for_against_offline_or_budget(project, flags):  # item 4
    emu = ArkEmulator(api_key=KEY).start()
    try:
        host_project(project, emu, "modelark")
        built(project, "one")
        assert len(emu.submits) == 1
        (project.root / "assets" / "one.png").unlink()
        assert _corrupt_all_blobs(project) >= 1
        res = project.run("build", "--json", "one", *flags)
        assert res.exit_code == 1, res.stderr
        assert json.loads(res.output)["blocked"] == 1
        assert "cached images are damaged" in res.stderr
        assert len(emu.submits) == 1  # --offline / --max-cost 0 never paid
        summary = built(project, "one")  # a normal build pays once and replaces the damaged blobs
        assert summary["generated"] == 1 and len(emu.submits) == 2
        cache = cache_of(project)
        try:
            blobs = [p for p in (cache.dir / "blobs").rglob("*") if p.is_file()]
            assert blobs and all(cache.get_blob(p.name) is not None for p in blobs)
        finally:
            cache.close()
    finally:
        emu.stop()


def test_damaged_pngs_are_made_again_from_the_hosts_originals_for_free(project):  # item 4
    emu = ArkEmulator(api_key=KEY).start()
    try:
        host_project(project, emu, "modelark")
        built(project, "one")
        out = project.root / "assets" / "one.png"
        good = out.read_bytes()
        out.unlink()
        cache = cache_of(project)
        png_blob = next(p for p in (cache.dir / "blobs").rglob("*") if p.is_file() and p.read_bytes()[:4] == b"\x89PNG")
        cache.close()
        png_blob.write_bytes(b"rotten")
        summary = built(project, "one", "--offline")
        assert summary["restored"] == 1 and len(emu.submits) == 1
        assert out.read_bytes() == good
    finally:
        emu.stop()


def test_fallback_never_abandons_a_job_the_primary_accepted(project):  # item 5
    primary = EvolinkEmulator(api_key=KEY).start()
    backup = FalEmulator(api_key=KEY).start()
    try:
        extra = (f'fallback = "g"\n\n[providers.g]\ntype = "fal"\nbase_url = "{backup.base_url}"\n'
                 'api_key_env = "G_KEY"\npoll_interval_s = 0.01\n')
        host_project(project, primary, "evolink", extra)
        primary.fail_next("task", status=503, times=2)  # every poll attempt fails (max_attempts = 2): down after accepting
        res = project.run("build", "--json", "one")
        assert res.exit_code == 1
        assert len(primary.submits) == 1 and backup.submits == []  # one paid job, not two
        assert "fallback" not in res.stderr
        summary = built(project, "one")  # the host is back: the rerun resumes the same job
        assert summary["generated"] == 1 and len(primary.submits) == 1 and backup.submits == []
    finally:
        primary.stop()
        backup.stop()


LOCAL = '[project]\nprovider = "local"\n[defaults]\nsize = "32x32"\n[assets.a]\nprompt = "a"\n[assets.b]\nprompt = "b"\n'


def test_a_build_reads_the_lock_only_once_it_holds_the_build_lock(project):  # item 3
    project.manifest(LOCAL)
    waiting = Project.load(project.root, env=project.env)  # e.g. sitting at the paid-build prompt
    other = Project.load(project.root, env=project.env)
    other.build(["b"])
    other.close()
    waiting.build(["a"])  # must not write back the lock it read before `other` finished
    waiting.close()
    res = project.run("check")
    assert res.exit_code == 0, res.output
    assert built(project)["up_to_date"] == 2 and project.calls.total == 0


def test_a_second_build_is_refused_before_it_plans_or_asks(project):  # item 3
    from assetbuild.store.files import exclusive

    project.manifest(LOCAL)
    with exclusive(project.root / "assetbuild.toml"):
        res = project.run("build", "--yes")
    assert res.exit_code == 2 and "another assetbuild build is running" in res.stderr
    assert project.calls.total == 0 and not (project.root / "assetbuild.lock").exists()


def test_temp_files_of_a_killed_write_are_swept_and_ignored(project):  # item 12
    project.manifest(LOCAL)
    built(project)
    leftovers = [project.write("assets/.a.png.k1l2ed.assetbuild-tmp", b"half an image"),
                 project.write(".assetbuild.lock.x9.assetbuild-tmp", b"half a lock")]
    built(project)
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in project.root.rglob("*") if p.name.endswith(".tmp") or "tmp" in p.suffix]
    fresh = project.root / "fresh"
    fresh.mkdir()
    assert project.run("-C", str(fresh), "init").exit_code == 0
    assert "*.assetbuild-tmp" in (fresh / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_max_cost_must_be_a_finite_amount(project, value):  # item 12
    project.manifest(LOCAL)
    res = project.run("build", "--max-cost", value)
    assert res.exit_code == 2 and "--max-cost" in res.stderr and "Traceback" not in res.stderr
    assert not (project.root / "assetbuild.lock").exists()


def test_two_manifests_in_one_folder_keep_their_own_locks(project):  # item 12
    project.write("web.toml", LOCAL.replace("[assets.b]", "[assets.c]").replace('"b"', '"c"'))
    project.write("print.toml", LOCAL.replace('[project]', '[project]\noutput_dir = "print"') + '[assets.d]\nprompt = "d"\n')
    for manifest in ("web.toml", "print.toml", "web.toml"):
        assert project.run("-f", manifest, "build").exit_code == 0
    assert (project.root / "web.lock").is_file() and (project.root / "print.lock").is_file()
    for manifest in ("web.toml", "print.toml"):
        res = project.run("-f", manifest, "check")
        assert res.exit_code == 0, res.output


def test_a_damaged_cache_index_says_what_to_do(project):  # item 12
    project.manifest(LOCAL)
    built(project)
    index = Path(project.env["ASSETBUILD_CACHE_DIR"]) / "index"
    for db in index.glob("cache.db*"):
        db.write_bytes(b"this is not a database" * 100)
    (project.root / "assets" / "a.png").unlink()
    res = project.run("build")
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cache index" in lines[0] and "move it aside" in lines[0], res.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)  # bounds below are generous: a loaded 2-core machine must not fail it (issue 21 item 11)
def test_the_first_ctrl_c_stops_at_once_says_what_is_in_flight_and_loses_nothing(project):  # interrupts
    """No wall-clock assertion: each poll waits POLL_S (10 minutes) before asking the host,
    so a build that exits at all within STOP_S after Ctrl-C cut those waits short; every
    other wait is for a condition (both jobs saved), never for a time."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from assetbuild.store.cache import Cache
    from tests.conftest import REPO

    poll_s, stop_s, start_s = 600, 300, 300  # stop_s < poll_s: exiting at all proves the waits were cut
    emu = EvolinkEmulator(api_key=KEY).start()
    emu.polls_until_done = 10**9  # every job runs until we say so
    try:
        assets = "".join(f'\n[assets.x{i}]\nprompt = "fox number {i}"\n' for i in range(6))
        project.env["G_KEY"] = KEY
        manifest = HOST.format(type="evolink", url=emu.base_url, extra="").split("[assets.one]")[0] + assets
        project.manifest(manifest.replace("poll_interval_s = 0.01\n", f"poll_interval_s = {poll_s}\n"))
        env = {**os.environ, **project.env}
        # Ctrl-C's default action in the build, whatever this process inherited: a shell runs a
        # background job (`.ci/run &`) with SIGINT ignored, and a child inherits that
        proc = subprocess.Popen([sys.executable, "-m", "assetbuild", "-C", str(project.root), "build", "-j", "2"],
                                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

        def saved_jobs() -> int:
            cache = Cache(Path(project.env["ASSETBUILD_CACHE_DIR"]))
            try:
                return len(list(cache.jobs.items()))
            finally:
                cache.close()

        deadline = time.monotonic() + start_s  # a condition, not a time: it returns as soon as it holds
        while time.monotonic() < deadline and not (len(emu.submits) >= 2 and saved_jobs() >= 2):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert len(emu.submits) == 2 and saved_jobs() == 2  # both accepted and saved: now in their poll wait
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=stop_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"the build sat out its {poll_s} s poll wait after Ctrl-C") from None
        assert proc.returncode == 130, err
        assert "interrupted: starting nothing new; waiting for what is in flight: x0, x1" in out
        assert "2 asset(s) were in flight (x0, x1)" in err and "a rerun resumes them" in err
        assert "Traceback" not in err
        assert len(emu.submits) == 2  # nothing new was submitted after Ctrl-C
        emu.polls_until_done = 0
        project.manifest(manifest)  # quick polls for the rerun (the provider's settings are no fingerprint input)
        summary = built(project)
        assert summary["generated"] == 6
        assert len(emu.submits) == 6  # the two interrupted jobs were resumed, not paid again
    finally:
        emu.stop()


@pytest.mark.slow
def test_a_killed_build_journal_is_replayed_and_check_says_the_lock_is_behind(project):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    project.manifest('[project]\nprovider = "local"\n[defaults]\nsize = "256x256"\n'
                     + "".join(f'[assets.n{i:03d}]\nprompt = "asset {i}"\n' for i in range(300)))
    env = {**os.environ, **project.env}
    proc = subprocess.Popen([sys.executable, "-m", "assetbuild", "-C", str(project.root), "build", "-j", "2"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((project.root / "assets").glob("*.png"))) < 20:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    done = len(list((project.root / "assets").glob("*.png")))
    assert 20 <= done < 300
    assert not (project.root / "assetbuild.lock").exists()  # the lock is written at the end, not per asset
    res = project.run("check")
    assert res.exit_code == 1 and "an interrupted build finished" in res.output
    plan = json.loads(project.run("plan", "--json").output)
    assert sum(a["action"] == "up-to-date" for a in plan["actions"]) >= done - 2  # journalled before the kill
    summary = built(project)
    assert summary["up_to_date"] + summary["restored"] + summary["generated"] == 300
    assert project.calls.total <= 300 - done + 2  # only what was not finished is rendered again
    assert project.run("check").exit_code == 0
