"""Billed but unusable (issue 17 item 10): a job the host made and billed whose images cannot
be fetched (its result URL loops on redirects every time) says it was billed, with the
request id, and no rerun pays for those inputs again until ``build --retry-failed``; a
``reroll`` interrupted after its submit is resumed by the next plain ``build``. Against the
fal emulator on 127.0.0.1."""

from __future__ import annotations

import json
import tomllib
from typing import Any

from tests.conftest import ProjectDir
from tests.fakes.clock import FakeClock
from tests.fakes.fal import FalEmulator

PROJECT = """
[project]
provider = "fal"
[providers.fal]
type = "fal"
base_url = "{url}"
api_key_env = "FAL_KEY"
poll_interval_s = 0.01
max_attempts = 2
[defaults]
size = "1024x1024"
[assets.hero]
prompt = "{prompt}"
"""


def setup(project: ProjectDir, emu: FalEmulator, prompt: str = "a fox on a ridge") -> None:
    project.clock = FakeClock()
    project.env["FAL_KEY"] = "fal-test-key"
    project.manifest(PROJECT.format(url=emu.base_url, prompt=prompt))


def planned(project: ProjectDir, *args: str) -> dict[str, Any]:
    res = project.run("plan", "--json", *args)
    assert res.exit_code == 0, res.stderr
    return {a["asset"]: a for a in json.loads(res.output)["actions"]}


def test_a_billed_job_whose_images_never_come_is_named_and_not_paid_for_again_until_retry_failed(project):
    with FalEmulator(api_key="fal-test-key") as emu:
        setup(project, emu)
        emu.break_results("redirect_loop")
        res = project.run("build")
        assert res.exit_code == 1 and len(emu.submits) == 1, res.output + res.stderr
        job = next(iter(emu.jobs))
        assert "billed" in res.output and job in res.output, res.output

        for _ in range(2):  # reruns: blocked, nothing submitted, the user told how to pay again
            res = project.run("build")
            assert len(emu.submits) == 1, res.output
            assert res.exit_code == 1 and "billed" in res.output and job in res.output, res.output
            assert "--retry-failed" in res.output
        hero = planned(project)["hero"]
        assert hero["action"] == "blocked" and "billed-unusable" in hero["codes"]
        assert planned(project, "--retry-failed")["hero"]["action"] == "generate"

        res = project.run("build", "--retry-failed")  # the user said so: one more submit, still broken
        assert res.exit_code == 1 and len(emu.submits) == 2 and "billed" in res.output
        emu.break_results(None)  # the host's storage is fixed
        assert project.run("build").exit_code == 1 and len(emu.submits) == 2
        res = project.run("build", "--retry-failed")
        assert res.exit_code == 0 and len(emu.submits) == 3, res.output + res.stderr
        res = project.run("build")
        assert res.exit_code == 0 and len(emu.submits) == 3 and "up to date" in res.output


def test_other_inputs_are_not_held_back_by_a_billed_failure(project):
    with FalEmulator(api_key="fal-test-key") as emu:
        setup(project, emu)
        emu.break_results("redirect_loop")
        assert project.run("build").exit_code == 1
        emu.break_results(None)
        setup(project, emu, prompt="a fox on a ridge, at dawn")  # new inputs: a new fingerprint
        res = project.run("build")
        assert res.exit_code == 0 and len(emu.submits) == 2, res.output


def test_a_reroll_interrupted_after_its_submit_is_resumed_by_the_next_plain_build(project):
    with FalEmulator(api_key="fal-test-key") as emu:
        setup(project, emu)
        assert project.run("build").exit_code == 0 and len(emu.submits) == 1
        first = tomllib.loads((project.root / "assetbuild.lock").read_text())["assets"]["hero"]
        # reroll: submitted (billed), then every status poll fails in transit: the job stays saved
        emu.fail_next("status", status=503, times=50)
        res = project.run("reroll", "hero", "--yes")
        assert res.exit_code == 1 and len(emu.submits) == 2, res.output + res.stderr
        emu.clear_faults()
        res = project.run("build")
        assert res.exit_code == 0, res.output + res.stderr
        assert len(emu.submits) == 2  # resumed, not submitted again
        said = res.output + res.stderr
        assert "reroll" in said and "hero" in said and "resumed" in said, said
        lock = tomllib.loads((project.root / "assetbuild.lock").read_text())["assets"]["hero"]
        second_job = list(emu.jobs)[1]
        assert lock["request_id"] == second_job != first["request_id"]  # the reroll's own images
        assert lock["pick"] == 2 and len(lock["candidate_images"]) == 2  # the first stays pickable
        res = project.run("build")
        assert res.exit_code == 0 and len(emu.submits) == 2 and "up to date" in res.output


def test_a_reroll_killed_before_its_submit_leaves_nothing_to_resume_and_is_forgotten(project):
    from pathlib import Path

    from assetbuild.store.cache import Cache

    with FalEmulator(api_key="fal-test-key") as emu:
        setup(project, emu)
        assert project.run("build").exit_code == 0
        fp = tomllib.loads((project.root / "assetbuild.lock").read_text())["assets"]["hero"]["fingerprint"]
        cache = Cache(Path(project.env["ASSETBUILD_CACHE_DIR"]))
        cache.note_reroll(fp, {"asset": "hero", "key": "0" * 64})  # noted, then killed before the submit
        assert planned(project)["hero"]["action"] == "up-to-date"  # no saved job: nothing to resume
        res = project.run("build")
        assert res.exit_code == 0 and len(emu.submits) == 1 and cache.rerolls() == {}
