"""run/stamp.UpToDate (issue 20): a plan takes the nodes the last full plan found up to date as
up to date again, without deciding them, only while nothing they rest on changed. Every case
compares with a plan that decides every node (``every_node=True``)."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest

from assetbuild.api import Project
from assetbuild.plan.planner import Kept
from assetbuild.clock import SystemClock
from tests.conftest import png

MANIFEST = """[project]
provider = "local"

[defaults]
size = "32x32"

[assets.root]
prompt = "the root"
references = ["ref.png"]

[assets.leaf]
prompt = "the leaf"
references = ["@root"]

[assets.lone]
prompt = "on its own"

[assets.tile]
prompt = "tile {color}"
matrix = { color = ["red", "blue"] }
"""


class _Later(SystemClock):
    """The real clock, 10 s ahead: every file is past the racy window at once (a ctime cannot
    be set back; the window itself is test_no_record_while_a_file_is_in_the_racy_window's)."""

    def now(self) -> _dt.datetime:
        return super().now() + _dt.timedelta(seconds=10)


@pytest.fixture
def built(project):
    project.write("ref.png", png())
    project.manifest(MANIFEST)
    assert project.run("build").exit_code == 0
    project.clock = _Later()
    assert project.run("plan").exit_code == 0  # leaves the record (and the memos)
    return project


def _plan(project) -> tuple[list[tuple[str, str, list[str]]], int]:
    """The plan (asset, action, codes), and how many nodes it took from the record."""
    p = Project.load(project.root, env=project.env, clock=project.clock)
    result = p.plan()
    return [(d.id, d.action.value, [r.code for r in d.reasons]) for d in result.decisions], \
        sum(isinstance(d, Kept) for d in result.decisions)


def _every_node(project) -> list[tuple[str, str, list[str]]]:
    p = Project.load(project.root, env=project.env, clock=project.clock)
    return [(d.id, d.action.value, [r.code for r in d.reasons]) for d in p.plan(every_node=True).decisions]


def test_an_unchanged_project_is_taken_whole_from_the_record(built):
    plan, kept = _plan(built)
    assert kept == 5 and plan == _every_node(built) and {a for _, a, _ in plan} == {"up-to-date"}


def test_a_prompt_edit_decides_the_asset_and_its_dependents_only(built):
    built.manifest(MANIFEST.replace('"the root"', '"the new root"'))
    plan, kept = _plan(built)
    assert kept == 3  # lone and the two tiles
    assert plan == _every_node(built)
    assert [a for a, action, _ in plan if action == "generate"] == ["root", "leaf"]
    again, kept_again = _plan(built)  # the record of the edited manifest
    assert again == plan and kept_again == 3
    # a second edit on top of the first: the blueprint is the same memo's with root and lone
    # changed; the record (of the first edit) still vouches for the tiles
    built.manifest(MANIFEST.replace('"the root"', '"the new root"').replace('"on its own"', '"alone"'))
    plan, kept = _plan(built)
    assert kept == 2 and plan == _every_node(built)
    assert [a for a, action, _ in plan if action == "generate"] == ["root", "leaf", "lone"]


def test_two_edits_from_one_memo_share_what_they_changed_alike(built):
    """The blueprint memo stays the first manifest's while an edit changes few prompts; the
    record of a plan of one edit still vouches, in a plan of a later edit, for a node both
    changed alike (the same digest of its record)."""
    built.manifest(MANIFEST.replace('"the root"', '"the new root"'))
    assert built.run("build").exit_code == 0  # root and leaf made anew
    assert built.run("plan").exit_code == 0  # a full plan of the edited manifest: its record
    built.manifest(MANIFEST.replace('"the root"', '"the new root"').replace('"on its own"', '"alone"'))
    plan, kept = _plan(built)
    assert kept == 4 and plan == _every_node(built)
    assert [a for a, action, _ in plan if action != "up-to-date"] == ["lone"]


@pytest.mark.parametrize("change", ["output deleted", "output edited", "reference edited", "lock rewritten",
                                    "setting", "record damaged"])
def test_what_a_kept_node_rests_on_changing_is_seen(built, change):
    env = {}
    if change == "output deleted":
        (built.root / "assets" / "lone.png").unlink()
    elif change == "output edited":
        (built.root / "assets" / "lone.png").write_bytes(png(color=(1, 2, 3)))
    elif change == "reference edited":
        built.write("ref.png", png(color=(9, 9, 9)))
    elif change == "lock rewritten":
        lock = built.root / "assetbuild.lock"
        lock.write_text(lock.read_text().replace('"the leaf"', '"a leaf"'))
    elif change == "setting":
        env = {"ASSETBUILD_REMOTE_SIGNING_KEY": "k"}
    else:
        (record,) = Path(built.env["ASSETBUILD_CACHE_DIR"]).glob("uptodate-*")
        record.write_bytes(record.read_bytes()[:-5])
    built.env.update(env)
    plan, kept = _plan(built)
    assert plan == _every_node(built)
    assert kept == 0
    assert any(action != "up-to-date" for _, action, _ in plan) == (change in ("output deleted", "output edited",
                                                                               "reference edited"))


def test_forced_and_saved_plans_decide_every_node(built):
    p = Project.load(built.root, env=built.env, clock=built.clock)
    forced = p.plan(["lone"], force=True).decisions
    assert [d.action.value for d in forced] == ["generate"] and not any(isinstance(d, Kept) for d in forced)
    assert built.run("plan", "-o", "saved.json").exit_code == 0
    saved = json.loads((built.root / "saved.json").read_text())
    assert "ref.png" in saved["files"]  # what root's decision rests on: decided, not kept


def test_no_record_while_a_file_is_in_the_racy_window(project):
    project.write("ref.png", png())
    project.manifest(MANIFEST)
    assert project.run("build").exit_code == 0
    assert project.run("plan").exit_code == 0  # every output was just written
    assert not list(Path(project.env["ASSETBUILD_CACHE_DIR"]).glob("uptodate-*"))
    assert _plan(project)[1] == 0


def test_the_plans_json_text_is_json_dumps_of_its_json(project):
    """Plan.json_text writes up-to-date actions from a template: the same text as
    json.dumps(to_json(), indent=2), with kept, decided, generated and blocked actions."""
    remote = MANIFEST + '\n[assets.hosted]\nprompt = "on a host"\nprovider = "fal"\nsize = "1024x1024"\n'
    project.write("ref.png", png())
    project.manifest(remote)
    assert project.run("build").exit_code == 1  # hosted is blocked: FAL_KEY is not set
    project.clock = _Later()
    assert project.run("plan").exit_code == 0
    project.manifest(remote.replace('"the root"', '"the new root"'))
    result = Project.load(project.root, env=project.env, clock=project.clock).plan()
    actions = {d.id: (d.action.value, isinstance(d, Kept)) for d in result.decisions}
    assert actions["tile[color=red]"] == ("up-to-date", True) and actions["root"] == ("generate", False)
    assert actions["hosted"] == ("blocked", False) and result.missing_keys
    assert result.json_text() == json.dumps(result.to_json(), indent=2)
