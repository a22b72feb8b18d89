"""The derived steps applied with Pillow: each op on images whose pixels say where things went,
every output format, the same bytes every time (in another process too), no metadata carried
over, and PIL's failures turned into DeriveError."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys

import pytest
from PIL import Image, PngImagePlugin

from assetbuild.errors import DeriveError
from assetbuild.spec.steps import parse_steps
from assetbuild.run.transforms import derive

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def encoded(im: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def halves(width: int = 100, height: int = 50) -> bytes:
    """Red on the left half, blue on the right."""
    im = Image.new("RGB", (width, height), RED)
    im.paste(BLUE, (width // 2, 0, width, height))
    return encoded(im)


def solid(width: int, height: int, colour: tuple = WHITE, mode: str = "RGB") -> bytes:
    return encoded(Image.new(mode, (width, height), colour))


def run(source: bytes, *tables: dict, overlays: tuple[bytes, ...] = ()) -> Image.Image:
    steps, problems = parse_steps(list(tables), lambda text: text)
    assert problems == []
    made = derive(source, steps, overlays)
    im = Image.open(io.BytesIO(made.data))
    im.load()
    assert (made.width, made.height) == im.size
    return im


def test_resize_to_an_exact_size_or_one_side_keeping_the_aspect():
    assert run(halves(), {"op": "resize", "size": "30x30"}).size == (30, 30)
    assert run(halves(), {"op": "resize", "size": "40x"}).size == (40, 20)
    assert run(halves(), {"op": "resize", "size": "x10"}).size == (20, 10)


def test_fit_cover_fills_the_box_and_crops_at_the_gravity():
    west = run(halves(), {"op": "fit", "size": "20x20", "gravity": "west"})
    east = run(halves(), {"op": "fit", "size": "20x20", "gravity": "east"})
    assert west.size == east.size == (20, 20)
    assert west.getpixel((10, 10)) == RED and east.getpixel((10, 10)) == BLUE


def test_fit_contain_stays_inside_and_pad_fills_the_rest_with_the_background():
    assert run(halves(), {"op": "fit", "size": "40x40", "mode": "contain"}).size == (40, 20)
    padded = run(halves(), {"op": "fit", "size": "40x40", "mode": "pad", "background": "#00ff00"})
    assert padded.size == (40, 40) and padded.mode == "RGB"
    assert padded.getpixel((20, 2)) == (0, 255, 0) and padded.getpixel((5, 20)) == RED
    clear = run(halves(), {"op": "fit", "size": "40x40", "mode": "pad"})
    assert clear.mode == "RGBA" and clear.getpixel((20, 2))[3] == 0


def test_crop_by_box_by_size_and_gravity_and_by_ratio():
    box = run(halves(), {"op": "crop", "box": [60, 10, 20, 5]})
    assert box.size == (20, 5) and box.getpixel((0, 0)) == BLUE
    corner = run(halves(), {"op": "crop", "size": "10x10", "gravity": "northwest"})
    assert corner.size == (10, 10) and corner.getpixel((9, 9)) == RED
    square = run(halves(), {"op": "crop", "size": "1:1", "gravity": "east"})
    assert square.size == (50, 50) and square.getpixel((0, 0)) == BLUE
    assert run(halves(), {"op": "crop", "size": "1:2"}).size == (25, 50)


def test_crop_outside_the_image_is_a_derive_error_that_says_what_to_do():
    with pytest.raises(DeriveError, match=r"crop box \[90, 0, 20, 5\] reaches outside the 100x50 image"):
        run(halves(), {"op": "crop", "box": [90, 0, 20, 5]})
    with pytest.raises(DeriveError, match="larger than the 100x50 image; crop a smaller size, or fit it first"):
        run(halves(), {"op": "crop", "size": "60x60"})


def test_pad_adds_margins_in_css_order():
    im = run(solid(10, 10, RED), {"op": "pad", "margin": [1, 2, 3, 4], "background": "white"})
    assert im.size == (16, 14) and im.mode == "RGB"
    assert im.getpixel((4, 1)) == RED and im.getpixel((3, 1)) == WHITE and im.getpixel((4, 0)) == WHITE


def test_grayscale_keeps_transparency():
    assert run(halves(), {"op": "grayscale"}).mode == "L"
    assert run(solid(8, 8, (255, 0, 0, 128), "RGBA"), {"op": "grayscale"}).mode == "LA"


def test_overlay_at_a_position_with_margin_scale_and_opacity():
    logo = solid(10, 10, RED)
    placed = run(solid(100, 100), {"op": "overlay", "image": "@logo", "margin": 5}, overlays=(logo,))
    assert placed.getpixel((85, 85)) == RED and placed.getpixel((94, 94)) == RED and placed.getpixel((95, 95)) == WHITE
    assert placed.getpixel((84, 84)) == WHITE and placed.mode == "RGB"
    scaled = run(solid(100, 100), {"op": "overlay", "image": "@logo", "position": "northwest", "scale": 0.5},
                 overlays=(logo,))
    assert scaled.getpixel((49, 49)) == RED and scaled.getpixel((50, 50)) == WHITE
    faint = run(solid(100, 100), {"op": "overlay", "image": "@logo", "position": "center", "opacity": 0.5},
                overlays=(logo,))
    r, g, b = faint.getpixel((50, 50))
    assert r == 255 and 120 <= g <= 135 and g == b


@pytest.mark.parametrize("fmt, pil_name", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP"), ("ico", "ICO")])
def test_each_format_writes_that_format(fmt, pil_name):
    im = run(solid(64, 64, (255, 0, 0, 200), "RGBA"), {"op": "format", "format": fmt})
    assert im.format == pil_name
    if fmt == "jpeg":
        assert im.mode == "RGB"  # transparency flattened onto the background


def test_quality_changes_the_bytes_and_ico_holds_every_size():
    photo = Image.effect_noise((64, 64), 60).convert("RGB")
    low, high = (derive(encoded(photo), [{"op": "format", "format": "webp", "quality": q}]).data for q in (10, 95))
    assert low != high and len(low) < len(high)
    ico = run(solid(16, 16), {"op": "format", "format": "ico", "sizes": [16, 32, 64]})
    assert sorted(ico.info["sizes"]) == [(16, 16), (32, 32), (64, 64)]  # a small source is scaled up, not dropped
    with pytest.raises(DeriveError, match=r"an \.ico needs a square image, and this one is 100x50"):
        run(halves(), {"op": "format", "format": "ico"})


STEPS = [{"op": "fit", "size": "48x48", "mode": "pad", "background": "#123456"},
         {"op": "overlay", "image": "@o", "scale": 0.3, "opacity": 0.7}, {"op": "grayscale"}]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "ico"])
def test_same_source_and_steps_give_the_same_bytes_with_no_metadata(fmt):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "made at 12:00 on a Tuesday")
    source = encoded(Image.effect_noise((60, 60), 50).convert("RGB"), pnginfo=info, dpi=(300, 300))
    tables = [*STEPS[:2], {"op": "format", "format": fmt}]
    steps, _ = parse_steps(tables, lambda text: text)
    first = derive(source, steps, (halves(),)).data
    assert derive(source, steps, (halves(),)).data == first
    assert b"Tuesday" not in first and b"Comment" not in first
    out = Image.open(io.BytesIO(first))
    assert "dpi" not in out.info and "icc_profile" not in out.info


def test_the_bytes_are_the_same_in_another_process(tmp_path):
    steps = parse_steps([*STEPS, {"op": "format", "format": "webp"}], lambda text: text)[0]
    (tmp_path / "src.png").write_bytes(halves())
    (tmp_path / "ov.png").write_bytes(solid(9, 9, RED))
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    here = hashlib.sha256(derive(halves(), steps, (solid(9, 9, RED),)).data).hexdigest()
    code = ("import hashlib, json, pathlib, sys; from assetbuild.run.transforms import derive; d = pathlib.Path(sys.argv[1]); "
            "made = derive((d / 'src.png').read_bytes(), json.loads((d / 'steps.json').read_text()), "
            "((d / 'ov.png').read_bytes(),)); print(hashlib.sha256(made.data).hexdigest())")
    there = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def test_a_source_that_is_not_an_image_is_a_derive_error():
    with pytest.raises(DeriveError, match="the source image cannot be read"):
        derive(b"not an image", [{"op": "grayscale"}])
    with pytest.raises(DeriveError, match="the overlay image @o cannot be read"):
        derive(halves(), [{"op": "overlay", "image": "@o", "position": "center", "margin": 0, "opacity": 1.0}],
               (b"\x89PNG\r\n\x1a\ncut",))
