"""Issue 2 acceptance: incremental builds driven through the CLI on projects in temp dirs."""

from __future__ import annotations

import json
import os
import shutil

from tests.conftest import ProjectDir, png

CHAIN = """
[project]
provider = "local"
[defaults]
size = "64x64"
[assets.root]
prompt = "the root"
[assets.mid]
prompt = "the middle"
references = ["@root"]
[assets.leaf]
prompt = "the leaf"
references = ["@mid", "ref.png"]
[assets.other]
prompt = "independent"
"""


def counts(summary: dict) -> dict:
    """build --json's counts, without its per-asset lists (tests/test_ci_kit.py checks those)."""
    return {k: v for k, v in summary.items() if k not in ("assets", "missing_keys")}


def built(project: ProjectDir, *args: str) -> dict:
    res = project.run("build", "--json", *args)
    assert res.exit_code == 0, res.stderr + res.output
    return json.loads(res.output)


def chain(project: ProjectDir) -> None:
    project.write("ref.png", png())
    project.manifest(CHAIN)
    assert built(project)["generated"] == 4


def test_first_build_generates_everything_and_writes_lock(brand_kit):
    summary = built(brand_kit)
    assert counts(summary) == {"generated": 14, "restored": 0, "derived": 12, "up_to_date": 0, "failed": 0,
                               "blocked": 0, "cost": 0.0}
    assert (brand_kit.root / "assetbuild.lock").is_file()
    generated = 6 + 1 + 1 + 1 + 3 + 4 + 1  # sneakers, logo, hero, hero-night, social posts, storyboard, poster
    assert len(list((brand_kit.root / "assets").rglob("*.png"))) == generated + 3 + 1  # social crops, logo-mono
    assert len(list((brand_kit.root / "assets").rglob("*.webp"))) == 6  # a thumbnail per sneaker
    assert [p.name for p in (brand_kit.root / "assets").rglob("*.*") if p.suffix in (".jpg", ".ico")] in (
        ["og-image.jpg", "favicon.ico"], ["favicon.ico", "og-image.jpg"])


def test_second_build_makes_no_provider_calls(brand_kit):  # acceptance 1
    built(brand_kit)
    assert brand_kit.calls.total == 14
    summary = built(brand_kit)
    assert brand_kit.calls.total == 0
    assert summary["up_to_date"] == 14 + 12 and summary["generated"] == 0 and summary["derived"] == 0


def test_changing_a_leaf_prompt_regenerates_exactly_that_asset(project):  # acceptance 2
    chain(project)
    project.manifest(CHAIN.replace('"independent"', '"independent, now blue"'))
    assert project.run("plan").output.startswith("up-to-date")
    summary = built(project)
    assert project.calls.assets == {"other"}
    assert summary["generated"] == 1 and summary["up_to_date"] == 3


def test_changing_a_root_prompt_regenerates_root_and_transitive_dependents(project):  # acceptance 3
    chain(project)
    project.manifest(CHAIN.replace('"the root"', '"the root, redrawn"'))
    plan = json.loads(project.run("plan", "--json").output)
    reasons = {a["asset"]: a["reasons"] for a in plan["actions"]}
    assert reasons["root"] == ["prompt changed"]
    assert reasons["mid"] == ["upstream root changed"]
    built(project)
    assert project.calls.assets == {"root", "mid", "leaf"}
    assert all(n == 1 for n in project.calls.by_asset.values())


def test_reference_bytes_change_rebuilds_users_but_touch_does_not(project):  # acceptance 4
    chain(project)
    ref = project.root / "ref.png"
    st = ref.stat()
    os.utime(ref, ns=(st.st_atime_ns + 10**10, st.st_mtime_ns + 10**10))
    built(project)
    assert project.calls.total == 0
    project.write("ref.png", png(color=(250, 0, 0)))
    plan = json.loads(project.run("plan", "--json").output)
    assert {a["asset"]: a["reasons"] for a in plan["actions"]}["leaf"] == ["reference ref.png changed"]
    built(project)
    assert project.calls.assets == {"leaf"}


def test_cosmetic_manifest_changes_regenerate_nothing(project):  # acceptance 5
    chain(project)
    reordered = """
    # a comment
    [assets.other]   # moved up
    prompt    =    "independent"

    [assets.leaf]
    references = [ "@mid",
                   "ref.png" ]
    prompt = 'the leaf'

    [providers.local]
    type = "local"
    concurrency = 9
    base_url = "http://127.0.0.1:9/unused"

    [defaults]
    size = "64x64"

    [assets.mid]
    references = ["@root"]
    prompt = "the middle"

    [assets.root]
    prompt = "the root"

    [project]
    provider = "local"
    """
    project.manifest(reordered)
    summary = built(project)
    assert project.calls.total == 0 and summary["up_to_date"] == 4


def test_adding_a_matrix_value_generates_only_the_new_variant(project):  # acceptance 6
    text = """
    [assets.shoe]
    prompt = "shoe in {color}"
    size = "32x32"
    matrix = { color = ["red", "navy"] }
    """
    project.manifest(text)
    built(project)
    project.manifest(text.replace('"navy"]', '"navy", "lime"]'))
    summary = built(project)
    assert project.calls.assets == {"shoe[color=lime]"}
    assert summary == {**summary, "generated": 1, "up_to_date": 2}
    assert (project.root / "assets" / "shoe-lime.png").is_file()


def test_deleted_output_is_restored_from_cache_without_calls(project):  # acceptance 7
    chain(project)
    before = project.read("assets/mid.png")
    (project.root / "assets" / "mid.png").unlink()
    plan = json.loads(project.run("plan", "--json").output)
    assert {a["asset"]: a["action"] for a in plan["actions"]}["mid"] == "restore"
    summary = built(project)
    assert project.calls.total == 0 and summary["restored"] == 1 and summary["up_to_date"] == 3
    assert project.read("assets/mid.png") == before


def test_hand_edited_output_is_reported_and_kept_unless_forced(project):  # acceptance 8
    chain(project)
    edited = png(color=(1, 2, 3))
    project.write("assets/leaf.png", edited)
    res = project.run("build")
    assert res.exit_code == 1
    assert "output assets/leaf.png modified by hand" in res.output
    assert project.calls.total == 0 and project.read("assets/leaf.png") == edited
    check = project.run("check")
    assert check.exit_code == 1 and "modified by hand" in check.output
    summary = built(project, "--force", "leaf")
    assert project.calls.assets == {"leaf"} and summary["generated"] == 1
    assert project.read("assets/leaf.png") != edited


def test_fresh_clone_with_lock_and_outputs_is_up_to_date(project, tmp_path):  # acceptance 9
    chain(project)
    clone = ProjectDir(tmp_path / "clone", tmp_path / "empty-cache")
    shutil.copytree(project.root, clone.root, ignore=shutil.ignore_patterns(".assetbuild"))
    assert clone.run("check").exit_code == 0
    summary = built(clone)
    assert clone.calls.total == 0 and summary["up_to_date"] == 4


def test_failure_keeps_finished_assets_and_keep_going_blocks_dependents(project):  # acceptance 10
    project.write("ref.png", png())
    project.manifest(CHAIN)
    project.calls.fail = {"mid"}
    res = project.run("build", "-j", "1", "-k", "--json")
    assert res.exit_code == 1
    summary = json.loads(res.output)
    assert summary["generated"] == 2 and summary["failed"] == 1 and summary["blocked"] == 1
    assert "blocked    leaf: upstream mid not built" in res.stderr
    assert (project.root / "assets" / "root.png").is_file() and (project.root / "assets" / "other.png").is_file()
    project.calls.fail = set()
    summary = built(project)
    assert project.calls.assets == {"mid", "leaf"} and summary["up_to_date"] == 2


def test_failure_without_keep_going_stops_scheduling_but_keeps_done_work(project):
    project.write("ref.png", png())
    project.manifest(CHAIN)
    project.calls.fail = {"mid"}
    res = project.run("build", "-j", "1", "--json")
    assert res.exit_code == 1
    assert counts(json.loads(res.output)) == {"generated": 1, "restored": 0, "derived": 0, "up_to_date": 0,
                                              "failed": 1, "blocked": 2, "cost": 0.0}
    assert "blocked    other: not started: the build stopped after mid failed (-k keeps going)" in res.stderr
    assert "[assets.root]" in (project.root / "assetbuild.lock").read_text()
    project.calls.fail = set()
    built(project)
    assert project.calls.assets == {"mid", "leaf", "other"}


def test_check_names_stale_assets_without_calling_providers(project):  # acceptance 11
    chain(project)
    project.manifest(CHAIN.replace('"the middle"', '"the middle, changed"'))
    (project.root / "assets" / "other.png").unlink()
    res = project.run("check")
    assert res.exit_code == 1 and project.calls.total == 0
    assert "stale      mid: prompt changed" in res.output
    assert "stale      leaf: upstream mid changed" in res.output
    assert "stale      other: output assets/other.png missing" in res.output
    assert "root" not in res.output.replace("upstream", "")


def test_offline_build_restores_and_renders_local_but_refuses_remote(project):
    project.manifest("""
    [providers.ark]
    type = "modelark"
    [assets.a]
    prompt = "local one"
    size = "32x32"
    [assets.b]
    prompt = "remote one"
    provider = "ark"
    """)
    res = project.run("build", "--offline", "--json")
    assert res.exit_code == 1
    assert json.loads(res.output)["generated"] == 1
    assert "needs generation by ark (--offline)" in res.stderr
    assert project.calls.assets == {"a"}


def test_provider_override_switches_local_to_a_host_model(project):
    project.manifest("""
    [providers.ark]
    type = "modelark"
    [assets.a]
    prompt = "a"
    size = "2K"
    """)
    # with its key set (without, the asset is blocked on it: tests/test_keys.py)
    plan = json.loads(project.run("plan", "--json", "--provider", "ark", env={"ARK_API_KEY": "k"}).output)
    assert plan["actions"][0]["action"] == "generate" and plan["estimated_cost"] == 0.03
    res = project.run("build", "--provider", "nope")
    assert res.exit_code == 2 and "--provider nope" in res.stderr


def test_targets_bring_their_upstream_and_nothing_else(project):
    chain(project)
    for asset in ("root", "mid", "leaf", "other"):
        (project.root / "assets" / f"{asset}.png").unlink()
    shutil.rmtree(project.env["ASSETBUILD_CACHE_DIR"])
    summary = built(project, "mid")
    assert project.calls.assets == {"root", "mid"} and summary["generated"] == 2
    assert project.run("build", "nosuch").exit_code == 2


def test_removed_asset_is_pruned_from_lock_on_a_full_build(project):
    chain(project)
    project.manifest(CHAIN.split("[assets.other]")[0])
    assert "other: no longer in the manifest" in project.run("check").output
    assert "prune      other" in project.run("plan").output
    res = project.run("build")
    assert "pruned     other" in res.output
    assert "[assets.other]" not in (project.root / "assetbuild.lock").read_text()
    assert not (project.root / "assets" / "other.png").exists()
    assert project.run("check").exit_code == 0


def test_count_and_indexed_references(project):
    project.manifest("""
    [defaults]
    size = "48x32"
    [assets.board]
    prompt = "panels"
    count = 3
    [assets.pick]
    prompt = "uses panel two"
    references = ["@board#2"]
    [assets.all]
    prompt = "uses every panel"
    references = ["@board"]
    """)
    built(project)
    assert sorted(p.name for p in (project.root / "assets").iterdir()) == [
        "all.png", "board-1.png", "board-2.png", "board-3.png", "pick.png"]
    lock = (project.root / "assetbuild.lock").read_text()
    assert 'ref = "@board#2"' in lock and 'ref = "@board#3"' in lock
    info = json.loads(project.run("explain", "all", "--json").output)
    assert [r["ref"] for r in info["inputs"]["references"]] == ["@board#1", "@board#2", "@board#3"]


def test_explain_shows_inputs_and_what_differs_from_the_lock(project):
    chain(project)
    project.manifest(CHAIN.replace('"the leaf"', '"the leaf, sharper"'))
    res = project.run("explain", "leaf")
    assert res.exit_code == 0
    assert res.output.startswith("leaf: generate (prompt changed)")
    assert '  prompt       "the leaf, sharper"' in res.output
    assert "  reference    ref.png" in res.output and "  reference    @mid" in res.output
    assert "(differs)" in res.output
    assert project.run("explain", "nosuch").exit_code == 2


def test_graph_formats(project):
    chain(project)
    data = json.loads(project.run("graph", "--format", "json").output)
    assert {"from": "mid", "to": "leaf", "kind": "reference"} in data["edges"] and len(data["nodes"]) == 5
    assert '"root" -> "mid";' in project.run("graph").output
    assert "-->" in project.run("graph", "--format", "mermaid").output


def test_init_writes_a_starter_that_builds(project):
    res = project.run("init")
    assert res.exit_code == 0
    assert ".assetbuild/" in (project.root / ".gitignore").read_text()
    assert built(project)["generated"] == 2
    assert project.run("init").exit_code == 2


def test_renaming_outputs_moves_the_images_without_calls_even_with_an_empty_cache(project):
    chain(project)
    before = project.read("assets/other.png")
    shutil.rmtree(project.env["ASSETBUILD_CACHE_DIR"])
    project.manifest(CHAIN.replace('prompt = "independent"', 'prompt = "independent"\noutput = "misc/other.png"'))
    plan = json.loads(project.run("plan", "--json").output)
    assert {a["asset"]: a["reasons"] for a in plan["actions"]}["other"] == [
        "output paths changed", "from the old output paths"]
    summary = built(project)
    assert project.calls.total == 0 and summary["restored"] == 1
    assert project.read("assets/misc/other.png") == before


def test_a_second_build_of_the_same_project_at_once_is_refused(project):
    from assetbuild.store.files import exclusive

    chain(project)
    with exclusive(project.root / "assetbuild.toml"):
        res = project.run("build")
    assert res.exit_code == 2 and "another assetbuild build is running" in res.stderr
    assert project.run("build").exit_code == 0


def test_dash_f_names_another_manifest(project):
    project.write("kit.toml", '[assets.a]\nprompt = "x"\nsize = "32x32"\n')
    assert project.run("-f", "kit.toml", "build").exit_code == 0
    assert (project.root / "assets" / "a.png").is_file()
    res = project.run("-f", "missing.toml", "plan")
    assert res.exit_code == 2 and "missing.toml" in res.stderr


def test_noop_build_rehashes_nothing_and_imports_no_network_or_cache_library(project):
    import subprocess
    import sys

    from assetbuild.api import Project

    chain(project)
    for path in project.root.rglob("*"):  # age every file past the racy-mtime window
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns - 10**10, st.st_mtime_ns - 10**10))
    Project.load(project.root, env=project.env).build()  # fills the mtime+size memo
    again = Project.load(project.root, env=project.env)
    assert again.build().to_json()["up_to_date"] == 4
    assert again.hasher.hashed == 0
    code = ("import sys; from assetbuild.api import Project; "
            f"r = Project.load({str(project.root)!r}).build(); "
            "print(r.to_json()['up_to_date'], 'httpx' in sys.modules, 'diskcache' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **project.env}).stdout
    assert out.split() == ["4", "False", "False"]


def test_a_plan_is_built_under_its_own_options_by_its_own_planner(project):
    import pytest

    from assetbuild.api import BuildOptions, Project

    chain(project)
    project.calls.reset()
    with Project.load(project.root, env=project.env, provider_factory=project.factory) as p:
        assert p.plan(["other"], force=True).options == BuildOptions(force=True)  # keyword flags still read
        plan = p.plan(["other"], BuildOptions(force=True, jobs=1))
        assert plan.options.jobs == 1 and plan.forced == {"other"}
        assert [(d.id, d.action.value) for d in plan.decisions] == [("other", "generate")]
        with pytest.raises(TypeError):
            p.build(["other"], plan=plan, jobs=2)  # the plan's options, decided once, are the build's
        report = p.build(["other"], plan=plan)
        assert report.count("generated") == 1 and project.calls.total == 1  # --force came with the plan
        assert plan.planner.lock is p.lock  # re-decides over the lock it writes
