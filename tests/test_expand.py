"""expand.py on its own: manifest text in, nodes out (no build). The matrix, templates,
reference binding variant by variant, derived assets taking on their source's matrix, and
each of their errors as the one line a user reads (file:line, key, what to do)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetbuild.errors import ManifestError
from assetbuild.spec.expand import expand, fill, slug
from assetbuild.spec.manifest import parse_manifest

HEAD = '[project]\nprovider = "local"\noutput_dir = "out"\n\n[defaults]\nsize = "64x64"\n\n'


def nodes(tmp_path: Path, body: str, **kw):
    path = tmp_path / "assetbuild.toml"
    path.write_text(HEAD + body)
    return expand(parse_manifest(HEAD + body, path), **kw)


def error(tmp_path: Path, body: str) -> str:
    with pytest.raises(ManifestError) as exc:
        nodes(tmp_path, body)
    return str(exc.value)


# -- the matrix ----------------------------------------------------------------------------


def test_a_matrix_makes_one_node_per_combination_with_sorted_ids_and_filled_templates(tmp_path):
    found = nodes(tmp_path, '[assets.shoe]\nprompt = "a {color} shoe on {bg}"\n'
                            'matrix = { color = ["red", "blue"], bg = ["white", "sand"] }\n')
    assert list(found) == ["shoe[bg=white,color=red]", "shoe[bg=sand,color=red]",
                           "shoe[bg=white,color=blue]", "shoe[bg=sand,color=blue]"]
    n = found["shoe[bg=sand,color=blue]"]
    assert n.asset == "shoe" and n.variant == (("color", "blue"), ("bg", "sand"))
    assert n.prompt == "a blue shoe on sand" and n.outputs == ("out/shoe-blue-sand.png",)


def test_matrix_values_are_slugged_in_file_names_but_not_in_prompts(tmp_path):
    found = nodes(tmp_path, '[assets.card]\nprompt = "{ratio} in {tone}"\n'
                            'matrix = { ratio = ["16:9"], tone = ["dark blue"] }\n')
    (n,) = found.values()
    assert n.id == "card[ratio=16:9,tone=dark blue]" and n.prompt == "16:9 in dark blue"
    assert n.outputs == ("out/card-16-9-dark-blue.png",)
    assert slug("a/b c") == "a-b-c"


def test_count_lays_out_numbered_outputs_and_needs_i_in_a_template(tmp_path):
    (n,) = nodes(tmp_path, '[assets.icon]\nprompt = "x"\ncount = 3\n').values()
    assert n.outputs == ("out/icon-1.png", "out/icon-2.png", "out/icon-3.png")
    assert "count = 3 needs {i} in the output template" in error(
        tmp_path, '[assets.icon]\nprompt = "x"\ncount = 3\noutput = "icon.png"\n')


def test_matrix_errors_name_the_key(tmp_path):
    assert "assets.a.matrix.c: matrix values must be unique" in error(
        tmp_path, '[assets.a]\nprompt = "x"\nmatrix = { c = ["r", "r"] }\n')
    assert "assets.a.matrix.c: a matrix key needs at least one value" in error(
        tmp_path, '[assets.a]\nprompt = "x"\nmatrix = { c = [] }\n')
    assert "matrix value 'a=b' contains '='" in error(tmp_path, '[assets.a]\nprompt = "x"\nmatrix = { c = ["a=b"] }\n')


def test_too_many_variants_is_refused_before_any_is_made(tmp_path):
    message = error(tmp_path, '[limits]\nmax_variants = 5\n\n[assets.a]\nprompt = "x"\n'
                              'matrix = { p = ["1", "2", "3"], q = ["1", "2"] }\n')
    assert "expands to 6 variants, more than the limit of 5 ([limits] max_variants)" in message
    assert "assets.a.matrix" in message


def test_values_that_differ_only_in_unsafe_characters_clash_by_name(tmp_path):
    message = error(tmp_path, '[assets.a]\nprompt = "x"\nmatrix = { ratio = ["16:9", "16;9"] }\n')
    assert "matrix values '16:9' and '16;9' both become '16-9' in the output file name" in message


def test_an_unknown_placeholder_lists_the_known_ones(tmp_path):
    message = error(tmp_path, '[assets.a]\nprompt = "a {colour} shoe"\nmatrix = { color = ["red"] }\n')
    assert "assetbuild.toml:" in message and "assets.a.prompt" in message
    assert "unknown placeholder {colour}" in message and "(placeholders: {color})" in message


def test_fill_keeps_doubled_braces_literal_and_refuses_lookups(tmp_path):
    path = tmp_path / "assetbuild.toml"
    path.write_text(HEAD)
    loaded = parse_manifest(HEAD, path)
    assert fill("{{x}} {c}", {"c": "red"}, loaded, "assets", "a", "prompt") == "{x} red"
    with pytest.raises(ManifestError, match="unknown placeholder"):
        fill("{c.upper}", {"c": "red"}, loaded, "assets", "a", "prompt")


# -- references ----------------------------------------------------------------------------


def test_a_reference_binds_variant_by_variant_on_shared_matrix_keys(tmp_path):
    found = nodes(tmp_path, '[assets.shoe]\nprompt = "{color} shoe"\nmatrix = { color = ["red", "blue"] }\n\n'
                            '[assets.ad]\nprompt = "ad for the {color} shoe on {bg}"\nreferences = ["@shoe"]\n'
                            'matrix = { color = ["red", "blue"], bg = ["white", "sand"] }\n')
    for color in ("red", "blue"):
        for bg in ("white", "sand"):
            (ref,) = found[f"ad[bg={bg},color={color}]"].references
            assert ref.node == f"shoe[color={color}]" and ref.paths == (f"out/shoe-{color}.png",)


def test_a_selector_fixes_a_key_and_n_picks_one_output(tmp_path):
    found = nodes(tmp_path, '[assets.shoe]\nprompt = "x"\ncount = 2\nmatrix = { color = ["red", "blue"] }\n\n'
                            '[assets.ad]\nprompt = "y"\nreferences = ["@shoe[color=blue]#2"]\n')
    (ref,) = found["ad"].references
    assert (ref.node, ref.index, ref.paths) == ("shoe[color=blue]", 1, ("out/shoe-blue-2.png",))


@pytest.mark.parametrize("body, expected", [
    ('[assets.ad]\nprompt = "y"\nreferences = ["@sho"]\n[assets.shoe]\nprompt = "x"\n',
     "assets.ad.references: unknown asset @sho; did you mean @shoe?"),
    ('[assets.shoe]\nprompt = "x"\nmatrix = { color = ["red", "blue"] }\n[assets.ad]\nprompt = "y"\n'
     'references = ["@shoe"]\n',
     "'@shoe' is ambiguous: @shoe has 2 variants; name one, e.g. @shoe[color=red] (unbound: color)"),
    ('[assets.shoe]\nprompt = "x"\nmatrix = { color = ["red"] }\n[assets.ad]\nprompt = "y"\n'
     'references = ["@shoe[size=9]"]\n',
     "'@shoe[size=9]': @shoe has no matrix key 'size' (keys: color)"),
    ('[assets.shoe]\nprompt = "x"\nmatrix = { color = ["red"] }\n[assets.ad]\nprompt = "y"\n'
     'references = ["@shoe[color=green]"]\n',
     "'@shoe[color=green]' names no variant of @shoe"),
    ('[assets.shoe]\nprompt = "x"\ncount = 2\n[assets.ad]\nprompt = "y"\nreferences = ["@shoe#3"]\n',
     "'@shoe#3': @shoe has 2 output(s); use #1..#2"),
    ('[assets.ad]\nprompt = "y"\nreferences = ["@Bad Ref"]\n',
     "bad reference '@Bad Ref'; use @id, @id[key=value,...] or @id#N"),
    ('[assets.ad]\nprompt = "y"\nreferences = ["brand/none.png"]\n',
     "reference file brand/none.png does not exist; add it or fix the path"),
])
def test_reference_errors(tmp_path, body, expected):
    message = error(tmp_path, body)
    assert expected in message and message.startswith("assetbuild.toml:")


def test_a_file_reference_carries_where_the_manifest_names_it(tmp_path):
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "logo.png").write_bytes(b"not checked until plan time")
    (ref,) = nodes(tmp_path, '[assets.a]\nprompt = "x"\nreferences = ["brand/./logo.png"]\n')["a"].references
    assert ref.path == "brand/logo.png" and ref.node is None
    assert ref.site is not None and ref.site.key == "assets.a.references" and ref.site.line == 10
    assert ref.site.max_pixels == 36_000_000


# -- derived assets ------------------------------------------------------------------------


def test_a_derived_asset_takes_on_its_sources_matrix_minus_what_it_selects(tmp_path):
    body = ('[assets.shoe]\nprompt = "x"\nmatrix = { color = ["red", "blue"], floor = ["white", "wood"] }\n\n'
            '[assets.thumb]\nfrom = "@shoe[floor=white]"\nsteps = [{ op = "fit", size = "32x32" }]\n')
    found = nodes(tmp_path, body)
    thumbs = [n for n in found.values() if n.asset == "thumb"]
    assert [n.id for n in thumbs] == ["thumb[color=red]", "thumb[color=blue]"]
    red = found["thumb[color=red]"]
    assert red.derived and red.provider == "derive" and red.references[0].node == "shoe[color=red,floor=white]"
    assert red.steps[0]["op"] == "fit" and red.outputs == ("out/thumb-red.png",)


def test_a_derived_output_follows_its_format_step(tmp_path):
    body = ('[assets.a]\nprompt = "x"\n\n'
            '[assets.b]\nfrom = "@a"\nsteps = [{ op = "format", format = "webp" }]\n')
    assert nodes(tmp_path, body)["b"].outputs == ("out/b.webp",)
    message = error(tmp_path, body.replace('steps =', 'output = "b.png"\nsteps ='))
    assert "its format step writes webp; end the output path with .webp" in message


@pytest.mark.parametrize("body, expected", [
    ('[assets.a]\nprompt = "x"\ncount = 2\n[assets.b]\nfrom = "@a"\nsteps = [{ op = "grayscale" }]\n',
     "'@a' names 2 images (count = 2), and from takes one; name it, e.g. @a#1 (#1..#2)"),
    ('[assets.a]\nprompt = "x"\n[assets.b]\nfrom = "@a"\nsteps = [{ op = "grayscale" }]\noutput = "b.jpg"\n',
     "without a format step it is written as PNG; end the output path with .png"),
    ('[assets.a]\nprompt = "x"\n[assets.b]\nfrom = "@a"\nsteps = [{ op = "fit", size = "{w}x10" }]\n',
     "assets.b.steps"),
])
def test_derived_errors(tmp_path, body, expected):
    message = error(tmp_path, body)
    assert expected in message and message.startswith("assetbuild.toml:")


def test_independent_problems_of_one_asset_are_reported_together(tmp_path):
    message = error(tmp_path, '[assets.a]\nprompt = "{nope}"\nsize = "huge"\nreferences = ["@ghost"]\n')
    assert len(message.splitlines()) == 3
    assert "assets.a.prompt" in message and "assets.a.size" in message and "assets.a.references" in message


def test_a_provider_override_changes_every_generated_node_but_no_derived_one(tmp_path):
    body = ('[providers.h]\ntype = "modelark"\n\n[assets.a]\nprompt = "x"\nsize = "2K"\n\n'
            '[assets.b]\nfrom = "@a"\nsteps = [{ op = "grayscale" }]\n')
    found = nodes(tmp_path, body, provider_override="h")
    assert (found["a"].provider, found["a"].provider_type, found["a"].model) == ("h", "modelark", "seedream-4.0")
    assert found["b"].provider == "derive"
    local = nodes(tmp_path, body)["a"]
    assert (local.provider, local.model) == ("local", "local")
