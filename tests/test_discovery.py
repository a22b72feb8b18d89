"""Upward manifest discovery (issue 21, item 4): like git, ruff and uv, a command run in a
folder below the manifest finds it, searching parent folders and stopping at the repository
root; -C and -f mean what they meant."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ProjectDir

KIT = """\
[project]
output_dir = "assets"
[defaults]
size = "16x16"
[assets.logo]
prompt = "a logo"
"""


def repo(tmp_path: Path) -> ProjectDir:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    project = ProjectDir(root, tmp_path / "cache")
    project.manifest(KIT)
    (root / "assets" / "icons").mkdir(parents=True)
    return project


def test_a_command_in_a_subfolder_finds_the_manifest_above(tmp_path: Path) -> None:
    project = repo(tmp_path)
    below = ProjectDir(project.root / "assets" / "icons", tmp_path / "cache")
    planned = json.loads(below.run("plan", "--json").output)
    assert [(a["asset"], a["action"]) for a in planned["actions"]] == [("logo", "generate")]
    assert below.run("build").exit_code == 0
    # the outputs land beside the manifest, not in the folder the command ran in
    assert (project.root / "assets" / "logo.png").is_file()
    assert not (project.root / "assets" / "icons" / "assets").exists()
    assert project.run("check").exit_code == 0 and below.run("check").exit_code == 0
    assert "logo: up-to-date" in below.run("explain", "logo").output


def test_the_nearest_manifest_wins(tmp_path: Path) -> None:
    project = repo(tmp_path)
    project.write("assets/icons/assetbuild.toml", KIT.replace("[assets.logo]", "[assets.icon]"))
    deeper = project.root / "assets" / "icons" / "deeper"
    deeper.mkdir()
    planned = json.loads(ProjectDir(deeper, tmp_path / "cache").run("plan", "--json").output)
    assert [a["asset"] for a in planned["actions"]] == ["icon"]


def test_the_search_stops_at_the_repository_root(tmp_path: Path) -> None:
    outside = ProjectDir(tmp_path, tmp_path / "cache")
    outside.manifest(KIT)  # above the repository: never someone else's project
    project = tmp_path / "repo"
    (project / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    res = ProjectDir(project / "sub", tmp_path / "cache").run("plan")
    assert res.exit_code == 2 and "no manifest found" in res.stderr
    assert "Traceback" not in res.stderr


def test_dash_f_and_dash_c_are_unchanged(tmp_path: Path) -> None:
    project = repo(tmp_path)
    below = ProjectDir(project.root / "assets", tmp_path / "cache")
    # -f names a file relative to the folder (-C): no search
    res = below.run("-f", "assetbuild.toml", "plan")
    assert res.exit_code == 2 and "no manifest found" in res.stderr
    assert below.run("-f", "../assetbuild.toml", "plan").exit_code == 0
    # -C DIR runs as if started in DIR, so the search starts there
    elsewhere = ProjectDir(tmp_path, tmp_path / "cache")
    assert elsewhere.run("-C", str(project.root / "assets"), "plan").exit_code == 0
    # init writes where it runs, never into the manifest found above
    assert below.run("init").exit_code == 0 and (below.root / "assetbuild.toml").is_file()
