"""The dependency graph: ordering (Kahn's algorithm, ready nodes in manifest order), cycles
named in full, output paths that clash (the same path, or one the folder of another) or
whose folder is not a folder inside the project. Unknown ids and escaping paths are caught
while expanding (expand.py); selecting targets works on the blueprint (blueprint.py).

networkx is imported only to name a cycle, once the ordering has found that there is one."""

from __future__ import annotations

import heapq
import posixpath
from typing import Iterator

from ..errors import ManifestError
from .layout import folder_problems
from .manifest import LoadedManifest, Problems
from .nodes import Node


class BuildGraph:
    def __init__(self, loaded: LoadedManifest, nodes: dict[str, Node]):
        self.nodes = nodes
        order = _ordered(nodes)
        problems = Problems()
        if order is None:
            with problems.collect():
                self._check_cycles(loaded)
        for error in self._check_outputs(loaded):
            problems.add(error)
        problems.check()
        assert order is not None
        self.order: list[str] = order

    def _check_cycles(self, loaded: LoadedManifest) -> None:
        import networkx as nx

        dag = nx.DiGraph()
        dag.add_nodes_from(self.nodes)
        for node in self.nodes.values():
            for up in node.upstream:
                dag.add_edge(up, node.id)
        try:
            cycle = nx.find_cycle(dag)
        except nx.NetworkXNoCycle:
            return
        path = [edge[0] for edge in cycle] + [cycle[0][0]]
        node = self.nodes[path[1]]
        key = "references"
        if node.derived:  # a derived node reads its source (from), then its overlays (steps)
            key = "from" if node.references and node.references[0].node == path[0] else "steps"
        raise loaded.error(f"reference cycle: {' -> '.join(path)}; break it by removing one reference",
                           "assets", node.asset, key)

    def _check_outputs(self, loaded: LoadedManifest) -> Iterator[ManifestError]:
        """Each output path is one asset's, is no other output's folder, is not a reference
        file, and its folder stays inside the project with no file in the way (checked on
        disk once per distinct folder)."""
        seen: dict[str, str] = {}
        folders: dict[str, tuple[str, ...]] = {}
        for node in self.nodes.values():
            for path in node.outputs:
                other = seen.setdefault(path.lower(), node.id)
                if other != node.id or node.outputs.count(path) > 1:
                    yield loaded.error(f"output {path} is also the output of {other}; give each asset its own output",
                                       "assets", node.asset, "output")
                folders.setdefault(posixpath.dirname(path), ("assets", node.asset, "output"))
        for folder, where in folders.items():  # "x.png" and "x.png/b.png": one cannot be the other's folder
            parts = folder.split("/")
            for end in range(1, len(parts) + 1):
                owner = seen.get("/".join(parts[:end]).lower())
                if owner is not None:
                    yield loaded.error(f"output {'/'.join(parts[:end])} (of {owner}) would have to be a folder for "
                                       f"the outputs in {folder}; rename one of them", *where)
                    break
        for node in self.nodes.values():
            for ref in node.references:
                if ref.path is not None and ref.path.lower() in seen:
                    yield loaded.error(f"reference file {ref.path} is also the output of {seen[ref.path.lower()]}; "
                                       f"reference the asset as @{self.nodes[seen[ref.path.lower()]].asset} instead",
                                       "assets", node.asset, "references")
        yield from folder_problems(loaded, folders)


def _ordered(nodes: dict[str, Node]) -> list[str] | None:
    """The build order: each node after its upstream nodes, and among the nodes that are
    ready, the first in the manifest first (Kahn's algorithm with a heap; the order networkx's
    ``lexicographical_topological_sort`` gives with the manifest position as key). None if
    there is a cycle."""
    index = {nid: i for i, nid in enumerate(nodes)}
    ids = list(nodes)
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for node in nodes.values():
        ups = node.upstream
        if ups:
            waiting[node.id] = len(ups)
            for up in ups:
                dependents.setdefault(up, []).append(node.id)
    ready = [index[nid] for nid in ids if nid not in waiting]
    heapq.heapify(ready)
    order = []
    while ready:
        nid = ids[heapq.heappop(ready)]
        order.append(nid)
        for child in dependents.get(nid, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    return order if len(order) == len(ids) else None
