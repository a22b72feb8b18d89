"""The blueprint memo per table (issue 20): after an edit inside some ``[assets.X]`` tables,
only those assets and their dependents are expanded again. Every edit must give exactly the
blueprint, and the plan, of a cold run (no memo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assetbuild.spec.blueprint import Blueprint, Nodes, _tables
from tests.conftest import png

BASE = """# a comment before any table
[project]
provider = "local"

[defaults]
size = "64x64"

[assets.root]
prompt = "the root"
references = ["a.png"]

[assets.mid]
prompt = "the middle"
references = ["@root"]

[assets.leaf]
prompt = "the leaf"
references = ["@mid"]

[assets.lone]
prompt = "on its own"

[assets.tile]
prompt = "tile {color}"
matrix = { color = ["red", "blue"] }
references = ["@root"]

[assets.thumb]
from = "@tile"
steps = [{ op = "fit", size = "32x32" }]

[assets.crop]
from = "@lone"
steps = [{ op = "fit", size = "16x16" }]
"""

# name -> (the edit, whether the memo's tables serve it, i.e. no full path)
EDITS = {
    "one table": (lambda t: t.replace('"the leaf"', '"the leaf, again"'), True),
    "a root, its dependents": (lambda t: t.replace('"the root"', '"the new root"'), True),
    "a matrix asset's prompt": (lambda t: t.replace('"tile {color}"', '"a {color} tile, {{braces}}"'), True),
    "two prompts": (lambda t: t.replace('"the leaf"', '"a leaf"').replace('"on its own"', '"alone"'), True),
    "a prompt and a seed": (lambda t: t.replace('prompt = "on its own"\n', 'prompt = "alone"\nseed = 4'), True),
    "a reference file": (lambda t: t.replace('references = ["a.png"]', 'references = ["b.png"]'), True),
    "a reference to another asset": (lambda t: t.replace('references = ["@mid"]', 'references = ["@lone"]'), True),
    "a matrix": (lambda t: t.replace('["red", "blue"]', '["red", "green"]'), True),
    "a derived asset's source": (lambda t: t.replace('from = "@lone"', 'from = "@root"'), True),
    "a derived asset's steps": (lambda t: t.replace('"16x16"', '"8x8"'), True),
    "defaults": (lambda t: t.replace('size = "64x64"', 'size = "48x48"'), False),
    "project": (lambda t: t.replace('provider = "local"\n\n[defaults]', 'provider = "local"\noutput_dir = "out"\n\n'
                                    '[defaults]'), False),
    "a line added": (lambda t: t.replace('prompt = "the leaf"', 'prompt = "the leaf"\nseed = 3'), False),
    "a table added": (lambda t: t + '\n[assets.extra]\nprompt = "more"\n', False),
    "a provider table added": (lambda t: t + '\n[providers.other]\ntype = "local"\n', False),
}


def _forget(project) -> None:
    """No blueprint memo: the next run is a cold one."""
    memos = list(Path(project.env["ASSETBUILD_CACHE_DIR"]).glob("blueprint-*.json"))
    assert memos
    for memo in memos:
        memo.unlink()


def _memo(folder: Path) -> tuple[dict, Nodes]:
    """The blueprint memo in ``folder`` as _recall reads it: its header, and its nodes."""
    (memo,) = folder.glob("blueprint-*.json")
    _, header, rest = memo.read_bytes().split(b"\n", 2)
    header = json.loads(header)
    *rows, text = rest.split(b"\n", len(header["ids"]))
    return {**header, "text": text.decode()}, Nodes(dict(zip(header["ids"], rows)), header["upstream"])


def test_a_damaged_memo_is_not_used(project, tmp_path):
    """Rows are decoded one by one, long after loading: a memo whose bytes were damaged is
    refused at once (its CRC), and the manifest is read instead."""
    _setup(project)
    path = project.manifest(BASE)
    memo = tmp_path / "memo"
    Blueprint.load(path, memo_dir=memo).remember()
    (file,) = memo.glob("blueprint-*.json")
    data = file.read_bytes()
    file.write_bytes(data.replace(b'"the leaf"', b'"the loaf"'))
    loaded = Blueprint.load(path, memo_dir=memo)
    assert loaded.changed_from is None and loaded.nodes["leaf"].prompt == "the leaf"  # the full path


def _setup(project) -> None:
    project.write("a.png", png())
    project.write("b.png", png(color=(200, 10, 10)))


@pytest.mark.parametrize("name", sorted(EDITS))
def test_an_edit_gives_the_blueprint_of_a_cold_run(project, tmp_path, name):
    edit, served = EDITS[name]
    _setup(project)
    path = project.manifest(BASE)
    memo = tmp_path / "memo"
    Blueprint.load(path, memo_dir=memo).remember()
    project.manifest(edit(BASE))
    warm = Blueprint.load(path, memo_dir=memo)
    cold = Blueprint.load(path, memo_dir=None)
    assert list(warm.nodes) == list(cold.nodes) and warm.nodes == cold.nodes
    assert warm.order == cold.order
    assert (warm.settings, warm.providers, warm.cache) == (cold.settings, cold.providers, cold.cache)
    # the memo's tables served it (or, for an edit they cannot, the full path ran)
    retabled = Blueprint._retable(path, *_memo(memo), edit(BASE), None)
    assert (retabled is not None) == served, name
    if retabled is not None:
        assert list(retabled.nodes) == list(cold.nodes) and retabled.nodes == cold.nodes
        assert retabled.order == cold.order


@pytest.mark.parametrize("name", ["a root, its dependents", "a matrix", "a derived asset's source", "a reference file"])
def test_the_plan_after_an_edit_is_the_plan_of_a_cold_run(project, name):
    edit, _ = EDITS[name]
    _setup(project)
    project.manifest(BASE)
    assert project.run("build").exit_code == 0
    project.manifest(edit(BASE))
    warm = project.run("plan", "--json")
    assert warm.exit_code == 0, warm.stderr
    _forget(project)
    cold = project.run("plan", "--json")
    assert json.loads(warm.output) == json.loads(cold.output)
    assert any(a["action"] != "up-to-date" for a in json.loads(cold.output)["actions"])  # the edit is seen


def test_a_bad_edit_is_reported_as_without_the_memo(project):
    _setup(project)
    project.manifest(BASE)
    assert project.run("plan").exit_code == 0
    for bad in (BASE.replace('references = ["@mid"]', 'references = ["@nope"]'),  # an unknown asset
                BASE.replace('references = ["@root"]\n\n[assets.leaf]', 'references = ["@leaf"]\n\n[assets.leaf]'),  # a cycle
                BASE.replace('prompt = "on its own"', 'prompt = "on its own"\noutput = "root.png"'),  # a clash... a line more
                BASE.replace('prompt = "the leaf"', 'output = "root.png"'),  # the same output as root's
                BASE.replace('prompt = "the leaf"', 'prompt = ["the leaf"'),  # TOML syntax
                BASE.replace('prompt = "the leaf"', 'prompt = "  "'),  # a blank prompt
                BASE.replace('prompt = "the leaf"', 'prompt = 3'),  # not text
                BASE.replace('"tile {color}"', '"tile {colour}"'),  # an unknown placeholder
                BASE.replace('"tile {color}"', '"tile {color"'),  # a lone brace
                ):
        project.manifest(BASE)
        assert project.run("plan").exit_code == 0  # the memo of the good manifest
        project.manifest(bad)
        warm = project.run("plan")
        _forget(project)
        cold = project.run("plan")
        assert warm.exit_code == cold.exit_code == 2, (warm.stderr, cold.stderr)
        assert warm.stderr == cold.stderr


def test_tables_refuses_text_it_cannot_cut_plainly():
    assert _tables('x = 1\n[assets.a]\nprompt = "p"\n') is None  # a key before any table
    assert _tables('[assets.a]\nprompt = """\n[assets.b]\n"""\n') is None  # a multi-line string
    assert _tables('[assets.a]\nreferences = [\n  ["x"],\n]\n') is None  # a nested array over lines
    assert _tables('[assets]\na.prompt = "p"\n') is None
    assert _tables('[assets."a"]\nprompt = "p"\n') is None
    cut = _tables('# c\n[assets.a] # hi\nprompt = "p"\n  [[assets.a.steps]]\nop = "fit"\n[providers.x]\n')
    assert [(owner, lines) for owner, _, lines, _ in cut] == [(None, 1), ("a", 2), ("a", 2), (None, 1)]


# name -> whether only prompts changed (the memo's nodes are taken with the new prompt filled in)
PROMPT_ONLY = {"one table": True, "a root, its dependents": True, "a matrix asset's prompt": True, "two prompts": True,
               "a prompt and a seed": False, "a matrix": False, "a reference file": False,
               "a derived asset's steps": False}


@pytest.mark.parametrize("name", sorted(PROMPT_ONLY))
def test_a_prompt_edit_takes_the_memos_nodes(project, tmp_path, name):
    _setup(project)
    path = project.manifest(BASE)
    memo = tmp_path / "memo"
    Blueprint.load(path, memo_dir=memo).remember()
    project.manifest(EDITS[name][0](BASE))
    warm = Blueprint._retable(path, *_memo(memo), EDITS[name][0](BASE), None)
    assert warm is not None and warm.made_by == ("prompts" if PROMPT_ONLY[name] else "tables")
    if PROMPT_ONLY[name]:
        cold = Blueprint.load(path, memo_dir=None)
        assert list(warm.nodes) == list(cold.nodes) and warm.nodes == cold.nodes and warm.order == cold.order
        changed = {nid for nid in cold.nodes if cold.nodes[nid].prompt != Blueprint.from_manifest(
            path, BASE, None).nodes[nid].prompt}
        assert changed and warm.changed_from is not None and set(warm.changed_from[1]) == changed


def test_a_prompt_edit_needs_no_pydantic(project, tmp_path):
    """The point of the prompt path: a plan after a prompt edit loads no models (0.1 s of imports)."""
    import subprocess
    import sys

    _setup(project)
    path = project.manifest(BASE)
    memo = tmp_path / "memo"
    Blueprint.load(path, memo_dir=memo).remember()
    project.manifest(BASE.replace('"the leaf"', '"the leaf, again"'))
    script = ("import sys; from pathlib import Path; from assetbuild.spec.blueprint import Blueprint; "
              f"b = Blueprint.load(Path({str(path)!r}), memo_dir=Path({str(memo)!r})); "
              "print(b.nodes['leaf'].prompt, 'pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["the", "leaf,", "again", "False"]


def test_an_edited_manifest_is_remembered(project, tmp_path):
    """After a plan of an edited manifest, the next load is the memo's (no table compared
    again); after a prompt edit of a few nodes, the memo stays the one it was made from (the
    next load fills the prompts in again: cheaper than writing the memo), unless it changed
    more than ``rewrite_after`` nodes."""
    _setup(project)
    path = project.manifest(BASE)
    memo = tmp_path / "memo"
    Blueprint.load(path, memo_dir=memo).remember()
    base_key = Blueprint.load(path, memo_dir=memo).key
    prompt_edit = BASE.replace('"the leaf"', '"the leaf, again"')
    project.manifest(prompt_edit)
    first = Blueprint.load(path, memo_dir=memo)
    first.remember()
    again = Blueprint.load(path, memo_dir=memo)
    assert first.changed_from == again.changed_from and first.changed_from[0] == base_key
    assert set(first.changed_from[1]) == {"leaf"}
    assert again.nodes == Blueprint.load(path, memo_dir=None).nodes
    for edited in (prompt_edit, BASE.replace('"16x16"', '"8x8"')):
        project.manifest(edited)
        first = Blueprint.load(path, memo_dir=memo, rewrite_after=0)
        assert first.changed_from is not None and first.changed_from[1]
        first.remember()
        again = Blueprint.load(path, memo_dir=memo)
        assert again.changed_from is not None and again.changed_from[1] == {}
        assert again.nodes == Blueprint.load(path, memo_dir=None).nodes
