"""The command line: the only module that prints or exits. Exit codes, one-line errors, and
JSON that stays JSON."""

from __future__ import annotations

import json

from tests.conftest import ProjectDir

MANIFEST = '[project]\nprovider = "local"\n[defaults]\nsize = "16x16"\n[assets.a]\nprompt = "a"\n' \
           '[assets.b]\nprompt = "b"\nreferences = ["@a"]\n'


def test_plan_json_gives_reason_codes_beside_the_words(project: ProjectDir):
    project.manifest(MANIFEST)
    plan = json.loads(project.run("plan", "--json").output)
    assert plan["actions"][0] == {"asset": "a", "action": "generate", "reasons": ["new asset"],
                                  "codes": ["new-asset"], "cost": 0.0}
    assert plan["actions"][1]["codes"] == ["upstream-changed"]


def test_build_json_keeps_stdout_json_and_progress_on_stderr(project: ProjectDir):
    project.manifest(MANIFEST)
    res = project.run("build", "--json")
    assert json.loads(res.output)["generated"] == 2
    assert "generated  a  [1/2]" in res.stderr


def test_exit_codes(project: ProjectDir):
    project.manifest(MANIFEST)
    assert project.run("check").exit_code == 1  # stale: never built
    assert project.run("build").exit_code == 0
    assert project.run("check").exit_code == 0
    res = project.run("build", "nope")
    assert res.exit_code == 2 and res.stderr == "error: no asset matches 'nope'; `assetbuild ls` lists the ids\n"
    project.manifest(MANIFEST + "[assets.c]\nprompt = 3\n")
    res = project.run("plan")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "assets.c.prompt" in res.stderr


def test_a_failed_asset_exits_1_with_its_line(project: ProjectDir):
    project.manifest(MANIFEST)
    project.calls.fail = {"a"}
    res = project.run("build", "-k")
    assert res.exit_code == 1
    assert "failed     a: local: emulated outage" in res.output
    assert "blocked    b: upstream a not built" in res.output
