"""The house keeps its plan: a module never imports one in a layer above its own (the
import-linter contract in pyproject.toml), there is no import circle, and every module is in
a layer (a new top-level module cannot slip past the contract). Lazy imports inside
functions and TYPE_CHECKING imports count like any other."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import imports  # noqa: E402  (benchmarks/imports.py: the graph the figures are printed from)

PACKAGE = ROOT / "assetbuild"


def test_no_module_imports_a_layer_above_its_own():
    assert imports.upward(imports.arrows(PACKAGE), imports.layers()) == []


@pytest.mark.skipif(importlib.util.find_spec("importlinter") is None, reason="import-linter is not installed")
def test_the_import_linter_contract_is_kept(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_no_import_circle():
    assert imports.circles(imports.arrows(PACKAGE)) == []


def test_every_module_is_in_a_layer():
    stack = imports.layers()
    outside = [m for m in imports.modules(PACKAGE)
               if m not in ("assetbuild", "assetbuild.__main__") and imports.layer_of(m, stack) is None]
    assert outside == []


def test_the_check_finds_a_lazy_upward_import_and_a_circle(tmp_path):
    """The checks above could fail: on a small copy of the layout, an import inside a function
    from store up to api is upward, and two modules importing each other are a circle."""
    pkg = tmp_path / "assetbuild"
    for folder in ("store", "spec"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "api.py").write_text("")
    (pkg / "spec" / "nodes.py").write_text("from ..store import files\n")
    (pkg / "store" / "files.py").write_text("def f():\n    from ..api import Project\n    from . import cache\n")
    (pkg / "store" / "cache.py").write_text("from .files import f\n")
    edges = imports.arrows(pkg)
    assert imports.upward(edges, imports.layers()) == [("assetbuild.store.files", "assetbuild.api")]
    assert imports.circles(edges) == [["assetbuild.store.cache", "assetbuild.store.files"]]


def test_built_in_provider_names_are_the_provider_classes():
    """spec names the built-in provider types (spec stands below providers and cannot ask
    them); providers makes one class per name."""
    from assetbuild.providers import PROVIDER_CLASSES
    from assetbuild.spec.models import BUILT_IN_PROVIDERS

    assert sorted(BUILT_IN_PROVIDERS) == sorted(PROVIDER_CLASSES)


def test_the_readme_module_map_lists_every_module():
    """README "Development" has one line per module, by folder: a new module gets its line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Development")
    block = readme[readme.index("```", start):readme.index("```", readme.index("```", start) + 3)]
    missing = [f"{path.parent.name}/{path.name}" for path in sorted(PACKAGE.rglob("*.py"))
               if not (path.name == "__init__.py" and path.parent != PACKAGE)
               and not re.search(rf"(?<![\w.]){re.escape(path.name)}", block)]
    assert missing == []
