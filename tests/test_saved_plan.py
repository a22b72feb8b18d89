"""A saved plan (issue 21, item 6): `plan -o FILE` saves the decisions, the cost and every hash
they rest on; `build --plan FILE` builds exactly that plan, and refuses (one line, exit 2,
nothing sent) when anything it rests on changed; `plan --exit-code` exits 1 when there is work."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ProjectDir, png

KIT = """\
[project]
output_dir = "assets"
[defaults]
size = "32x32"
[assets.logo]
prompt = "a logo"
references = ["brand/mark.png"]
[assets.banner]
prompt = "a banner with the logo"
references = ["@logo"]
[assets.thumb]
from = "@banner"
steps = [{ op = "resize", size = "16x16" }]
"""


@pytest.fixture
def kit(project: ProjectDir) -> ProjectDir:
    project.manifest(KIT)
    project.write("brand/mark.png", png(8, 8))
    return project


def refused(project: ProjectDir, words: str) -> None:
    res = project.run("build", "--plan", "plan.json")
    assert res.exit_code == 2 and project.calls.total == 0, res.output + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "nothing was sent" in lines[0], lines


def test_plan_o_saves_decisions_cost_and_hashes_and_build_plan_does_exactly_that(kit: ProjectDir) -> None:
    res = kit.run("plan", "-o", "plan.json")
    assert res.exit_code == 0 and "saved to plan.json" in res.stderr
    saved = json.loads((kit.root / "plan.json").read_text())
    assert [(a["asset"], a["action"]) for a in saved["actions"]] == [
        ("logo", "generate"), ("banner", "generate"), ("thumb", "derive")]
    assert saved["estimated_cost"] == 0 and saved["manifest"]["name"] == "assetbuild.toml"
    assert saved["lock"]["sha256"] is None  # no lock yet: that is a fact the plan rests on too
    assert set(saved["files"]) == {"assets/logo.png", "assets/banner.png", "assets/thumb.png", "brand/mark.png"}
    assert saved["files"]["brand/mark.png"] is not None and saved["files"]["assets/logo.png"] is None

    built = kit.run("build", "--plan", "plan.json", "--json")
    assert built.exit_code == 0, built.stderr
    assert json.loads(built.output)["generated"] == 2 and kit.calls.assets == {"logo", "banner"}
    assert kit.run("check").exit_code == 0
    refused(kit, "assetbuild.lock changed")  # applied once: the lock it rested on is gone


@pytest.mark.parametrize("change, words", [
    (lambda p: p.manifest(KIT.replace("a banner with", "a wide banner with")), "assetbuild.toml changed"),
    (lambda p: p.write("brand/mark.png", png(8, 8, (200, 0, 0))), "brand/mark.png changed"),
    (lambda p: p.write("assets/logo.png", png(32, 32, (1, 2, 3))), "assets/logo.png changed"),
    (lambda p: (p.root / "assets" / "thumb.png").unlink(), "assets/thumb.png is gone"),
    (lambda p: p.write("assetbuild.lock", (p.root / "assetbuild.lock").read_text() + "\n"), "assetbuild.lock changed"),
])
def test_build_plan_refuses_when_anything_it_rests_on_changed(kit: ProjectDir, change, words) -> None:
    assert kit.run("build").exit_code == 0
    kit.manifest(KIT.replace("a logo", "a new logo"))
    assert kit.run("plan", "-o", "plan.json").exit_code == 0
    change(kit)
    refused(kit, words)


def test_a_generate_the_cache_can_now_restore_is_restored_for_free(kit: ProjectDir, tmp_path) -> None:
    assert kit.run("plan", "-o", "plan.json").exit_code == 0
    twin = ProjectDir(tmp_path / "twin", tmp_path / "cache")  # the same cache: a teammate or an earlier run
    shutil.copytree(kit.root, twin.root)
    assert twin.run("build").exit_code == 0 and twin.calls.total == 2
    res = kit.run("build", "--plan", "plan.json", "--json")
    assert res.exit_code == 0 and kit.calls.total == 0
    assert json.loads(res.output)["restored"] == 3  # the derived thumb too, from the cache


def test_a_plan_made_with_assume_keys_is_refused_when_the_key_is_missing(kit: ProjectDir) -> None:
    kit.manifest(KIT.replace("[project]\n", '[project]\nprovider = "ark"\n').replace('"32x32"', '"1K"')
                 + '[providers.ark]\ntype = "modelark"\n')
    assert kit.run("plan", "--assume-keys", "-o", "plan.json").exit_code == 0
    assert json.loads((kit.root / "plan.json").read_text())["estimated_cost"] > 0
    refused(kit, "logo was planned as generate and is now blocked (new asset; API key not set: set the environment "
                 "variable ARK_API_KEY)")


def test_build_plan_takes_no_targets_or_flags_and_rejects_what_is_not_a_plan(kit: ProjectDir) -> None:
    assert kit.run("plan", "logo", "-o", "plan.json").exit_code == 0
    res = kit.run("build", "--plan", "plan.json", "logo", "--force")
    assert res.exit_code == 2 and "leave out TARGETS, --force" in res.stderr
    built = kit.run("build", "--plan", "plan.json")  # the targets it was planned with: logo only
    assert built.exit_code == 0 and kit.calls.assets == {"logo"}
    for text, words in [("{", "not a saved plan (JSONDecodeError)"), ('{"format": "x"}', "not a saved plan"),
                        ('{"format": "assetbuild-plan", "version": 9}', "plan format version 9 is not 1"),
                        ('{"format": "assetbuild-plan", "version": 1}', "damaged")]:
        kit.write("plan.json", text)
        res = kit.run("build", "--plan", "plan.json")
        assert res.exit_code == 2 and words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "Traceback" not in res.stderr


def test_plan_exit_code_is_1_when_there_is_work(kit: ProjectDir) -> None:
    assert kit.run("plan", "--exit-code").exit_code == 1
    assert kit.run("plan", "--exit-code", "--format", "markdown").exit_code == 1
    assert kit.run("plan").exit_code == 0  # without the flag, as ever
    assert kit.run("build").exit_code == 0
    assert kit.run("plan", "--exit-code").exit_code == 0
    kit.manifest(KIT.replace("[assets.thumb]", "[assets.gone]\nprompt = 'x'\n[assets.thumb]"))
    kit.run("build")
    kit.manifest(KIT)  # only a prune left to do: that is work too
    assert kit.run("plan", "--exit-code").exit_code == 1
