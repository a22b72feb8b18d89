"""README's Quick start (issue 21, item 8): command 1 installs the package alone and builds
the example, command 2 installs the test extra and runs the tests, and `.ci/run` (what CI runs
on a clean clone) does exactly that; the counts README gives are what the build prints (assets)
and writes (images); the tour's `explain hero` runs before and after the build and shows the
difference."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

from tests.conftest import REPO, ProjectDir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

README = (REPO / "README.md").read_text(encoding="utf-8")
QUICK = README[README.index("## Quick start"):README.index("## The manifest")]
BLOCKS = re.findall(r"```sh\n(.*?)```", QUICK, re.S)


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_command_1_installs_the_package_alone_and_command_2_the_test_extra() -> None:
    first, second = commands(BLOCKS[0])
    assert ".venv/bin/pip install -e . &&" in first and "[test]" not in first
    assert first.endswith(".venv/bin/assetbuild -C examples/brand-kit build")
    assert second == '.venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'


def test_ci_runs_exactly_the_two_commands_in_order() -> None:
    script = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.strip().startswith("#")]

    def at(fragment: str) -> int:
        return next(i for i, line in enumerate(script) if fragment in line)

    alone, extra = at('"${PIP[@]}" -e .'), at('"${PIP[@]}" -e ".[test]"')
    assert script[alone] == '"${PIP[@]}" -e .'
    assert at('"$PYTHON" -m venv .venv') < alone < at(".venv/bin/assetbuild -C examples/brand-kit build") < extra
    assert extra < at("install chromium") < at(".venv/bin/python -m pytest") == len(script) - 1


def test_the_test_extra_holds_what_the_tests_use_and_the_package_needs_none_of_it() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extra = " ".join(project["optional-dependencies"]["test"])
    for needed in ("pytest", "check-jsonschema", "taplo", "pyyaml", "jsonschema", "moto", "playwright"):
        assert needed in extra, needed
    test_only = {"yaml", "jsonschema", "moto", "playwright", "hypothesis", "pytest", "check_jsonschema", "trustme"}
    for path in (REPO / "assetbuild").rglob("*.py"):  # command 1 never installs these: nothing imports them
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not {n.split(".")[0] for n in names} & test_only, (path, names)


def test_readme_counts_are_what_the_build_prints_and_writes(brand_kit: ProjectDir) -> None:
    res = brand_kit.run("build", "--json")
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.output)
    lock = tomllib.loads((brand_kit.root / "assetbuild.lock").read_text(encoding="utf-8"))["assets"]
    generated = [a["asset"] for a in summary["assets"]["generated"]]
    images = {"generated": sum(len(lock[a]["outputs"]) for a in generated),
              "derived": sum(len(lock[a["asset"]]["outputs"]) for a in summary["assets"]["derived"])}
    files = [p for p in (brand_kit.root / "assets").rglob("*") if p.is_file()]
    assets = len(lock)
    assert (summary["generated"], summary["derived"], assets) == (14, 12, 26)
    assert (images["generated"], images["derived"], len(files)) == (17, 12, 29)
    assert f"build: {summary['generated']} generated, 0 restored, {summary['derived']} derived" in QUICK
    assert f"builds the kit's {assets} assets and writes {len(files)} images" in QUICK
    assert f"{summary['generated']} generated\nassets make **{images['generated']} images**" in QUICK
    assert f"{images['generated']} + {images['derived']} = {len(files)}" in QUICK


def test_the_tour_explains_hero_before_and_after_the_build(brand_kit: ProjectDir) -> None:
    tour = [" ".join(line.split("#")[0].split()[1:]) for line in commands(BLOCKS[1])]
    assert tour == ["examples/brand-kit", "build", "-i 's/at golden hour/at dawn/' assetbuild.toml", "plan",
                    "explain hero", "build", "explain hero"]  # explain before the build, and after
    assert brand_kit.run("build").exit_code == 0
    manifest = brand_kit.root / "assetbuild.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("at golden hour", "at dawn"), encoding="utf-8")
    plan = brand_kit.run("plan").output
    assert "[-golden hour-]{+dawn+}" in plan
    before = brand_kit.run("explain", "hero").output
    assert before.startswith("hero: generate (prompt changed)") and "(differs)" in before
    assert "  was " in before and "[-golden hour-]{+dawn+}" in before
    built = brand_kit.run("build", "--json")
    summary = json.loads(built.output)
    assert (summary["generated"], summary["derived"]) == (2, 4)
    after = brand_kit.run("explain", "hero").output
    assert after.startswith("hero: up-to-date") and "(same)" in after and before != after
