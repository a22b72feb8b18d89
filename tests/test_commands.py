"""The commands the CLI calls directly return typed results (dataclasses), and their JSON is
exactly what `--json` prints."""

from __future__ import annotations

import json

from assetbuild.api import Project
from assetbuild.commands.explain import Explanation, ProviderInfo, explain, provider_info
from assetbuild.commands.leftovers import Cleaned, clean
from assetbuild.commands.upkeep import CacheUsage, Collected, usage, collect
from assetbuild.plan.planner import Action
from assetbuild.store.lockfile import LockEntry
from tests.conftest import ProjectDir

KIT = """
[project]
provider = "local"
[defaults]
size = "64x64"
[assets.logo]
prompt = "a logo"
[assets.hero]
prompt = "a hero"
references = ["@logo"]
"""


def loaded(project: ProjectDir) -> Project:
    return Project.load(project.root, env=project.env)


def test_explain_is_typed_and_is_what_explain_json_prints(project):
    project.manifest(KIT)
    with loaded(project) as p:
        fresh = explain(p, "hero")
    assert isinstance(fresh, Explanation) and fresh.action is Action.GENERATE and fresh.lock is None
    assert project.run("build").exit_code == 0
    with loaded(project) as p:
        built = explain(p, "hero")
    assert built.action is Action.UP_TO_DATE and isinstance(built.lock, LockEntry)
    assert built.lock.fingerprint == built.fingerprint and built.price is not None and built.price.usd == 0.0
    assert json.loads(project.run("explain", "hero", "--json").output) == json.loads(json.dumps(built.to_json()))


def test_provider_info_rows_are_typed(project):
    project.manifest(KIT)
    with loaded(project) as p:
        rows = provider_info(p)
    assert [type(r) for r in rows] == [ProviderInfo] and rows[0].name == "local" and rows[0].key_env is None
    assert json.loads(project.run("providers", "--json").output) == [rows[0].to_json()]


def test_cache_and_clean_results_are_typed(project):
    project.manifest(KIT)
    assert project.run("build").exit_code == 0
    project.manifest(KIT.split("[assets.hero]")[0])
    with loaded(project) as p:
        info = usage(p)
        gc = collect(p, dry_run=True)
        cleaned = clean(p, dry_run=True)
    assert isinstance(info, CacheUsage) and info.local.records == 2 and info.remote_url is None
    assert isinstance(gc, Collected) and gc.remote is None and gc.locks == 1
    assert isinstance(cleaned, Cleaned) and [left.asset for left in cleaned.pruned] == ["hero"]
    assert json.loads(project.run("cache", "info", "--json").output) == json.loads(json.dumps(info.to_json()))


def test_one_asset_id_for_explain_pick_and_adopt_has_one_owner(project):
    """explain, pick and adopt name the one asset a target names through Blueprint.one: the
    same words for none and for several."""
    project.manifest(KIT)
    with loaded(project) as p:
        assert p.blueprint.one("hero", "explain") == "hero"
    for command in (("explain", "*o"), ("pick", "*o", "1"), ("adopt", "*o")):
        res = project.run(*command)
        assert res.exit_code == 2 and f"{command[0]} takes one asset; '*o' names 2 (logo, hero): name one" in res.stderr
    res = project.run("explain", "nope")
    assert res.exit_code == 2 and "explain: no asset matches 'nope'; `assetbuild ls` lists the ids" in res.stderr
