"""`assetbuild graph` (dot, mermaid, json, list) with reference files as nodes of their own and
derived edges; `assetbuild ls` with each asset's status; -v/-q after every command."""

from __future__ import annotations

import json
import re

import click
import pytest

from assetbuild.cli import cli
from tests.conftest import ProjectDir, png

KIT = """
[project]
provider = "local"
[defaults]
size = "32x32"
[assets.logo]
prompt = "the logo"
references = ["brand/palette.png"]
[assets.hero]
prompt = "the hero"
references = ["@logo"]
[assets.og]
from = "@hero"
steps = [{ op = "resize", size = "16x16" },
         { op = "overlay", image = "brand/mark.png", position = "southeast" }]
[assets.post]
prompt = "post {color}"
matrix = { color = ["red", "navy"] }
output = "post/{color}.png"
"""


def kit(project: ProjectDir) -> ProjectDir:
    project.write("brand/palette.png", png(8, 8, (200, 20, 20)))
    project.write("brand/mark.png", png(4, 4, (0, 0, 0)))
    project.manifest(KIT)
    return project


def test_graph_json_has_file_nodes_and_edge_kinds(project):
    data = json.loads(kit(project).run("graph", "--format", "json").output)
    kinds = {n["id"]: n["kind"] for n in data["nodes"]}
    assert kinds == {"logo": "generate", "hero": "generate", "og": "derive", "post[color=red]": "generate",
                     "post[color=navy]": "generate", "brand/palette.png": "file", "brand/mark.png": "file"}
    assert sorted((e["from"], e["to"], e["kind"]) for e in data["edges"]) == [
        ("brand/mark.png", "og", "overlay"), ("brand/palette.png", "logo", "reference"),
        ("hero", "og", "from"), ("logo", "hero", "reference")]


def test_graph_targets_select_their_upstream_only(project):
    data = json.loads(kit(project).run("graph", "hero", "--format", "json").output)
    assert {n["id"] for n in data["nodes"]} == {"logo", "hero", "brand/palette.png"}
    res = project.run("graph", "nope")
    assert res.exit_code == 2 and "`assetbuild ls` lists the ids" in res.stderr


def test_graph_dot_draws_files_as_notes_and_labels_derived_edges(project):
    out = kit(project).run("graph", "--format", "dot").output
    assert out.startswith("digraph assetbuild {") and out.rstrip().endswith("}")
    assert '"brand/palette.png" [label="brand/palette.png", shape=note' in out
    assert '"brand/palette.png" -> "logo";' in out
    assert '"hero" -> "og" [label="from", style="bold"];' in out
    assert '"brand/mark.png" -> "og" [label="overlay", style="dashed"];' in out
    assert '"og" [label="og", shape=box, style="rounded"];' in out
    assert out.count("->") == 4


def test_graph_mermaid_has_file_nodes_and_labelled_edges(project):
    lines = kit(project).run("graph", "--format", "mermaid").output.splitlines()
    assert lines[0] == "graph LR"
    ids = {m.group(2): m.group(1) for m in (re.match(r'\s+(\w+)\W+"([^"]+)"', line) for line in lines[1:]) if m}
    assert f'  {ids["brand/palette.png"]}[/"brand/palette.png"/]:::file' in lines
    assert f'  {ids["og"]}("og")' in lines
    assert f'  {ids["brand/palette.png"]} --> {ids["logo"]}' in lines
    assert f'  {ids["hero"]} -->|from| {ids["og"]}' in lines
    assert f'  {ids["brand/mark.png"]} -.->|overlay| {ids["og"]}' in lines
    assert "  classDef file fill:#eee,stroke:#888" in lines


def test_ls_says_each_assets_status(project):
    kit(project)
    assert project.run("ls").output.splitlines() == [
        "logo              new", "hero              new", "og                new",
        "post[color=red]   new", "post[color=navy]  new"]
    assert project.run("build").exit_code == 0
    assert set(project.run("ls").output.split()) == {"logo", "hero", "og", "post[color=red]", "post[color=navy]",
                                                     "up-to-date"}
    (project.root / "assets/post/red.png").unlink()
    project.write("brand/palette.png", png(8, 8, (0, 200, 0)))
    project.write("assets/hero.png", png(32, 32, (1, 2, 3)))  # a hand edit
    lines = project.run("ls").output.splitlines()
    assert lines[0] == "logo              stale  (reference brand/palette.png changed)"
    assert lines[1].startswith("hero              modified  (")
    assert lines[3] == "post[color=red]   missing  (output assets/post/red.png missing; in the cache)"
    assert lines[4] == "post[color=navy]  up-to-date"
    assert project.run("graph", "--format", "list").output == project.run("ls").output
    rows = json.loads(project.run("ls", "post*", "--json").output)
    assert [(r["id"], r["status"]) for r in rows] == [("post[color=red]", "missing"), ("post[color=navy]", "up-to-date")]
    assert [line.split()[0] for line in project.run("ls", "og").output.splitlines()] == ["og"]  # not its upstream
    assert project.calls.total == 0


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


ALL = sorted(_commands(cli))


def test_every_command_is_listed():
    assert ("build",) in ALL and ("cache", "gc") in ALL and ("ls",) in ALL and len(ALL) >= 12


@pytest.mark.parametrize("command", ALL, ids=" ".join)
@pytest.mark.parametrize("flag", ["-v", "--verbose", "-q", "--quiet"])
def test_verbosity_flags_are_accepted_after_every_command(project, command, flag):
    res = project.run(*command, flag, "--help")
    assert res.exit_code == 0, res.output + res.stderr
    assert "-v, --verbose" in res.output and "-q, --quiet" in res.output


def test_v_and_q_after_the_command_act_as_before_it(project):
    kit(project)
    assert project.run("build").exit_code == 0
    after, before = project.run("build", "-v").output, project.run("-v", "build").output
    assert after == before and "up-to-date logo  [1/5]" in after
    assert project.run("build").output.splitlines() == [
        "build: 0 generated, 0 restored, 0 derived, 5 up to date, 0 failed, 0 blocked; cost $0.00"]
    project.manifest(KIT.replace("the hero", "the hero, bolder"))
    assert project.run("plan", "-q").output == project.run("-q", "plan").output
    quiet = project.run("plan", "-q").output.splitlines()
    assert len(quiet) == 1 and quiet[0].startswith("plan: ")
    assert project.run("build", "--quiet").output.splitlines() == [
        "build: 1 generated, 0 restored, 1 derived, 3 up to date, 0 failed, 0 blocked; cost $0.00"]
    res = project.run("build", "-v", "-q")
    assert res.exit_code == 2 and res.stderr == "error: -q and -v: give one of them\n"
