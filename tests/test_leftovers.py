"""Content, not names, decides; leftovers of deleted assets (issue 9): a rename costs nothing
with an empty cache and leaves no file behind; a deleted asset's file goes only while its
bytes are what assetbuild wrote."""

from __future__ import annotations

import json
import shutil

from tests.conftest import ProjectDir

KIT = """
[project]
output_dir = "assets"
[defaults]
size = "48x32"
[assets.hero-wide]
prompt = "a wide hero"
[assets.night]
prompt = "the hero at night"
references = ["@hero-wide"]
[assets.dawn]
prompt = "the hero at dawn"
references = ["@night"]
[assets.square]
from = "@hero-wide"
steps = [{ op = "fit", size = "32x32", mode = "cover" }]
"""


def renamed(text: str) -> str:
    return text.replace("hero-wide", "hero-web")


def built(project: ProjectDir, *args: str) -> dict:
    res = project.run("build", "--json", *args)
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads(res.output)


def empty_cache(project: ProjectDir) -> None:
    shutil.rmtree(project.env["ASSETBUILD_CACHE_DIR"], ignore_errors=True)


def test_a_rename_with_an_empty_cache_costs_nothing_and_keeps_the_old_file_named(project):
    """With an empty cache (a fresh clone) nothing says assetbuild wrote the old file here:
    only the lock does, and a lock is not proof (issue 17), so the file stays, named."""
    project.manifest(KIT)
    built(project)
    old = project.read("assets/hero-wide.png")
    empty_cache(project)
    project.manifest(renamed(KIT))
    plan = project.run("plan").output
    assert "restore    hero-web" in plan and "same inputs as hero-wide" in plan
    assert "prune      hero-wide" in plan and "assets/hero-wide.png: not written here by assetbuild" in plan
    for asset in ("night", "dawn", "square"):
        assert f"up-to-date {asset}" in plan
    summary = built(project)
    assert project.calls.total == 0
    assert summary["restored"] == 1 and summary["up_to_date"] == 3 and summary["generated"] == 0
    assert project.read("assets/hero-web.png") == old
    assert project.read("assets/hero-wide.png") == old  # kept: delete it by hand
    assert "hero-wide" not in (project.root / "assetbuild.lock").read_text()
    assert project.run("check").exit_code == 0


def test_a_rename_with_the_cache_that_wrote_it_removes_the_old_file(project):
    project.manifest(KIT)
    built(project)
    project.manifest(renamed(KIT))
    plan = project.run("plan").output
    assert "prune      hero-wide" in plan and "would remove assets/hero-wide.png" in plan
    built(project)
    assert project.calls.total == 0
    assert not (project.root / "assets" / "hero-wide.png").exists()
    assert project.run("check").exit_code == 0


def test_moving_an_asset_into_a_matrix_costs_nothing(project):
    project.manifest(KIT)
    built(project)
    empty_cache(project)
    project.manifest(KIT + """
[assets.poster]
prompt = "poster {n}"
matrix = { n = ["1", "2"] }
""")
    built(project)
    assert project.calls.total == 2
    # poster[n=1] becomes a plain asset with the same inputs
    project.manifest(KIT + """
[assets.poster-one]
prompt = "poster 1"
""")
    empty_cache(project)
    summary = built(project)
    assert project.calls.total == 0 and summary["restored"] == 1


def test_a_deleted_asset_is_pruned_and_a_hand_edited_file_of_it_is_kept(project):
    project.manifest(KIT)
    built(project)
    project.manifest(KIT.split("[assets.dawn]")[0] + "[assets.square]" + KIT.split("[assets.square]")[1])
    check = project.run("check")
    assert check.exit_code == 1 and "dawn: no longer in the manifest" in check.output
    assert "prune      dawn" in project.run("plan").output
    edited = project.write("assets/dawn.png", b"retouched by hand")
    res = project.run("build")
    assert res.exit_code == 0 and "pruned     dawn" in res.output and "keeps assets/dawn.png" in res.output
    assert edited.read_bytes() == b"retouched by hand"
    assert project.run("check").exit_code == 0


def test_a_pruned_image_stays_in_the_cache(project):
    project.manifest(KIT)
    built(project)
    dawn = project.read("assets/dawn.png")
    project.manifest(KIT.replace("[assets.dawn]", "[assets.dawn-old]").replace('"the hero at dawn"', '"gone"'))
    built(project)
    assert not (project.root / "assets" / "dawn.png").exists()
    project.manifest(KIT)  # brought back: restored from the cache, not paid again
    summary = built(project)
    assert project.calls.assets == {"dawn-old"} or project.calls.total == 0
    assert project.read("assets/dawn.png") == dawn
    assert summary["restored"] >= 1


def test_clean_removes_orphans_of_earlier_locks_only_with_unchanged_bytes(project, tmp_path):
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True)

    project.manifest(KIT)
    built(project)
    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "kit")
    # the lock forgets dawn (say a hand-resolved merge dropped it), its file stays behind
    lock = project.root / "assetbuild.lock"
    text = lock.read_text()
    start = text.index("[assets.dawn]")
    end = text.index("[assets.hero-wide]")
    lock.write_text(text[:start] + text[end:])
    project.manifest(KIT.split("[assets.dawn]")[0] + "[assets.square]" + KIT.split("[assets.square]")[1])
    assert (project.root / "assets" / "dawn.png").exists()
    dry = project.run("clean", "--dry-run", "--git-revs", "5")
    assert dry.exit_code == 0 and "would remove assets/dawn.png" in dry.output
    assert (project.root / "assets" / "dawn.png").exists()
    assert "0 file(s)" in project.run("clean").output  # without history it knows nothing of dawn
    done = project.run("clean", "--git-revs", "5", "--json")
    assert json.loads(done.output)["pruned"] == [{"asset": "dawn", "files": ["assets/dawn.png"], "kept": []}]
    assert not (project.root / "assets" / "dawn.png").exists()
    assert project.run("check").exit_code == 0
