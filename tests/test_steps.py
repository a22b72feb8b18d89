"""The derived steps as data: each op's keys checked with one clear message, and the canonical
form (defaults filled in, aliases and colours normalised) that the fingerprint hashes."""

from __future__ import annotations

import pytest

from assetbuild.spec.steps import extension, parse_step, parse_steps


def parsed(*tables: dict) -> list[dict]:
    steps, problems = parse_steps(list(tables), lambda text: text)
    assert problems == []
    return steps


def problems(*tables: object) -> list[str]:
    return parse_steps(list(tables), lambda text: text)[1]


def test_equal_steps_written_two_ways_are_one_canonical_form():
    assert parsed({"op": "fit", "size": "512x512"}) == parsed(
        {"op": "fit", "size": " 512x512", "mode": "COVER", "gravity": "center"})
    assert parsed({"op": "format", "format": "jpg"}) == [
        {"op": "format", "format": "jpeg", "quality": 90, "background": "#ffffffff"}]
    assert parsed({"op": "pad", "margin": 8, "background": "#FFF"}) == [
        {"op": "pad", "margin": [8, 8, 8, 8], "background": "#ffffffff"}]
    assert parsed({"op": "pad", "margin": [1, 2]})[0]["margin"] == [1, 2, 1, 2]
    assert parsed({"op": "crop", "size": "32:18"})[0] == {"op": "crop", "size": "16:9", "gravity": "center"}
    assert parsed({"op": "overlay", "image": "@logo", "opacity": 1})[0] == {
        "op": "overlay", "image": "@logo", "position": "southeast", "margin": 0, "opacity": 1.0}
    assert parsed({"op": "format", "format": "ico", "sizes": [48, 16]})[0]["sizes"] == [16, 48]


def test_the_extension_follows_the_format_step():
    assert extension([]) == ".png"
    assert extension(parsed({"op": "grayscale"}, {"op": "format", "format": "webp"})) == ".webp"
    assert extension(parsed({"op": "format", "format": "jpeg"})) == ".jpg"
    assert extension(parsed({"op": "format", "format": "ico"})) == ".ico"


@pytest.mark.parametrize("table, fragment", [
    ({"op": "resise", "size": "8x8"}, "unknown op 'resise'; did you mean 'resize'?"),
    ({"size": "8x8"}, "needs an op"),
    ({"op": "fit"}, 'needs size, e.g. { op = "fit"'),
    ({"op": "fit", "sise": "8x8", "size": "8x8"}, "unknown key 'sise'; did you mean 'size'?"),
    ({"op": "fit", "size": "big"}, "size 'big' is not WxH in px"),
    ({"op": "fit", "size": "0x10"}, "each side is 1 to 16384 px"),
    ({"op": "fit", "size": "8x8", "mode": "stretch"}, "mode 'stretch' is not allowed; use one of cover, contain, pad"),
    ({"op": "fit", "size": "8x8", "background": "#fff"}, 'background applies to mode = "pad" only'),
    ({"op": "fit", "size": "8x8", "mode": "pad", "background": "#ggg"}, "is not a colour"),
    ({"op": "resize", "size": "x"}, "is not WxH (512x512), Wx"),
    ({"op": "resize", "size": 512}, "size is an integer; write it as a string"),
    ({"op": "crop"}, "not neither"),
    ({"op": "crop", "box": [0, 0, 8, 8], "size": "8x8"}, "not both"),
    ({"op": "crop", "box": [0, 0, 8]}, "is not four whole numbers [x, y, width, height]"),
    ({"op": "crop", "box": [0, 0, 0, 8]}, "has a width or height of 0 or less"),
    ({"op": "crop", "box": [-1, 0, 8, 8]}, "x and y are at least 0"),
    ({"op": "crop", "size": "8x8", "gravity": "up"}, "gravity 'up' is not allowed; use one of center, north"),
    ({"op": "crop", "size": "8x8", "gravity": "nort"}, "did you mean 'north'?"),
    ({"op": "crop", "size": "0:1"}, "has a zero term"),
    ({"op": "pad", "margin": [1, 2, 3]}, "is not a number of px, [vertical, horizontal] or [top, right, bottom, left]"),
    ({"op": "pad", "margin": -1}, "each side is 0 to 16384 px"),
    ({"op": "overlay", "image": "@logo", "opacity": 1.5}, "opacity 1.5 is out of range; use 0 (invisible) to 1"),
    ({"op": "overlay", "image": "@logo", "scale": 0}, "scale 0 is out of range"),
    ({"op": "overlay", "image": "@logo", "position": "middle"}, "position 'middle' is not allowed"),
    ({"op": "overlay", "image": ""}, "image is empty"),
    ({"op": "format", "format": "gif"}, "format 'gif' is not one assetbuild writes"),
    ({"op": "format", "format": "webq"}, "did you mean 'webp'?"),
    ({"op": "format", "format": "png", "quality": 80}, "quality applies to jpeg and webp, not png"),
    ({"op": "format", "format": "webp", "quality": 101}, "quality 101 is not a whole number from 1 to 100"),
    ({"op": "format", "format": "ico", "sizes": [16, 512]}, "an .ico holds icons of 1 to 256 px"),
    ({"op": "format", "format": "png", "sizes": [16]}, "sizes applies to ico"),
    ({"op": "grayscale", "amount": 1}, "grayscale takes no other keys"),
])
def test_each_bad_step_is_one_clear_message(table, fragment):
    found = problems(table)
    assert len(found) == 1 and found[0].startswith("step 1") and fragment in found[0], found


def test_problems_are_collected_one_per_step_and_the_format_step_comes_last():
    found = problems({"op": "fit", "size": "nope"}, {"op": "grayscale"}, {"op": "resise", "size": "1x1"})
    assert [p.split(":")[0] for p in found] == ["step 1 (fit)", "step 3"]
    assert problems({"op": "format", "format": "png"}, {"op": "grayscale"}) == [
        "step 1 (format): the format step comes last, once; move it to the end"]
    assert problems("fit")[0].startswith("step 1: is a string, not a table")
    assert problems() == ['a derived asset needs at least one step, e.g. steps = [{ op = "fit", '
                          'size = "1200x630", mode = "cover" }]']


def test_string_values_are_filled_in_before_they_are_checked():
    steps, found = parse_steps([{"op": "crop", "size": "{ratio}"}], lambda text: text.replace("{ratio}", "4:5"))
    assert found == [] and steps[0]["size"] == "4:5"
    with pytest.raises(ValueError):
        parse_step({"op": "fit", "size": "{ratio}"})
