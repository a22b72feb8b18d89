"""The next command a message names is the one that helps (issue 21, item 3): after a hand edit,
`check`, `plan` and `build` name `assetbuild adopt ID` and `assetbuild build --force ID` (a plain
build only blocks), dependents say which upstream hand edit holds them, and `init` keeps the
report page out of git."""

from __future__ import annotations

import subprocess

from tests.conftest import ProjectDir, png

CHAIN = """\
[project]
output_dir = "assets"
[defaults]
size = "32x32"
[assets.logo]
prompt = "a logo"
[assets.banner]
prompt = "a banner with the logo"
references = ["@logo"]
[assets.other]
prompt = "independent"
"""

ADOPT = "`assetbuild adopt logo` keeps it, `assetbuild build --force logo` overwrites it"


def test_a_hand_edit_names_adopt_and_build_force_for_that_asset(project: ProjectDir) -> None:
    project.manifest(CHAIN)
    assert project.run("build").exit_code == 0
    project.write("assets/logo.png", png(32, 32, (1, 2, 3)))

    plan = project.run("plan").output
    assert f"output assets/logo.png modified by hand ({ADOPT})" in plan
    assert f"blocked    banner  (upstream logo not built: its output was modified by hand ({ADOPT}))" in plan

    check = project.run("check")
    assert check.exit_code == 1
    last = check.output.splitlines()[-1]
    assert last == ("check: 2 stale asset(s); hand-edited: run `assetbuild adopt logo` to keep the edits "
                    "or `assetbuild build --force logo` to overwrite them")
    assert "run `assetbuild build`" not in check.output

    build = project.run("build")
    assert build.exit_code == 1 and project.calls.total == 0
    assert "build: hand-edited: run `assetbuild adopt logo`" in build.output

    # what the hint says works: adopt, then the dependent rebuilds and all is up to date
    assert project.run("adopt", "logo").exit_code == 0
    assert project.run("build").exit_code == 0 and project.calls.assets == {"banner"}
    assert project.run("check").exit_code == 0


def test_check_still_says_build_when_nothing_is_hand_edited(project: ProjectDir) -> None:
    project.manifest(CHAIN)
    res = project.run("check")
    assert res.exit_code == 1 and res.output.splitlines()[-1] == "check: 3 stale asset(s); run `assetbuild build`"


def test_plan_json_keeps_codes_and_names_the_upstream_hand_edit(project: ProjectDir) -> None:
    import json

    project.manifest(CHAIN)
    project.run("build")
    project.write("assets/logo.png", png(32, 32, (1, 2, 3)))
    actions = {a["asset"]: a for a in json.loads(project.run("plan", "--json").output)["actions"]}
    assert actions["logo"]["codes"] == ["output-modified"]
    assert actions["banner"]["codes"] == ["upstream-hand-edited"]
    assert actions["other"]["action"] == "up-to-date"


def test_init_ignores_the_cache_temp_files_and_the_report_page(project: ProjectDir) -> None:
    assert project.run("init").exit_code == 0
    assert (project.root / ".gitignore").read_text().splitlines() == [
        ".assetbuild/", "*.assetbuild-tmp", "/assetbuild-report.html"]
    assert project.run("report").exit_code == 0 and (project.root / "assetbuild-report.html").exists()
    # real git agrees: `git add -A` leaves the page out
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project.root, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=project.root, check=True,
                            capture_output=True, text=True).stdout.split()
    assert "assetbuild-report.html" not in staged and "assetbuild.toml" in staged
