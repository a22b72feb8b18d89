"""`assetbuild schema`: the manifest's JSON Schema, generated from the models, valid draft 4
(what taplo reads); every example validates against it and broken manifests do not."""

from __future__ import annotations

import json
import os
import re
import subprocess
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


# -- as strict as a schema can say (issue 21, item 9) ------------------------------------------
#
# Every broken manifest of tests/data/manifests is refused by the schema, through the two tools
# users run (taplo, the engine of Even Better TOML, and check-jsonschema), except those below:
# what they break is something no JSON Schema can state. The list is exact: a case the schema
# starts catching must leave it.

CORPUS = Path(__file__).parent / "data" / "manifests"
SCHEMA_CANNOT = {
    # files and folders on disk: a schema sees only the manifest's text
    "output-dir-is-a-file.toml": "a file where the output folder goes",
    "output-dir-symlink-outside.toml": "output_dir is a symlink out of the project",
    "output-file-in-the-way.toml": "a file where an output's folder goes",
    "output-subfolder-symlink-outside.toml": "an output's folder is a symlink out of the project",
    "reference-fifo.toml": "a reference that is a FIFO",
    "reference-folder.toml": "a reference that is a folder",
    "reference-in-symlinked-folder-outside.toml": "a reference reached through a symlinked folder",
    "reference-symlink-outside.toml": "a reference that is a symlink out of the project",
    "reference-pixels-over-limit.toml": "a reference image's pixel count (its bytes)",
    # values a template fills in, and paths compared across assets after expansion
    "matrix-value-dotdot.toml": "a matrix value that, put into the output template, leaves output_dir",
    "matrix-value-leaves-project.toml": "a matrix value that, put into the output template, leaves the project",
    "matrix-value-nul.toml": "a matrix value that becomes a name Windows reserves once in the output template",
    "output-is-a-reference.toml": "a reference file that is another asset's expanded output path",
    "output-is-folder-of-another.toml": "one asset's output path is the folder of another's",
    # arithmetic over several values
    "matrix-10-to-the-8.toml": "the product of the matrix's value counts against max_variants",
    "matrix-over-configured-limit.toml": "the product of the matrix's value counts against [limits] max_variants",
    # TOML has nan, JSON has not, and no bound or type excludes it (every comparison with nan is false)
    **{name: "nan" for name in ("max-cost-nan.toml", "params-nan.toml", "price-nan.toml", "timeout-nan.toml")},
}
# taplo reads a TOML nan as JSON's null, which no "number" accepts: it refuses these where
# check-jsonschema (Python's float nan) cannot
TAPLO_REFUSES_NAN = {name for name, why in SCHEMA_CANNOT.items() if why == "nan"}
# Not TOML these tools (or Python's tomllib) read: refused before any schema applies.
NOT_TOML = {"not-utf8.toml", "arrays-nested-too-deep.toml", "count-5000-digits.toml"}


def _corpus() -> list[Path]:
    return sorted(CORPUS.glob("*.toml"))


def test_the_corpus_lists_are_about_files_that_exist() -> None:
    names = {p.name for p in _corpus()}
    assert set(SCHEMA_CANNOT) <= names and NOT_TOML <= names
    assert len(names) >= 48


def _schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "assetbuild.schema.json"
    path.write_text(json.dumps(manifest_schema()), encoding="utf-8")
    return path


def test_the_schema_refuses_every_broken_manifest_it_can_express(validator: jsonschema.Draft4Validator) -> None:
    caught, missed = [], []
    for path in _corpus():
        if path.name in NOT_TOML:
            continue
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
        (caught if list(validator.iter_errors(data)) else missed).append(path.name)
    assert sorted(missed) == sorted(SCHEMA_CANNOT)
    assert len(caught) == len(_corpus()) - len(SCHEMA_CANNOT) - len(NOT_TOML)


def _failed_files(tool: str, schema: Path, files: list[Path]) -> set[str]:
    """The names of ``files`` the third-party validator refuses, from one run over all of them."""
    if tool == "taplo":
        taplo = Path(sys.executable).parent / "taplo"
        argv = [str(taplo) if taplo.exists() else "taplo", "check", "--schema", schema.as_uri(), *map(str, files)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=files[0].parent,
                              env={**os.environ, "RUST_LOG": "error"})
        text = done.stdout + done.stderr
        failed = {f.name for f in files if re.search(rf"{re.escape(str(f))}\b", text)}
    else:
        # a file Python's TOML reader cannot read (nested too deep: a RecursionError) stops the
        # whole run: those go one by one, the rest in one run
        alone = [f for f in files if f.name in NOT_TOML]
        failed = set()
        for one in alone:
            done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--no-cache", "--schemafile", str(schema),
                                   str(one)], capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                failed.add(one.name)
        files = [f for f in files if f.name not in NOT_TOML]
        if not files:
            return failed
        done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--no-cache", "--schemafile", str(schema),
                               *map(str, files)], capture_output=True, text=True, timeout=120)
        text = done.stdout + done.stderr
        failed |= {f.name for f in files if f"{f}::" in text or re.search(rf"{re.escape(str(f))}\b", text)}
    assert (done.returncode != 0) == bool(failed - NOT_TOML), text[-2000:]
    return failed


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["taplo", "check-jsonschema"])
def test_taplo_and_check_jsonschema_refuse_the_corpus_as_the_schema_does(tool: str, tmp_path: Path) -> None:
    schema = _schema_file(tmp_path)
    files = []
    for path in _corpus():  # copied: each tool gets plain files, without the loader's `# given` set-up
        copy = tmp_path / "corpus" / path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(path.read_bytes())
        files.append(copy)
    failed = _failed_files(tool, schema, files)
    expected = {p.name for p in files} - set(SCHEMA_CANNOT) | (TAPLO_REFUSES_NAN if tool == "taplo" else set())
    assert failed == expected, (sorted(failed - expected), sorted(expected - failed))


VALID = {
    "sizes": """
[defaults]
size = "2k"
[assets.a]
prompt = "x"
[assets.b]
prompt = "y"
size = " 1K "
[assets.c]
prompt = "z"
size = "16:9@4K"
[assets.d]
prompt = "w"
size = "1536x1024"
""",
    "matrix and templates": """
[defaults]
size = "64x64"
[assets.sneaker]
prompt = "a {color} sneaker, {n} laces, {on}"
size = "{sz}"
matrix = { color = ["red", "navy"], n = [1, 2], on = [true, false], sz = ["32x32", "48x32"] }
output = "shoes/{color}/{asset}-{n}-{on}-{sz}.png"
[assets.board]
prompt = "four panels"
count = 4
output = "boards/{asset}-{i}.PNG"
[assets.logo]
prompt = "a logo"
candidates = 3
count = 1
params = { a = { b = { c = [1, 2, { d = 0.5 }] } } }
""",
    "derived formats": """
[defaults]
size = "32x32"
[assets.logo]
prompt = "a logo"
[assets.thumb]
from = "@logo"
steps = [{ op = "resize", size = "16x16" }]
output = "thumbs/{asset}.png"
[assets.web]
from = "@logo"
steps = [{ op = "format", format = "webp", quality = 80 }]
output = "web/{asset}.webp"
[assets.jpg]
from = "@logo"
steps = [{ op = "grayscale" }, { op = "format", format = "jpeg" }]
output = "jpg/{asset}.JPG"
[assets.plain]
from = "@thumb"
steps = [{ op = "grayscale" }]
""",
    "seedream 5.0 with batch and output_format": """
[project]
provider = "replicate"
model = "seedream-5.0-lite"
[assets.panels]
prompt = "two panels"
size = "16:9@3K"
count = 2
batch = "separate"
output_format = "jpeg"
output = "{asset}-{i}.png"
""",
    "a prompt for every asset": """
[project]
output_dir = "."
[defaults]
size = "32x32"
prompt = "the same prompt for all"
[assets.a]
[assets.b]
seed = 3
""",
}


@pytest.mark.parametrize("name", list(VALID))
def test_valid_manifests_pass_the_schema_and_the_loader(validator: jsonschema.Draft4Validator, name: str,
                                                        project: ProjectDir) -> None:
    text = VALID[name]
    assert errors(validator, text) == []
    project.manifest(text)
    res = project.run("plan")
    assert res.exit_code == 0, res.stderr


@pytest.mark.slow
def test_valid_manifests_pass_taplo_and_check_jsonschema(tmp_path: Path) -> None:
    schema = _schema_file(tmp_path)
    files = []
    for i, text in enumerate([*VALID.values(), *(p.read_text(encoding="utf-8") for p in EXAMPLES)]):
        path = tmp_path / f"valid-{i}.toml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    for tool in ("taplo", "check-jsonschema"):
        assert _failed_files(tool, schema, files) == set(), tool


# The loader's rules the schema now states, each as the one-key change that breaks it.
STRICTER = [
    ("a size that is no size", ('prompt = "a logo"', 'prompt = "a logo"\nsize = "huge"'), "assets.logo.size"),
    ("a size in defaults", ('[project]', '[defaults]\nsize = "big"\n[project]'), "defaults.size"),
    ("prompt and from", ('prompt = "a logo"', 'prompt = "a logo"\nfrom = "@x"\nsteps = [{ op = "grayscale" }]'),
     "assets.logo"),
    ("neither prompt nor from", ('prompt = "a logo"', 'seed = 1'), ""),  # [defaults] could give the prompt
    ("from without steps", ('prompt = "a logo"', 'prompt = "a"\n[assets.d]\nfrom = "@logo"'), "assets.d"),
    ("a derived asset with a size", ('prompt = "a logo"', 'prompt = "a"\n[assets.d]\nfrom = "@logo"\n'
                                                         'steps = [{ op = "grayscale" }]\nsize = "1K"'), "assets.d"),
    ("count and candidates", ('prompt = "a logo"', 'prompt = "a logo"\ncount = 2\ncandidates = 3'), "assets.logo"),
    ("count without {i}", ('prompt = "a logo"', 'prompt = "a logo"\ncount = 2\noutput = "x.png"'), "assets.logo"),
    ("a generated image as .jpg", ('prompt = "a logo"', 'prompt = "a logo"\noutput = "logo.jpg"'), "assets.logo"),
    ("a webp step written as .png", ('prompt = "a logo"', 'prompt = "a"\n[assets.d]\nfrom = "@logo"\n'
                                     'steps = [{ op = "format", format = "webp" }]\noutput = "d.png"'), "assets.d"),
    ("an empty prompt", ('prompt = "a logo"', 'prompt = "   "'), "assets.logo.prompt"),
    ("an absolute output", ('prompt = "a logo"', 'prompt = "a logo"\noutput = "/tmp/logo.png"'),
     "assets.logo.output"),
    ("an asset id Windows reserves", ("[assets.logo]", "[assets.aux]"), "assets.aux"),
    ("a matrix key with a dot", ('prompt = "a logo"', 'prompt = "{c}"\nmatrix = { "c.d" = ["x"] }'),
     "assets.logo.matrix"),
    ("a matrix value with a comma", ('prompt = "a logo"', 'prompt = "{c}"\nmatrix = { c = ["x,y"] }'),
     "assets.logo.matrix.c.0"),
    ("an infinite max_cost", ('provider = "local"', 'provider = "local"\nmax_cost = inf'), "project.max_cost"),
    ("params nested 17 deep", ('prompt = "a logo"', 'prompt = "a logo"\nparams = ' + "{ k = " * 17 + "1" + " }" * 17),
     "assets.logo.params.k"),  # anyOf blames the top of the branch
]


@pytest.mark.parametrize("what, change, where", STRICTER, ids=[b[0] for b in STRICTER])
def test_what_the_loader_refuses_the_schema_refuses(validator: jsonschema.Draft4Validator, what: str,
                                                    change: tuple[str, str], where: str,
                                                    project: ProjectDir) -> None:
    text = BROKEN.replace(*change)
    assert text != BROKEN
    found = errors(validator, text)
    assert found and any(e.split(":")[0] == where for e in found), found
    project.manifest(text)
    res = project.run("plan")
    assert res.exit_code == 2 and res.stderr.startswith("error: assetbuild.toml"), res.stderr
