"""The import graph of assetbuild, as a newcomer draws it: modules per folder, import arrows,
circles and upward imports (an arrow into a layer above the importer's, by the layers of
pyproject's import-linter contract). Every import statement counts: at the top of a module, in
a function (a lazy import) or under TYPE_CHECKING. tests/test_layers.py asserts on the same
graph; this prints the figures.

    python benchmarks/imports.py [-v]
"""

from __future__ import annotations

import ast
import collections
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent.parent


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of ``package`` (a package is its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def arrows(package: Path) -> set[tuple[str, str]]:
    """(importer, imported) for every import statement between two modules of ``package``."""
    mods = modules(package)
    edges = set()
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            edges.update((name, t) for t in targets if t in mods and t != name)
    return edges


def layers(pyproject: Path = HERE / "pyproject.toml") -> list[list[str]]:
    """The layers of the contract, top first, each a list of module or package names."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def layer_of(module: str, stack: list[list[str]]) -> int | None:
    """The index (0 = top) of the layer holding ``module``; None for one in no layer."""
    for index, layer in enumerate(stack):
        if any(module == m or module.startswith(m + ".") for m in layer):
            return index
    return None


def upward(edges: set[tuple[str, str]], stack: list[list[str]]) -> list[tuple[str, str]]:
    """The arrows into a layer above the importer's."""
    found = []
    for a, b in sorted(edges):
        la, lb = layer_of(a, stack), layer_of(b, stack)
        if la is not None and lb is not None and lb < la:
            found.append((a, b))
    return found


def circles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Each set of modules that import one another round a circle (a strongly connected
    component of more than one module), sorted."""
    import networkx as nx

    graph = nx.DiGraph(list(edges))
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def main() -> None:
    package = HERE / "assetbuild"
    mods = modules(package)
    edges = arrows(package)
    stack = layers()
    per_folder = collections.Counter(name.split(".")[1] if path.parent != package else "(top)"
                                     for name, path in mods.items() if name != "assetbuild")
    print(f"modules: {len(mods)} (with __init__s)  " + ", ".join(f"{k} {v}" for k, v in sorted(per_folder.items())))
    print(f"import arrows: {len(edges)}")
    found = circles(edges)
    print(f"circles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    up = upward(edges, stack)
    print(f"upward imports: {len(up)}" + "".join(f"\n  {a} -> {b}" for a, b in up))
    if "-v" in sys.argv:
        for a, b in sorted(edges):
            print(f"{a} -> {b}")


if __name__ == "__main__":
    main()
