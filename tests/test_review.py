"""The review loop (issue 8): candidates, pick, reroll, adopt, and LFS pointers, driven
through the CLI on projects in temp dirs; the provider calls are counted."""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from pathlib import Path

import pytest

from assetbuild.store.cache import Cache
from assetbuild.errors import LockfileError
from assetbuild.store.lockfile import LockEntry, Lockfile, OutputRecord
from tests.conftest import ProjectDir, png
from tests.fakes.ark import ArkEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.fal import FalEmulator

KIT = """
[project]
provider = "local"
[defaults]
size = "64x64"
[assets.logo]
prompt = "a fox head logo"
candidates = 3
[assets.hero]
prompt = "the fox on a ridge"
references = ["@logo"]
[assets.thumb]
from = "@logo"
steps = [{ op = "resize", size = "32x32" }]
[assets.poster]
prompt = "a poster with the hero"
references = ["@hero"]
[assets.other]
prompt = "independent"
"""
LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lock(project: ProjectDir) -> dict:
    return tomllib.loads((project.root / "assetbuild.lock").read_text())["assets"]


def built(project: ProjectDir, *args: str) -> dict:
    res = project.run("build", "--json", *args)
    assert res.exit_code == 0, res.stderr + res.output
    return json.loads(res.output)


def planned(project: ProjectDir, *args: str) -> dict[str, dict]:
    res = project.run("plan", "--json", *args)
    assert res.exit_code == 0, res.stderr
    return {a["asset"]: a for a in json.loads(res.output)["actions"]}


def kit(project: ProjectDir) -> None:
    project.manifest(KIT)
    assert built(project)["generated"] == 4


def cache_of(project: ProjectDir) -> Cache:
    return Cache(Path(project.env["ASSETBUILD_CACHE_DIR"]))


# -- candidates -------------------------------------------------------------------------------

def test_candidates_come_from_one_request_all_cached_and_locked_first_picked(project):
    kit(project)
    project.run("build")  # nothing left to do
    project.manifest(KIT)
    (project.root / "assetbuild.lock").unlink()
    shutil.rmtree(project.root / "assets")
    shutil.rmtree(project.env["ASSETBUILD_CACHE_DIR"])
    built(project)
    assert project.calls.by_asset["logo"] == 1  # one request for the three
    entry = lock(project)["logo"]
    assert entry["candidates"] == 3 and entry["pick"] == 1 and "adopted" not in entry
    shas = entry["candidate_images"]
    assert len(shas) == 3 and len(set(shas)) == 3  # the local provider renders distinct candidates
    assert entry["outputs"][0]["sha256"] == shas[0] == sha(project.read("assets/logo.png"))
    assert [o["path"] for o in entry["outputs"]] == ["assets/logo.png"]
    cache = cache_of(project)
    try:
        assert all(cache.get_blob(s) is not None for s in shas)
    finally:
        cache.close()
    # the dependents read the pick
    assert lock(project)["hero"]["references"][0]["sha256"] == shas[0]
    # a plain asset's table has none of the review keys
    assert not {"candidates", "candidate_images", "pick", "adopted"} & set(lock(project)["other"])


def test_candidates_render_the_same_bytes_in_a_fresh_project(project, tmp_path):
    kit(project)
    again = ProjectDir(tmp_path / "again", tmp_path / "again-cache")
    again.root.mkdir()
    kit(again)
    assert lock(again)["logo"]["candidate_images"] == lock(project)["logo"]["candidate_images"]


@pytest.mark.parametrize("text, expected", [
    ("candidates = 1", "greater than or equal to 2"),
    ("candidates = 16", "less than or equal to 15"),
    ('candidates = "3"', "wrong type"),
    ("candidates = 3\ncount = 2", "use one of the two"),
])
def test_bad_candidates_are_one_line_naming_the_key(project, text, expected):
    project.manifest(f'[project]\nprovider = "local"\n[assets.logo]\nprompt = "x"\nsize = "64x64"\n{text}\n')
    res = project.run("plan")
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "candidates" in lines[0] and expected in lines[0], res.stderr
    assert "assetbuild.toml" in lines[0]


def test_candidates_on_a_derived_asset_is_an_error(project):
    project.manifest('[project]\nprovider = "local"\n[assets.a]\nprompt = "x"\nsize = "64x64"\n'
                     '[assets.b]\nfrom = "@a"\nsteps = [{ op = "grayscale" }]\ncandidates = 2\n')
    res = project.run("plan")
    assert res.exit_code == 2 and "candidates does not apply to a derived asset" in res.stderr


def test_candidates_changed_regenerates_and_says_why(project):
    kit(project)
    project.manifest(KIT.replace("candidates = 3", "candidates = 4"))
    logo = planned(project)["logo"]
    assert logo["action"] == "generate" and logo["reasons"] == ["candidates changed (3 -> 4)"]
    built(project)
    assert len(lock(project)["logo"]["candidate_images"]) == 4


def test_candidates_ask_the_host_for_n_images_in_one_request_and_cost_n(project):
    project.clock = FakeClock()
    project.env["E2E_KEY"] = "sk-review-1"
    emu = ArkEmulator(api_key="sk-review-1").start()
    try:
        project.manifest(f"""
            [project]
            provider = "ark"
            [providers.ark]
            type = "modelark"
            base_url = "{emu.base_url}"
            api_key_env = "E2E_KEY"
            [assets.logo]
            prompt = "a fox head logo"
            size = "2K"
            candidates = 3
            """)
        assert planned(project)["logo"]["cost"] == pytest.approx(0.09)
        summary = built(project, "--yes")
        assert summary["generated"] == 1 and summary["cost"] == pytest.approx(0.09)
        assert len(emu.submits) == 1
        body = emu.submits[0].json
        assert body["sequential_image_generation_options"]["max_images"] == 3
        entry = lock(project)["logo"]
        assert len(entry["candidate_images"]) == 3 and len(entry["outputs"]) == 1
        # pick pays nothing and sends nothing
        assert project.run("pick", "logo", "3").exit_code == 0
        assert len(emu.submits) == 1
        assert sha(project.read("assets/logo.png")) == entry["candidate_images"][2]
    finally:
        emu.stop()


# -- pick -------------------------------------------------------------------------------------

def test_pick_swaps_the_output_and_makes_exactly_its_dependents_stale_for_nothing(project):  # acceptance 2
    kit(project)
    before = lock(project)
    res = project.run("pick", "logo", "2")
    assert res.exit_code == 0, res.stderr
    assert project.calls.total == 0
    assert "now stale: hero, thumb" in res.output
    entry = lock(project)["logo"]
    assert entry["pick"] == 2 and entry["candidate_images"] == before["logo"]["candidate_images"]
    assert entry["fingerprint"] == before["logo"]["fingerprint"]
    assert sha(project.read("assets/logo.png")) == entry["candidate_images"][1] == entry["outputs"][0]["sha256"]
    plan = planned(project)
    assert {a: p["action"] for a, p in plan.items()} == {
        "logo": "up-to-date", "hero": "generate", "thumb": "derive", "poster": "generate", "other": "up-to-date"}
    assert plan["hero"]["codes"] == ["upstream-changed"] and plan["thumb"]["codes"] == ["upstream-changed"]
    summary = built(project)
    assert project.calls.assets == {"hero", "poster"} and summary["derived"] == 1
    assert lock(project)["hero"]["references"][0]["sha256"] == entry["candidate_images"][1]
    assert built(project)["up_to_date"] == 5 and project.calls.total == 0
    # picking back is free too, and a deleted output comes back as the pick
    assert project.run("pick", "logo", "1").exit_code == 0 and project.calls.total == 0
    (project.root / "assets" / "logo.png").unlink()
    assert planned(project)["logo"]["action"] == "restore"
    built(project, "logo")
    assert sha(project.read("assets/logo.png")) == entry["candidate_images"][0]


def test_pick_works_for_a_teammate_through_the_shared_cache(project, tmp_path):
    remote = {"ASSETBUILD_CACHE_REMOTE": (tmp_path / "shared").as_uri()}
    project.env.update(remote)
    kit(project)
    mate = ProjectDir(tmp_path / "mate", tmp_path / "mate-cache")
    mate.env.update(remote)
    shutil.copytree(project.root, mate.root)  # a clone: manifest, lock and outputs, no cache
    res = mate.run("pick", "logo", "3")
    assert res.exit_code == 0, res.stderr
    assert mate.calls.total == 0
    assert sha(mate.read("assets/logo.png")) == lock(project)["logo"]["candidate_images"][2]


def test_pick_refuses_bad_numbers_assets_without_candidates_and_hand_edits(project):
    kit(project)
    for args, words in [(("logo", "4"), "logo has 3 candidates; pick 1..3"),
                        (("other", "1"), "other has no candidates to pick from"),
                        (("thumb", "1"), "thumb has no candidates"),
                        (("nope", "1"), "no asset matches 'nope'")]:
        res = project.run("pick", *args)
        assert res.exit_code == 2 and words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert project.run("pick", "logo", "0").exit_code == 2
    edited = png(64, 64, (1, 2, 3))
    project.write("assets/logo.png", edited)
    res = project.run("pick", "logo", "2")
    assert res.exit_code == 2 and "modified by hand" in res.stderr and "assetbuild adopt logo" in res.stderr
    assert project.read("assets/logo.png") == edited
    assert project.run("pick", "logo", "2", "--force").exit_code == 0
    # inputs changed since the candidates were made: build first
    project.manifest(KIT.replace("a fox head logo", "a wolf head logo"))
    res = project.run("pick", "logo", "1")
    assert res.exit_code == 2 and "changed since its candidates were made (prompt changed" in res.stderr


def test_pick_of_a_negative_or_non_numeric_candidate_is_one_line_exit_2(project):  # issue 17 item 11
    kit(project)
    for number, words in [("-1", "logo has 3 candidates; pick 1..3"), ("abc", "not 'abc'")]:
        res = project.run("pick", "logo", number)
        assert res.exit_code == 2, res.stderr + res.output
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "Usage:" not in res.stderr


# -- reroll -----------------------------------------------------------------------------------

def test_reroll_makes_exactly_one_call_and_the_previous_image_stays_pickable(project):  # acceptance 2
    kit(project)
    old = project.read("assets/other.png")
    plan = planned(project, "--reroll", "other")
    assert plan["other"]["action"] == "generate" and plan["other"]["codes"] == ["reroll"]
    assert plan["logo"]["action"] == "up-to-date"
    res = project.run("reroll", "other")
    assert res.exit_code == 0, res.stderr + res.output
    assert project.calls.by_asset == {"other": 1}
    new = project.read("assets/other.png")
    assert new != old
    entry = lock(project)["other"]
    assert entry["candidate_images"] == [sha(old), sha(new)] and entry["pick"] == 2
    assert built(project)["up_to_date"] == 5 and project.calls.total == 0  # nothing else is stale
    assert project.run("pick", "other", "1").exit_code == 0 and project.calls.total == 0
    assert project.read("assets/other.png") == old


def test_reroll_of_candidates_keeps_every_earlier_candidate_and_stales_dependents(project):
    kit(project)
    first = lock(project)["logo"]["candidate_images"]
    res = project.run("reroll", "logo", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["generated"] == 1
    assert project.calls.by_asset == {"logo": 1}
    entry = lock(project)["logo"]
    assert entry["candidate_images"][:3] == first and len(entry["candidate_images"]) == 6
    assert entry["pick"] == 4 and sha(project.read("assets/logo.png")) == entry["candidate_images"][3]
    assert {a for a, p in planned(project).items() if p["action"] != "up-to-date"} == {"hero", "thumb", "poster"}
    assert project.run("pick", "logo", "2").exit_code == 0 and project.calls.total == 0
    # a second reroll keeps all six
    assert project.run("reroll", "logo").exit_code == 0 and project.calls.total == 1
    assert len(lock(project)["logo"]["candidate_images"]) == 9


def test_reroll_sends_a_new_seed_and_request_to_a_host_that_takes_one(project):
    project.clock = FakeClock()
    project.env["E2E_KEY"] = "sk-review-2"
    emu = FalEmulator(api_key="sk-review-2").start()
    try:
        project.manifest(f"""
            [project]
            provider = "fal"
            [providers.fal]
            type = "fal"
            base_url = "{emu.base_url}"
            api_key_env = "E2E_KEY"
            poll_interval_s = 0.01
            [assets.hero]
            prompt = "a fox on a ridge"
            size = "2K"
            seed = 7
            """)
        built(project, "--yes")
        assert project.run("reroll", "hero", "--yes").exit_code == 0
        assert len(emu.submits) == 2 and project.calls.total == 1
        seeds = [r.json.get("seed") for r in emu.submits]
        assert seeds[0] == 7 and seeds[1] not in (None, 7)
        assert len(lock(project)["hero"]["candidate_images"]) == 2
    finally:
        emu.stop()


def test_reroll_refuses_derived_assets_and_assets_with_several_outputs(project):
    project.manifest(KIT + '[assets.board]\nprompt = "panels"\ncount = 2\n')
    built(project)
    for asset, words in [("thumb", "thumb is derived"), ("board", "keeps all 2 images")]:
        res = project.run("reroll", asset)
        assert res.exit_code == 2 and words in res.stderr and project.calls.total == 0, res.stderr


# -- adopt ------------------------------------------------------------------------------------

def test_adopt_keeps_a_hand_edit_through_later_builds_and_rebuilds_exactly_dependents(project):  # acceptance 2
    kit(project)
    retouched = png(64, 64, (250, 100, 0))
    project.write("assets/logo.png", retouched)
    res = project.run("build")
    assert res.exit_code == 1 and "modified by hand (`assetbuild adopt logo` keeps it" in res.output
    assert project.calls.total == 0
    res = project.run("adopt", "logo")
    assert res.exit_code == 0, res.stderr
    assert "now stale: hero, thumb" in res.output
    entry = lock(project)["logo"]
    assert entry["adopted"] == sha(retouched) == entry["outputs"][0]["sha256"]
    assert len(entry["candidate_images"]) == 3  # the candidates stay
    cache = cache_of(project)
    try:
        assert cache.get_blob(sha(retouched)) == retouched
    finally:
        cache.close()
    summary = built(project)
    assert project.calls.assets == {"hero", "poster"} and summary["derived"] == 1
    assert lock(project)["hero"]["references"][0]["sha256"] == sha(retouched)
    assert project.read("assets/logo.png") == retouched
    assert built(project)["up_to_date"] == 5 and project.calls.total == 0
    assert project.run("check").exit_code == 0
    # a deleted adopted output comes back as the hand edit, free
    (project.root / "assets" / "logo.png").unlink()
    built(project)
    assert project.read("assets/logo.png") == retouched and project.calls.total == 0


def test_changed_inputs_of_an_adopted_asset_do_not_discard_the_hand_edit_without_force(project):
    kit(project)
    retouched = png(64, 64, (250, 100, 0))
    project.write("assets/logo.png", retouched)
    assert project.run("adopt", "logo").exit_code == 0
    built(project)
    project.manifest(KIT.replace("a fox head logo", "a wolf head logo"))
    plan = planned(project)
    assert plan["logo"]["action"] == "blocked"
    assert plan["logo"]["codes"] == ["prompt-changed", "adopted-inputs-changed"]
    assert "would discard the hand edit" in plan["logo"]["reasons"][1]
    assert {a: p["action"] for a, p in plan.items() if a != "logo"} == {
        "hero": "up-to-date", "thumb": "up-to-date", "poster": "up-to-date", "other": "up-to-date"}
    res = project.run("build")
    assert res.exit_code == 1 and project.calls.total == 0
    assert project.read("assets/logo.png") == retouched
    check = project.run("check")
    assert check.exit_code == 1 and "adopted by hand" in check.output
    built(project, "--force", "logo")
    assert project.calls.by_asset == {"logo": 1}
    assert project.read("assets/logo.png") != retouched and "adopted" not in lock(project)["logo"]


def test_adopt_refuses_what_it_cannot_adopt(project):
    kit(project)
    res = project.run("adopt", "logo")
    assert res.exit_code == 0 and "nothing to adopt" in res.output
    project.write("assets/logo.png", b"not an image")
    res = project.run("adopt", "logo")
    assert res.exit_code == 2 and "is not an image" in res.stderr
    (project.root / "assets" / "logo.png").unlink()
    res = project.run("adopt", "logo")
    assert res.exit_code == 2 and "does not exist" in res.stderr
    project.manifest(KIT + '[assets.fresh]\nprompt = "never built"\n')
    res = project.run("adopt", "fresh")
    assert res.exit_code == 2 and "has not been built yet" in res.stderr


# -- Git LFS pointers -------------------------------------------------------------------------

def test_an_lfs_pointer_output_is_reported_as_such_not_as_a_hand_edit(project):
    kit(project)
    project.write("assets/other.png", LFS_POINTER)
    plan = planned(project)
    assert plan["other"]["action"] == "blocked" and plan["other"]["codes"] == ["lfs-pointer"]
    assert "git lfs pull" in plan["other"]["reasons"][0]
    res = project.run("build")
    assert res.exit_code == 1 and "Git LFS pointer" in res.output and "modified by hand" not in res.output
    assert project.read("assets/other.png") == LFS_POINTER and project.calls.total == 0
    check = project.run("check")
    assert check.exit_code == 1 and "run git lfs pull" in check.output
    res = project.run("adopt", "other")
    assert res.exit_code == 2 and "git lfs pull" in res.stderr


# -- the lock ---------------------------------------------------------------------------------

def test_the_review_keys_round_trip_through_the_lock(tmp_path):
    shas = tuple(sha(bytes([i])) for i in range(3))
    entry = LockEntry(fingerprint="f" * 64, provider="local", model_id="local", built="2026-12-04T00:00:00Z",
                      cost_usd=0.0, inputs={"recipe": 1, "kind": "generate", "prompt": "p", "model": "local",
                                            "size": "8x8", "count": 1, "candidates": 3, "seed": None,
                                            "watermark": False, "params": {}, "references": []},
                      outputs=(OutputRecord("assets/a.png", shas[1], 8, 8),),
                      candidate_images=shas, pick=2, adopted=sha(b"edit"))
    path = tmp_path / "assetbuild.lock"
    Lockfile(path, {"a": entry}).save()
    table = tomllib.loads(path.read_text())["assets"]["a"]
    assert table["candidates"] == 3 and table["candidate_images"] == list(shas) and table["pick"] == 2
    assert table["adopted"] == sha(b"edit")
    again = Lockfile.load(path).entries["a"]
    assert again.candidate_images == shas and again.pick == 2 and again.adopted == sha(b"edit")
    assert again.inputs["candidates"] == 3
    for bad, key in [("pick = 2", "pick = 9"), ("pick = 2", "pick = 0")]:
        path.write_text(path.read_text().replace(bad, key) if bad in path.read_text() else path.read_text())
        with pytest.raises(LockfileError, match="pick"):
            Lockfile.load(path)
        Lockfile(path, {"a": entry}).save()
    path.write_text(path.read_text().replace(f'adopted = "{sha(b"edit")}"', 'adopted = "nope"'))
    with pytest.raises(LockfileError, match="adopted: is not a sha256"):
        Lockfile.load(path)


def test_explain_lists_the_candidates_the_pick_and_an_adopted_edit(project):
    kit(project)
    assert project.run("pick", "logo", "2").exit_code == 0
    res = project.run("explain", "logo")
    assert res.exit_code == 0
    shas = lock(project)["logo"]["candidate_images"]
    assert f"candidate 2  sha256 {shas[1][:16]}  (the pick)" in res.output
    assert f"candidate 3  sha256 {shas[2][:16]}\n" in res.output
    retouched = png(64, 64, (250, 100, 0))
    project.write("assets/logo.png", retouched)
    assert project.run("adopt", "logo").exit_code == 0
    info = json.loads(project.run("explain", "logo", "--json").output)["lock"]
    assert info["adopted"] == sha(retouched) and info["pick"] == 2 and info["candidate_images"] == shas
