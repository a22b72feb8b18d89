"""The blueprint: the expanded graph as plain data, and its memo keyed by the manifest's
bytes, so a no-op build neither parses TOML nor imports pydantic (nor networkx, which only
names a cycle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from assetbuild.api import Project
from assetbuild.spec.blueprint import Blueprint
from tests.conftest import ProjectDir, png

MANIFEST = """
[project]
provider = "local"
[defaults]
size = "32x32"
[assets.root]
prompt = "the root"
[assets.leaf]
prompt = "the leaf"
references = ["@root", "ref.png"]
[assets.tile]
prompt = "tile {color}"
matrix = { color = ["red", "blue"] }
"""

PROBE = ("import sys, json; from assetbuild.api import Project; "
         "p = Project.load({root!r}); r = p.{call}; "
         "print(json.dumps([{result}, sorted(m for m in ('pydantic', 'networkx', 'PIL', 'tomllib', 'tomli', 'httpx') "
         "if m in sys.modules)]))")


def probe(project: ProjectDir, call: str, result: str) -> list:
    code = PROBE.format(root=str(project.root), call=call, result=result)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **project.env}).stdout
    return json.loads(out)


def age(project: ProjectDir) -> None:
    """Every file past the racy-mtime window, so the mtime+size memos trust them."""
    for path in project.root.rglob("*"):
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns - 10**10, st.st_mtime_ns - 10**10))


def test_an_unchanged_manifest_is_read_from_the_memo_without_pydantic_networkx_or_pillow(project):
    project.write("ref.png", png())
    project.manifest(MANIFEST)
    assert project.run("build").exit_code == 0
    age(project)
    assert project.run("build").exit_code == 0  # memoises the lock, now that it is old enough
    counts, imported = probe(project, "build()", "r.to_json()['up_to_date']")
    assert counts == 4 and imported == []
    # an edited prompt: the memo's nodes with the new prompt filled in (blueprint._prompt_edit),
    # its table read with tomli, and no model loaded; the change is seen
    project.manifest(MANIFEST.replace('"the leaf"', '"the leaf, again"'))
    actions, imported = probe(project, "plan()", "[d.action.value for d in r.decisions]")
    assert actions.count("generate") == 1 and imported == ["tomli"]
    # any other change validates what it touched (pydantic) and expands it again
    project.manifest(MANIFEST.replace('"the leaf"', '"the leaf, again"').replace('color = ["red", "blue"]',
                                                                            'color = ["red", "navy"]'))
    actions, imported = probe(project, "plan()", "[d.action.value for d in r.decisions]")
    # (networkx is no longer imported there: the order and the cycle check are Kahn's algorithm, graph.py)
    assert actions.count("generate") == 2 and "pydantic" in imported and "tomli" in imported


def test_the_memo_gives_the_same_blueprint_as_the_full_path(project, tmp_path):
    project.write("ref.png", png())
    path = project.manifest(MANIFEST)
    fresh = Blueprint.load(path, memo_dir=tmp_path / "memo")
    assert not (tmp_path / "memo").exists()  # written only once a plan accepted the files it names
    fresh.remember()
    recalled = Blueprint.load(path, memo_dir=tmp_path / "memo")
    assert list((tmp_path / "memo").glob("blueprint-*.json"))
    assert recalled.nodes == fresh.nodes and recalled.order == fresh.order
    assert recalled.settings == fresh.settings and recalled.providers == fresh.providers
    assert recalled.select(["leaf"]) == ["root", "leaf"] == fresh.select(["leaf"])
    assert recalled.match("tile[color=red]") == ["tile[color=red]"]


def test_a_reference_gone_or_turned_into_a_link_takes_the_full_path_and_its_error(project):
    project.write("ref.png", png())
    project.manifest(MANIFEST)
    assert project.run("build").exit_code == 0
    (project.root / "ref.png").unlink()
    res = project.run("plan")
    assert res.exit_code == 2 and "ref.png" in res.stderr and "Traceback" not in res.stderr
    outside = project.root.parent / "outside.png"
    outside.write_bytes(png())
    os.symlink(outside, project.root / "ref.png")
    res = project.run("plan")  # judged by the full path (which refuses it), never served from the memo
    assert res.exit_code == 2 and "ref.png" in res.stderr and "outside" in res.stderr, res.stderr


def test_the_provider_override_is_part_of_the_memo_key(project):
    project.write("ref.png", png())
    project.manifest(MANIFEST + '[providers.other]\ntype = "local"\n')
    assert project.run("build").exit_code == 0
    for _ in range(2):  # the second time from the memo
        assert Project.load(project.root, env=project.env, provider_override="other").nodes["root"].provider == "other"
        assert Project.load(project.root, env=project.env).nodes["root"].provider == "local"
    res = project.run("plan", "--provider", "nope")
    assert res.exit_code == 2 and "--provider nope" in res.stderr


def test_the_memo_carries_derived_nodes_kind_and_steps(project, tmp_path):
    project.write("ref.png", png())
    path = project.manifest(MANIFEST + '[assets.thumb]\nfrom = "@tile"\nsteps = [{ op = "overlay", image = "ref.png", '
                                       'opacity = 0.5 }, { op = "format", format = "webp" }]\n')
    fresh = Blueprint.load(path, memo_dir=tmp_path / "memo")
    recalled = Blueprint.load(path, memo_dir=tmp_path / "memo")
    assert recalled.nodes == fresh.nodes
    thumb = recalled.nodes["thumb[color=red]"]
    assert thumb.derived and thumb.steps[0]["opacity"] == 0.5 and thumb.outputs == ("assets/thumb-red.webp",)
    assert [r.label for r in thumb.references] == ["@tile", "ref.png"]
