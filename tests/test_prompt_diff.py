"""Where a prompt changed, plan, explain and report show old -> new as a word diff (issue 21,
item 5), as `terraform plan` shows a changed attribute."""

from __future__ import annotations

import json
import subprocess

from assetbuild.plan.wordiff import Piece, inline, shorten, word_diff
from tests.conftest import ProjectDir

KIT = """\
[project]
output_dir = "assets"
[defaults]
size = "32x32"
[assets.hero]
prompt = "Our fox mascot on a mountain at golden hour, wide hero banner"
[assets.night]
prompt = "The same scene at night"
references = ["@hero"]
"""


def test_word_diff_marks_removed_and_added_words() -> None:
    pieces = word_diff("a fox at golden hour, wide", "a fox at dawn; wide")
    assert inline(pieces) == "a fox at [-golden hour,-]{+dawn;+} wide"
    assert "".join(p.text for p in pieces if p.op != "+") == "a fox at golden hour, wide"
    assert "".join(p.text for p in pieces if p.op != "-") == "a fox at dawn; wide"
    assert word_diff("same", "same") == [Piece("=", "same")]


def test_a_long_prompt_keeps_a_few_words_around_the_change() -> None:
    old = " ".join(f"w{i}" for i in range(40))
    new = old.replace("w20", "CHANGED")
    short = inline(shorten(word_diff(old, new)))
    assert short == "… w14 w15 w16 w17 w18 w19 [-w20-]{+CHANGED+} w21 w22 w23 w24 w25 w26 …"


def _changed(project: ProjectDir) -> None:
    project.manifest(KIT)
    assert project.run("build").exit_code == 0
    project.manifest(KIT.replace("at golden hour", "at dawn"))


def test_plan_shows_the_prompt_diff_under_the_decision(project: ProjectDir) -> None:
    _changed(project)
    lines = project.run("plan").output.splitlines()
    i = lines.index("generate   hero   (prompt changed)")
    assert lines[i + 1] == " " * 18 + "prompt: Our fox mascot on a mountain at [-golden hour-]{+dawn+}, wide hero banner"
    assert not any("prompt:" in line for line in lines[i + 2:])  # night's prompt did not change
    markdown = project.run("plan", "--format", "markdown").output
    assert "- `hero`: `Our fox mascot on a mountain at [-golden hour-]{+dawn+}, wide hero banner`" in markdown
    # codes and reason texts stay as they were
    hero = json.loads(project.run("plan", "--json").output)["actions"][0]
    assert hero["reasons"] == ["prompt changed"] and hero["codes"] == ["prompt-changed"]


def test_explain_shows_the_old_prompt_and_the_diff(project: ProjectDir) -> None:
    _changed(project)
    out = project.run("explain", "hero").output
    assert '  was          "Our fox mascot on a mountain at golden hour, wide hero banner"' in out
    assert "  diff         Our fox mascot on a mountain at [-golden hour-]{+dawn+}, wide hero banner" in out
    info = json.loads(project.run("explain", "hero", "--json").output)
    assert info["prompt_diff"]["old"].endswith("golden hour, wide hero banner")
    assert ["-", "golden hour"] in info["prompt_diff"]["words"] and ["+", "dawn"] in info["prompt_diff"]["words"]
    assert json.loads(project.run("explain", "night", "--json").output)["prompt_diff"] is None


def test_report_marks_removed_and_added_words(project: ProjectDir) -> None:
    _changed(project)
    assert project.run("report").exit_code == 0
    page = (project.root / "assetbuild-report.html").read_text()
    assert ('<li class="prompt-diff">prompt: <span class="diff">Our fox mascot on a mountain at '
            "<del>golden hour</del><ins>dawn</ins>, wide hero banner</span></li>") in page


def test_report_since_a_commit_shows_how_the_prompt_changed(project: ProjectDir) -> None:
    project.manifest(KIT)
    assert project.run("build").exit_code == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(git + ["add", "-A"], cwd=project.root, check=True)
    subprocess.run(git + ["commit", "-qm", "kit"], cwd=project.root, check=True)
    project.manifest(KIT.replace("at golden hour", "at dawn"))
    assert project.run("build").exit_code == 0  # built: the plan is clean, the change is against HEAD
    assert project.run("report").exit_code == 0
    page = (project.root / "assetbuild-report.html").read_text()
    card = page[page.index('<article class="change changed" data-asset="hero"'):]
    card = card[:card.index("</article>")]
    assert "<del>golden hour</del><ins>dawn</ins>" in card
