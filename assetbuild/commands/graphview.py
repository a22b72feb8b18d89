"""What `assetbuild graph` and `assetbuild ls` print: the graph of the selected assets with
the files they read as nodes of their own (data, Graphviz dot, Mermaid), and one status line
per asset. Plain functions over the blueprint and a plan; the CLI only echoes the lines."""

from __future__ import annotations

import json
from typing import Any, Container, Iterable, Iterator, Sequence

from ..spec.blueprint import Blueprint
from ..plan.planner import Action, Decision
from ..plan.reasons import ReasonCode, texts


def graph_data(blueprint: Blueprint, targets: Iterable[str] = ()) -> dict[str, Any]:
    """Nodes (assets in build order, then the files they read) and edges. An asset node has
    ``kind`` generate or derive; a file node has ``kind`` file and its ``path``. An edge's
    ``kind`` says how the target reads the source: ``reference``, ``from`` (a derived asset's
    source) or ``overlay`` (an overlay step's image)."""
    selected = blueprint.select(targets)
    nodes: list[dict[str, Any]] = []
    files: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], None] = {}
    for nid in selected:
        n = blueprint.nodes[nid]
        nodes.append({"id": n.id, "kind": n.kind, "asset": n.asset, "provider": "derive" if n.derived else n.provider,
                      "model": n.model, "outputs": list(n.outputs)})
        for position, ref in enumerate(n.references):
            kind = ("from" if position == 0 else "overlay") if n.derived else "reference"
            if ref.node is not None:
                source = ref.node
            elif ref.path is not None:
                source = _file_id(ref.path, blueprint)
                files.setdefault(source, {"id": source, "kind": "file", "path": ref.path})
            else:  # pragma: no cover - every reference is a file or a node
                continue
            edges[(source, n.id, kind)] = None
    return {
        "nodes": nodes + sorted(files.values(), key=lambda f: f["id"]),
        "edges": [{"from": a, "to": b, "kind": k} for a, b, k in sorted(edges)],
    }


def _file_id(path: str, blueprint: Blueprint) -> str:
    """A file node's id is its path; one that reads like an asset id gets ``./`` in front."""
    return f"./{path}" if path in blueprint.nodes else path


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def to_dot(data: dict[str, Any]) -> Iterator[str]:
    """Graphviz: generated assets are boxes, derived ones rounded boxes, files notes (grey);
    ``from`` edges are bold, ``overlay`` edges dashed."""
    yield "digraph assetbuild {"
    yield "  rankdir=LR;"
    yield '  node [fontname="Helvetica"];'
    shapes = {"generate": "shape=box", "derive": 'shape=box, style="rounded"',
              "file": 'shape=note, style="filled", fillcolor="#eeeeee", color="#888888"'}
    for n in data["nodes"]:
        label = n.get("path", n["id"])
        yield f"  {_q(n['id'])} [label={_q(label)}, {shapes[n['kind']]}];"
    styles = {"reference": "", "from": ' [label="from", style="bold"]', "overlay": ' [label="overlay", style="dashed"]'}
    for e in data["edges"]:
        yield f"  {_q(e['from'])} -> {_q(e['to'])}{styles[e['kind']]};"
    yield "}"


def to_mermaid(data: dict[str, Any]) -> Iterator[str]:
    """Mermaid flowchart: assets ``n0["id"]`` (derived ones rounded), files ``f0[/"path"/]``
    in the ``file`` class; ``from`` and ``overlay`` edges are labelled."""
    yield "graph LR"
    ids: dict[str, str] = {}
    for i, n in enumerate(data["nodes"]):
        label = (n.get("path") or n["id"]).replace('"', "#quot;")
        if n["kind"] == "file":
            ids[n["id"]] = f"f{i}"
            yield f'  f{i}[/"{label}"/]:::file'
        elif n["kind"] == "derive":
            ids[n["id"]] = f"n{i}"
            yield f'  n{i}("{label}")'
        else:
            ids[n["id"]] = f"n{i}"
            yield f'  n{i}["{label}"]'
    for e in data["edges"]:
        arrow = "-->" if e["kind"] == "reference" else (f"-->|{e['kind']}|" if e["kind"] == "from" else "-.->|overlay|")
        yield f"  {ids[e['from']]} {arrow} {ids[e['to']]}"
    if any(n["kind"] == "file" for n in data["nodes"]):
        yield "  classDef file fill:#eee,stroke:#888"


# -- ls ---------------------------------------------------------------------------------------

def status(d: Decision, built: Container[str]) -> str:
    """One word for where an asset stands: up-to-date, new (never built: not in ``built``, the
    lock's entries), missing (an output is gone), modified (an output was edited by hand),
    blocked (it cannot be built now: an upstream failed, --offline, ...), or stale (its inputs
    changed). A hand edit says modified even where it blocks the build."""
    if d.action is Action.UP_TO_DATE:
        return "up-to-date"
    if d.id not in built:
        return "new"
    codes = {r.code for r in d.reasons}
    for code, word in ((ReasonCode.OUTPUT_MODIFIED, "modified"), (ReasonCode.OUTPUT_FOREIGN, "modified"),
                       (ReasonCode.OUTPUT_MISSING, "missing")):
        if code in codes:
            return word
    if d.action is Action.BLOCKED:
        return "blocked"
    return "stale"


def ls_rows(decisions: Sequence[Decision], built: Container[str]) -> list[dict[str, Any]]:
    return [{"id": d.id, "status": status(d, built), "action": d.action.value, "reasons": texts(d.reasons),
             "outputs": list(d.node.outputs)} for d in decisions]


def ls_lines(rows: Sequence[dict[str, Any]]) -> Iterator[str]:
    """``id  status  (reasons)``, ids aligned; the id first so it can be copied as a target."""
    width = max((len(r["id"]) for r in rows), default=0)
    for r in rows:
        why = f"  ({'; '.join(r['reasons'])})" if r["reasons"] and r["status"] != "new" else ""
        yield f"{r['id']:<{width}}  {r['status']}{why}".rstrip()
