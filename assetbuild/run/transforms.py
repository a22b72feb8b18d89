"""The derived steps, applied: pure functions from image bytes to image bytes (Pillow).

The steps come checked and canonical from steps.py. Same source bytes and steps, same output
bytes: Lanczos resampling throughout, fixed encoder options, and nothing of the source's
metadata (no text chunks, EXIF, ICC profile or timestamps) is carried into the output.
PIL exceptions stop here, re-raised as :class:`DeriveError`.

Imported only when a derive runs: a no-op build never loads Pillow.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import PIL
from PIL import Image, ImageOps

from ..errors import DeriveError
from ..spec.steps import oversized

ENGINE = f"pillow-{PIL.__version__}"  # recorded in the lock as the derived images' model_id
_LANCZOS = Image.Resampling.LANCZOS
_GRAVITY = {  # gravity -> where the kept part (or the overlay) sits: 0 left/top, 1 centre, 2 right/bottom
    "center": (1, 1), "north": (1, 0), "south": (1, 2), "east": (2, 1), "west": (0, 1),
    "northeast": (2, 0), "northwest": (0, 0), "southeast": (2, 2), "southwest": (0, 2),
}
_MEDIA = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "ico": "image/x-icon"}


@dataclass(frozen=True)
class Derived:
    """A derived image: its encoded bytes and pixel size."""

    data: bytes
    width: int
    height: int
    media_type: str


def derive(source: bytes, steps: Sequence[Mapping[str, Any]], overlays: Sequence[bytes] = ()) -> Derived:
    """Apply ``steps`` to the image ``source``. ``overlays`` are the bytes of each overlay
    step's image, in step order. The last step may be a format step (default: PNG)."""
    with warnings.catch_warnings():  # Pillow warns to stderr about large images; limits were checked
        warnings.simplefilter("ignore")
        try:
            return _derive(source, steps, list(overlays))
        except DeriveError:
            raise
        except MemoryError as exc:  # a guard below the size limit: a machine short of memory
            raise DeriveError("cannot derive the image: out of memory; make it smaller or free memory") from exc
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DeriveError(f"cannot derive the image: {_reason(exc)}") from exc


def _derive(source: bytes, steps: Sequence[Mapping[str, Any]], overlays: list[bytes]) -> Derived:
    im = load(source, "the source image")
    too_big = oversized(steps, (im.width, im.height))  # every step's size, before any runs
    if too_big is not None:
        raise DeriveError(f"{too_big} (the source is {im.width}x{im.height})")
    fmt: Mapping[str, Any] = {"op": "format", "format": "png"}
    for number, step in enumerate(steps, start=1):
        op = step["op"]
        if op == "format":
            fmt = step
            continue
        if op == "overlay":
            if not overlays:
                raise DeriveError(f"step {number} (overlay): no image was given for it")
            im = overlay(im, load(overlays.pop(0), f"the overlay image {step['image']}"), step)
        else:
            im = _OPS[op](im, step)
        if im.width < 1 or im.height < 1:  # pragma: no cover - every op keeps at least 1 px
            raise DeriveError(f"step {number} ({op}) left no pixels")
    return encode(im, fmt)


def load(data: bytes, what: str) -> Image.Image:
    """Decode ``data`` into RGB, RGBA, L or LA, with no metadata kept."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            im = opened
            if im.mode not in ("RGB", "RGBA", "L", "LA"):
                alpha = "A" in im.getbands() or "transparency" in im.info
                im = im.convert("RGBA" if alpha else "RGB")
            else:
                im = im.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DeriveError(f"{what} cannot be read: {_reason(exc)}") from exc
    im.info = {}
    return im


# -- the ops ----------------------------------------------------------------------------------

def resize(im: Image.Image, step: Mapping[str, Any]) -> Image.Image:
    w_text, _, h_text = step["size"].partition("x")
    w = int(w_text) if w_text else max(1, round(im.width * int(h_text) / im.height))
    h = int(h_text) if h_text else max(1, round(im.height * int(w_text) / im.width))
    return im.resize((w, h), _LANCZOS)


def fit(im: Image.Image, step: Mapping[str, Any]) -> Image.Image:
    size = _size(step["size"])
    mode = step["mode"]
    if mode == "cover":
        gx, gy = _GRAVITY[step["gravity"]]
        return ImageOps.fit(im, size, method=_LANCZOS, centering=(gx / 2, gy / 2))
    inside = ImageOps.contain(im, size, method=_LANCZOS)
    if mode == "contain":
        return inside
    offset = ((size[0] - inside.width) // 2, (size[1] - inside.height) // 2)
    return _place(inside, size, offset, step["background"])


def crop(im: Image.Image, step: Mapping[str, Any]) -> Image.Image:
    if "box" in step:
        x, y, w, h = step["box"]
        if x + w > im.width or y + h > im.height:
            raise DeriveError(f"crop box {step['box']} reaches outside the {im.width}x{im.height} image; "
                              "keep x + width and y + height within it")
        return im.crop((x, y, x + w, y + h))
    text = step["size"]
    if ":" in text:
        rw, rh = (int(v) for v in text.split(":"))
        if im.width * rh > im.height * rw:  # wider than the ratio: keep the full height
            w, h = max(1, round(im.height * rw / rh)), im.height
        else:
            w, h = im.width, max(1, round(im.width * rh / rw))
    else:
        w, h = _size(text)
        if w > im.width or h > im.height:
            raise DeriveError(f"crop size {text} is larger than the {im.width}x{im.height} image; "
                              "crop a smaller size, or fit it first")
    x, y = _offset((im.width - w, im.height - h), step["gravity"], 0)
    return im.crop((x, y, x + w, y + h))


def pad(im: Image.Image, step: Mapping[str, Any]) -> Image.Image:
    top, right, bottom, left = step["margin"]
    return _place(im, (im.width + left + right, im.height + top + bottom), (left, top), step["background"])


def grayscale(im: Image.Image, step: Mapping[str, Any]) -> Image.Image:
    return im.convert("LA" if _has_alpha(im) else "L")


def overlay(im: Image.Image, top: Image.Image, step: Mapping[str, Any]) -> Image.Image:
    layer_image = top.convert("RGBA")
    if "scale" in step:
        width = max(1, round(im.width * step["scale"]))
        height = max(1, round(layer_image.height * width / layer_image.width))
        layer_image = layer_image.resize((width, height), _LANCZOS)
    opacity = step["opacity"]
    if opacity < 1:
        alpha = layer_image.getchannel("A").point([round(v * opacity) for v in range(256)])
        layer_image.putalpha(alpha)
    free = (im.width - layer_image.width, im.height - layer_image.height)
    offset = _offset(free, step["position"], step["margin"])
    base = im.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    layer.paste(layer_image, offset)
    out = Image.alpha_composite(base, layer)
    return out if _has_alpha(im) else out.convert("RGB")


_OPS: dict[str, Callable[[Image.Image, Mapping[str, Any]], Image.Image]] = {
    "resize": resize, "fit": fit, "crop": crop, "pad": pad, "grayscale": grayscale,
}


# -- encoding ---------------------------------------------------------------------------------

def encode(im: Image.Image, step: Mapping[str, Any]) -> Derived:
    """The image in the step's format, with fixed encoder options and no metadata."""
    fmt = step["format"]
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, format="PNG", compress_level=6, optimize=False)
    elif fmt == "jpeg":
        if _has_alpha(im) or im.mode != "L":
            im = _place(im, im.size, (0, 0), step["background"]).convert("RGB")
        im.save(buf, format="JPEG", quality=step["quality"], subsampling=2, optimize=False, progressive=False)
    elif fmt == "webp":
        im = im.convert("RGBA" if _has_alpha(im) else "RGB")
        im.save(buf, format="WEBP", quality=step["quality"], method=4, lossless=False, exact=False)
    else:
        im = _icon(im)
        sizes = step["sizes"]
        im.save(buf, format="ICO", sizes=[(s, s) for s in sizes])
        return Derived(buf.getvalue(), max(sizes), max(sizes), _MEDIA[fmt])
    return Derived(buf.getvalue(), im.width, im.height, _MEDIA[fmt])


def _icon(im: Image.Image) -> Image.Image:
    """A square RGBA image at least as large as the largest icon (Pillow drops any larger
    size than the image it is given, silently)."""
    if im.width != im.height:
        raise DeriveError(f"an .ico needs a square image, and this one is {im.width}x{im.height}; "
                          'add { op = "fit", size = "256x256", mode = "pad" } before the format step')
    im = im.convert("RGBA")
    if im.width < 256:
        im = im.resize((256, 256), _LANCZOS)
    return im


# -- helpers ----------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def _offset(free: tuple[int, int], gravity: str, margin: int) -> tuple[int, int]:
    """Where a part goes, given the free space around it (may be negative) and a margin."""
    gx, gy = _GRAVITY[gravity]

    def along(space: int, g: int) -> int:
        return margin if g == 0 else space // 2 if g == 1 else space - margin

    return along(free[0], gx), along(free[1], gy)


def _place(im: Image.Image, size: tuple[int, int], offset: tuple[int, int], colour: str) -> Image.Image:
    """``im`` at ``offset`` on a canvas of ``size`` filled with ``colour`` ("#rrggbbaa")."""
    fill = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5, 7))
    canvas = Image.new("RGBA", size, fill)  # type: ignore[arg-type]
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste(im.convert("RGBA"), offset)
    out = Image.alpha_composite(canvas, layer)
    return out if _has_alpha(im) or fill[3] < 255 else out.convert("RGB")


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA")


def _reason(exc: BaseException) -> str:
    text = re.sub(r"\s*<[^<>]* at 0x[0-9A-Fa-f]+>", "", str(exc)).strip()
    return text or type(exc).__name__
