"""commands/graphview.py on its own: the graph of a small project as data, Graphviz dot and
Mermaid, and the one-word status ``ls`` gives each asset from its decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetbuild.commands.graphview import graph_data, ls_lines, ls_rows, status, to_dot, to_mermaid
from assetbuild.plan.planner import Action, Decision
from assetbuild.plan.reasons import Reason
from assetbuild.spec.blueprint import Blueprint

MANIFEST = """[project]
provider = "local"
output_dir = "out"

[defaults]
size = "64x64"

[assets.logo]
prompt = "a logo"

[assets.hero]
prompt = "a hero"
references = ["brand/palette.png", "@logo", "logo"]

[assets.card]
from = "@hero"
steps = [{ op = "overlay", image = "@logo", scale = 0.2 }, { op = "grayscale" }]

[assets.other]
prompt = "unrelated"
"""


@pytest.fixture
def blueprint(tmp_path: Path) -> Blueprint:
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "palette.png").write_bytes(b"png")
    (tmp_path / "logo").write_bytes(b"a file named like an asset")
    path = tmp_path / "assetbuild.toml"
    path.write_text(MANIFEST)
    return Blueprint.load(path, memo_dir=None)


def test_graph_data_has_assets_in_build_order_then_files_and_edges_by_how_they_are_read(blueprint):
    data = graph_data(blueprint)
    assert [(n["id"], n["kind"]) for n in data["nodes"]] == [
        ("logo", "generate"), ("hero", "generate"), ("card", "derive"), ("other", "generate"),
        ("./logo", "file"), ("brand/palette.png", "file")]
    assert data["nodes"][2] == {"id": "card", "kind": "derive", "asset": "card", "provider": "derive",
                                "model": "derive", "outputs": ["out/card.png"]}
    assert data["nodes"][4] == {"id": "./logo", "kind": "file", "path": "logo"}  # not the asset logo
    assert data["edges"] == [
        {"from": "./logo", "to": "hero", "kind": "reference"},
        {"from": "brand/palette.png", "to": "hero", "kind": "reference"},
        {"from": "hero", "to": "card", "kind": "from"},
        {"from": "logo", "to": "card", "kind": "overlay"},
        {"from": "logo", "to": "hero", "kind": "reference"},
    ]


def test_targets_select_an_asset_and_its_upstream_only(blueprint):
    data = graph_data(blueprint, ["hero"])
    assert [n["id"] for n in data["nodes"]] == ["logo", "hero", "./logo", "brand/palette.png"]
    assert graph_data(blueprint, ["other"])["edges"] == []


def test_dot_draws_each_kind_of_node_and_edge(blueprint):
    lines = list(to_dot(graph_data(blueprint, ["card"])))
    assert lines[0] == "digraph assetbuild {" and lines[-1] == "}"
    assert '  "card" [label="card", shape=box, style="rounded"];' in lines
    assert '  "logo" [label="logo", shape=box];' in lines
    assert '  "./logo" [label="logo", shape=note, style="filled", fillcolor="#eeeeee", color="#888888"];' in lines
    assert '  "hero" -> "card" [label="from", style="bold"];' in lines
    assert '  "logo" -> "card" [label="overlay", style="dashed"];' in lines
    assert '  "logo" -> "hero";' in lines


def test_mermaid_numbers_nodes_and_labels_from_and_overlay_edges(blueprint):
    lines = list(to_mermaid(graph_data(blueprint, ["card"])))
    assert lines == [
        "graph LR",
        '  n0["logo"]', '  n1["hero"]', '  n2("card")',
        '  f3[/"logo"/]:::file', '  f4[/"brand/palette.png"/]:::file',
        "  f3 --> n1", "  f4 --> n1", "  n1 -->|from| n2", "  n0 -.->|overlay| n2", "  n0 --> n1",
        "  classDef file fill:#eee,stroke:#888",
    ]
    assert "classDef" not in "\n".join(to_mermaid(graph_data(blueprint, ["other"])))


def test_a_quote_in_a_label_is_escaped_in_both_formats():
    data = {"nodes": [{"id": 'say "hi"', "kind": "generate"}], "edges": []}
    assert '  "say \\"hi\\"" [label="say \\"hi\\"", shape=box];' in list(to_dot(data))
    assert '  n0["say #quot;hi#quot;"]' in list(to_mermaid(data))


def _decision(blueprint: Blueprint, nid: str, action: Action, *codes: str) -> Decision:
    return Decision(blueprint.nodes[nid], action, [Reason(c, f"out/{nid}.png") for c in codes])


@pytest.mark.parametrize("action, codes, built, word", [
    (Action.UP_TO_DATE, (), True, "up-to-date"),
    (Action.GENERATE, ("new-asset",), False, "new"),
    (Action.BLOCKED, ("output-modified",), True, "modified"),
    (Action.BLOCKED, ("prompt-changed", "output-foreign"), True, "modified"),
    (Action.RESTORE, ("output-missing", "in-cache"), True, "missing"),
    (Action.BLOCKED, ("upstream-unbuilt",), True, "blocked"),
    (Action.GENERATE, ("prompt-changed",), True, "stale"),
])
def test_status_is_one_word_from_the_decision(blueprint, action, codes, built, word):
    assert status(_decision(blueprint, "hero", action, *codes), {"hero"} if built else set()) == word


def test_ls_aligns_ids_and_gives_reasons_except_for_a_new_asset(blueprint):
    rows = ls_rows([_decision(blueprint, "logo", Action.GENERATE, "new-asset"),
                    _decision(blueprint, "hero", Action.RESTORE, "output-missing"),
                    _decision(blueprint, "card", Action.UP_TO_DATE)], {"hero", "card"})
    assert rows[1] == {"id": "hero", "status": "missing", "action": "restore",
                       "reasons": ["output out/hero.png missing"], "outputs": ["out/hero.png"]}
    assert list(ls_lines(rows)) == ["logo  new", "hero  missing  (output out/hero.png missing)", "card  up-to-date"]
    assert list(ls_lines([])) == []
