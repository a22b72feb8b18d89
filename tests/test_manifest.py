"""Acceptance 13: each class of bad manifest gives exit 2 and one line naming where."""

from __future__ import annotations

import pytest

from tests.conftest import png

GOOD_HEAD = """[project]
provider = "local"

[defaults]
size = "64x64"

"""

CASES = {
    "syntax": ('[assets.a]\nprompt = "unterminated\n', "assetbuild.toml:8:", "TOML syntax error"),
    # TOML 1.1 (a trailing comma in an inline table) is not read: the manifest's parser is
    # tomli's compiled build pinned below 2.3, the grammar of the standard library's tomllib
    "toml 1.1": ('[assets.a]\nprompt = "x"\nmatrix = { c = ["r"], }\n', "assetbuild.toml:9:", "TOML syntax error"),
    "type": ('[assets.a]\nprompt = "x"\ncount = "three"\n', "assetbuild.toml:9: assets.a.count:", "wrong type"),
    "unknown key": ('[assets.a]\nprompt = "x"\nrefrences = []\n', "assetbuild.toml:9: assets.a.refrences:",
                    "did you mean 'references'?"),
    "unknown table": ('[asets.a]\nprompt = "x"\n', "assetbuild.toml:7: asets:", "did you mean 'assets'?"),
    "cycle": ('[assets.a]\nprompt = "x"\nreferences = ["@b"]\n[assets.b]\nprompt = "y"\nreferences = ["@a"]\n',
              "assetbuild.toml:", "reference cycle: a -> b -> a"),
    "unknown reference": ('[assets.a]\nprompt = "x"\nreferences = ["@lgo"]\n[assets.logo]\nprompt = "y"\n',
                          "assetbuild.toml:9: assets.a.references:", "unknown asset @lgo; did you mean @logo?"),
    "duplicate output": ('[assets.a]\nprompt = "x"\noutput = "same.png"\n[assets.b]\nprompt = "y"\noutput = "same.png"\n',
                         "assetbuild.toml:12: assets.b.output:", "also the output of a"),
    "output outside project": ('[assets.a]\nprompt = "x"\noutput = "../../escape.png"\n',
                               "assetbuild.toml:9: assets.a.output:", "leaves the project"),
    "reference outside project": ('[assets.a]\nprompt = "x"\nreferences = ["../secret.png"]\n',
                                  "assetbuild.toml:9: assets.a.references:", "leaves the project"),
    "missing reference file": ('[assets.a]\nprompt = "x"\nreferences = ["brand/nope.png"]\n',
                               "assetbuild.toml:9: assets.a.references:", "does not exist"),
    "size outside model limits": ('[assets.a]\nprompt = "x"\nmodel = "seedream-4.5"\nprovider = "modelark"\nsize = "1500x1500"\n',
                                  "assetbuild.toml:11: assets.a.size:", "seedream-4.5 needs 3,686,400"),
    "size grammar": ('[assets.a]\nprompt = "x"\nsize = "huge"\n', "assetbuild.toml:9: assets.a.size:", "is not 1K, 2K"),
    "no 1K on 4.5": ('[assets.a]\nprompt = "x"\nmodel = "seedream-4.5"\nprovider = "fal"\nsize = "16:9@1K"\n',
                     "assetbuild.toml:11: assets.a.size:", "no 1K size"),
    "bad model": ('[assets.a]\nprompt = "x"\nmodel = "seedream-5"\n', "assetbuild.toml:9: assets.a.model:",
                  "use 'seedream-4.0', 'seedream-4.5', 'seedream-5.0-lite' or 'seedream-5.0-pro'"),
    "bad asset id": ('[assets.Logo]\nprompt = "x"\n', "assetbuild.toml:7: assets.Logo:", "lowercase"),
    "unknown placeholder": ('[assets.a]\nprompt = "a {colour} shoe"\nmatrix = { color = ["red"] }\n',
                            "assetbuild.toml:8: assets.a.prompt:", "unknown placeholder {colour}"),
    "ambiguous variant": ('[assets.s]\nprompt = "{c}"\nmatrix = { c = ["r", "g"] }\n[assets.t]\nprompt = "t"\nreferences = ["@s"]\n',
                          "assetbuild.toml:12: assets.t.references:", "ambiguous"),
    "unknown provider": ('[assets.a]\nprompt = "x"\nprovider = "ark"\n', "assetbuild.toml:9: assets.a.provider:",
                         "add a [providers.NAME] table"),
    "no prompt": ('[assets.a]\nsize = "64x64"\n', "assetbuild.toml:7: assets.a:", "needs a prompt"),
    "count index": ('[assets.s]\nprompt = "x"\ncount = 2\n[assets.t]\nprompt = "t"\nreferences = ["@s#3"]\n',
                    "assetbuild.toml:12: assets.t.references:", "use #1..#2"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_gives_one_line_and_exit_2(project, case):
    body, where, what = CASES[case]
    project.manifest(GOOD_HEAD + body)
    for command in (("plan",), ("build",), ("check",)):
        res = project.run(*command)
        assert res.exit_code == 2, (case, res.output, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: " + where), lines[0]
        assert what in lines[0]
        assert "Traceback" not in res.stderr
    assert not (project.root / "assetbuild.lock").exists()
    assert not (project.root / "assets").exists()


def test_defaults_error_points_at_defaults(project):
    project.manifest('[defaults]\nwatermark = "yes"\n[assets.a]\nprompt = "x"\n')
    res = project.run("plan")
    assert res.stderr.startswith("error: assetbuild.toml:2: defaults.watermark:")


def test_missing_manifest_is_a_usage_error(project):
    res = project.run("plan")
    assert res.exit_code == 2 and "run `assetbuild init`" in res.stderr


def test_unreadable_lock_is_one_line(project):
    project.manifest('[assets.a]\nprompt = "x"\nsize = "32x32"\n')
    project.write("assetbuild.lock", "<<<<<<< HEAD\nversion = 1\n")
    res = project.run("build")
    assert res.exit_code == 2 and res.stderr.startswith("error: assetbuild.lock: unreadable")


def test_variant_binding_and_selectors(project):
    project.write("ref.png", png())
    project.manifest("""
    [defaults]
    size = "32x32"
    [assets.shoe]
    prompt = "{color} shoe on {floor}"
    matrix = { color = ["red", "navy"], floor = ["white", "stone"] }
    [assets.post]
    prompt = "post for {color}"
    references = ["@shoe[floor=white]", "ref.png"]
    matrix = { color = ["red", "navy"] }
    output = "social/{color}.png"
    """)
    res = project.run("graph", "--format", "json")
    import json

    edges = json.loads(res.output)["edges"]
    assert {"from": "shoe[color=red,floor=white]", "to": "post[color=red]", "kind": "reference"} in edges
    assert {"from": "shoe[color=navy,floor=white]", "to": "post[color=navy]", "kind": "reference"} in edges
    assert {"from": "ref.png", "to": "post[color=red]", "kind": "reference"} in edges
    assert len(edges) == 4
    assert project.run("build").exit_code == 0
    assert (project.root / "assets" / "shoe-navy-stone.png").is_file()
    assert (project.root / "assets" / "social" / "red.png").is_file()
    # a target naming a subset of variants builds just those and their upstream
    (project.root / "assets" / "shoe-red-stone.png").unlink()
    (project.root / "assets" / "shoe-navy-stone.png").unlink()
    res = project.run("build", "--json", "shoe[floor=stone]")
    assert json.loads(res.output)["restored"] == 2


def test_literal_braces_in_prompts(project):
    project.manifest('[assets.a]\nprompt = "json like {{\\"k\\": 1}}"\nsize = "32x32"\n')
    import json

    res = project.run("explain", "a", "--json")
    assert json.loads(res.output)["inputs"]["prompt"] == 'json like {"k": 1}'


def test_the_manifest_parser_reads_what_the_standard_library_reads(tmp_path):
    """spec/manifest.py parses with tomli's compiled build, for speed: the same values as
    tomllib on a manifest of every kind of value the schema takes."""
    import tomllib

    from assetbuild.spec.manifest import _read_toml

    text = (GOOD_HEAD + '[providers.ark]\ntype = "modelark"\nfallback = "local"\n'
            '[assets.a]\nprompt = """two\nlines \\u00e9"""\nmatrix = { c = ["r", "g"], n = [1, 2.5] }\n'
            "seed = 7\nwatermark = false\nparams = { guidance = 1e-2, tag = 'lit\\eral' }\n"
            '[[assets.a.steps]]\ncrop = "16:9"\n')
    assert _read_toml(text, "assetbuild.toml") == tomllib.loads(text)
