"""The dependency graph checks (networkx), made once per manifest change: cycles named in
full, duplicate output paths, and the build order. Unknown ids and escaping paths are caught
while expanding (expand.py); selecting targets works on the blueprint (blueprint.py)."""

from __future__ import annotations

import networkx as nx

from .nodes import Node
from .manifest import LoadedManifest


class BuildGraph:
    def __init__(self, loaded: LoadedManifest, nodes: dict[str, Node]):
        self.nodes = nodes
        self.dag = nx.DiGraph()
        self.dag.add_nodes_from(nodes)
        for node in nodes.values():
            for up in node.upstream:
                self.dag.add_edge(up, node.id)
        self._check_cycles(loaded)
        self._check_outputs(loaded)
        order = {nid: i for i, nid in enumerate(nodes)}
        self.order: list[str] = list(nx.lexicographical_topological_sort(self.dag, key=order.__getitem__))

    def _check_cycles(self, loaded: LoadedManifest) -> None:
        try:
            cycle = nx.find_cycle(self.dag)
        except nx.NetworkXNoCycle:
            return
        path = [edge[0] for edge in cycle] + [cycle[0][0]]
        first = self.nodes[path[1]].asset
        raise loaded.error(f"reference cycle: {' -> '.join(path)}; break it by removing one reference",
                           "assets", first, "references")

    def _check_outputs(self, loaded: LoadedManifest) -> None:
        seen: dict[str, str] = {}
        for node in self.nodes.values():
            for path in node.outputs:
                other = seen.setdefault(path.lower(), node.id)
                if other != node.id or node.outputs.count(path) > 1:
                    raise loaded.error(f"output {path} is also the output of {other}; give each asset its own output",
                                       "assets", node.asset, "output")
