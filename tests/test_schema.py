"""`assetbuild schema`: the manifest's JSON Schema, generated from the models, valid draft 4
(what taplo reads); every example validates against it and broken manifests do not."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from assetbuild.spec.models import AssetSpec, CacheConfig, LimitsConfig, Manifest, ProjectConfig, ProviderConfig
from assetbuild.spec.schema import manifest_schema
from tests.conftest import REPO, ProjectDir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = sorted(REPO.glob("examples/*/assetbuild.toml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    schema = manifest_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def errors(validator: jsonschema.Draft4Validator, text: str) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(tomllib.loads(text))]


def test_the_command_prints_the_schema(project: ProjectDir) -> None:
    res = project.run("schema")  # no manifest needed
    assert res.exit_code == 0, res.stderr
    printed = json.loads(res.output)
    assert printed == manifest_schema()
    assert printed["$schema"] == "http://json-schema.org/draft-04/schema#"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_example_validates(validator: jsonschema.Draft4Validator, example: Path) -> None:
    assert errors(validator, example.read_text(encoding="utf-8")) == []


def test_there_are_examples_to_validate() -> None:
    assert [p.parent.name for p in EXAMPLES][:1] == ["brand-kit"]


def test_it_is_generated_from_the_models_not_written_by_hand() -> None:
    schema = manifest_schema()
    definitions = schema["definitions"]
    for model in (ProjectConfig, ProviderConfig, LimitsConfig, CacheConfig, AssetSpec):
        keys = {f.alias or name for name, f in model.model_fields.items()}
        assert set(definitions[model.__name__]["properties"]) == keys, model.__name__
        assert definitions[model.__name__]["additionalProperties"] is False
    assert set(schema["properties"]) == set(Manifest.model_fields)
    ark = definitions["ProviderConfig"]["properties"]
    assert "modelark" in ark["type"]["enum"] and ark["concurrency"] == {
        "default": 4, "maximum": 64, "minimum": 1, "title": "Concurrency", "type": "integer"}
    assert ark["timeout_s"]["exclusiveMinimum"] is True and ark["timeout_s"]["minimum"] == 0  # draft 4
    assert "from" in definitions["AssetSpec"]["properties"] and "from" not in definitions["Defaults"]["properties"]
    assert "null" not in json.dumps(schema)  # TOML has no null
    assert "$defs" not in json.dumps(schema)


BROKEN = """
[project]
provider = "local"

[assets.logo]
prompt = "a logo"
"""

# (what is broken, the replacement, the dotted path the schema blames)
BREAKAGES = [
    ("a misspelt key", ('prompt = "a logo"', 'promt = "a logo"'), "assets.logo"),
    ("count below 1", ('prompt = "a logo"', 'prompt = "a logo"\ncount = 0'), "assets.logo.count"),
    ("a size that is a number", ('prompt = "a logo"', 'prompt = "a logo"\nsize = 512'), "assets.logo.size"),
    ("an asset id with capitals", ("[assets.logo]", "[assets.Logo]"), "assets"),
    ("an unknown table", ("[project]", "[projekt]"), ""),
    ("an unknown provider type", ("[project]", '[providers.x]\ntype = "openai"\n[project]'), "providers.x.type"),
    ("an unknown step op", ('prompt = "a logo"', 'prompt = "a"\n[assets.blur]\nfrom = "@logo"\n'
                                                  'steps = [{ op = "blur", radius = 2 }]'), "assets.blur.steps.0"),
    ("a step without its required key", ('prompt = "a logo"', 'prompt = "a"\n[assets.r]\nfrom = "@logo"\n'
                                                             'steps = [{ op = "resize" }]'), "assets.r.steps.0"),
    ("a model that does not exist", ('prompt = "a logo"', 'prompt = "a logo"\nmodel = "seedream-9"'),
     "assets.logo.model"),
]


def test_a_correct_manifest_validates(validator: jsonschema.Draft4Validator) -> None:
    assert errors(validator, BROKEN) == []


@pytest.mark.parametrize("what, change, where", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_a_broken_manifest_fails_the_schema_as_it_fails_assetbuild(validator: jsonschema.Draft4Validator, what: str,
                                                                    change: tuple[str, str], where: str,
                                                                    project: ProjectDir) -> None:
    text = BROKEN.replace(*change)
    assert text != BROKEN
    found = errors(validator, text)
    assert found and any(e.split(":")[0] == where for e in found), found
    project.manifest(text)  # and assetbuild refuses it too, with one line per problem
    res = project.run("plan")
    assert res.exit_code == 2 and res.stderr.startswith("error: assetbuild.toml:"), res.stderr


def test_readme_shows_the_taplo_line() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^#:schema \./assetbuild\.schema\.json$", readme, re.M)
    assert "assetbuild schema > assetbuild.schema.json" in readme


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_only_draft_4_keywords() -> None:
    later = {"$defs", "const", "propertyNames", "contains", "if", "then", "else", "prefixItems", "examples",
             "unevaluatedProperties", "dependentRequired"}
    for node in _walk(manifest_schema()):
        assert not later & set(node) or "properties" in node and not later & (set(node) - {"properties"}), node
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert bound not in node or isinstance(node[bound], bool)
