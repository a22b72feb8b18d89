"""The derived steps as data: each ``{ op = ... }`` table of a derived asset checked, one clear
message per problem, and put in canonical form (defaults filled in, sizes, colours and
aliases normalised), so steps written two ways that mean the same fingerprint the same.

Pure Python, no Pillow: the manifest is checked without decoding an image, and transforms.py
applies the canonical steps. Every canonical value is JSON- and TOML-native (no None, lists
not tuples): the steps go into the fingerprint, the blueprint memo and the lock as they are.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable, Mapping, Sequence

GRAVITIES = ("center", "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest")
FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "ico": ".ico"}
EXTENSIONS = {"png": (".png",), "jpeg": (".jpg", ".jpeg"), "webp": (".webp",), "ico": (".ico",)}
MAX_SIDE = 16384  # px: no step makes an image wider or taller (a guard, not a style rule)
ICO_MAX = 256  # the largest image an .ico entry holds
_DEFAULT_QUALITY = {"jpeg": 90, "webp": 80}
_DEFAULT_ICO_SIZES = [16, 32, 48]
_COLOURS = {"transparent": "#00000000", "white": "#ffffffff", "black": "#000000ff"}

# op -> (required keys, optional keys)
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "resize": (("size",), ()),
    "fit": (("size",), ("mode", "background", "gravity")),
    "crop": ((), ("box", "size", "gravity")),
    "pad": (("margin",), ("background",)),
    "grayscale": ((), ()),
    "overlay": (("image",), ("position", "margin", "scale", "opacity")),
    "format": (("format",), ("quality", "sizes", "background")),
}
_EXAMPLES = {
    "resize": '{ op = "resize", size = "512x512" }',
    "fit": '{ op = "fit", size = "1200x630", mode = "cover" }',
    "crop": '{ op = "crop", size = "1:1", gravity = "center" }',
    "pad": '{ op = "pad", margin = 32, background = "#ffffff" }',
    "grayscale": '{ op = "grayscale" }',
    "overlay": '{ op = "overlay", image = "@logo", position = "southeast", margin = 24, scale = 0.2 }',
    "format": '{ op = "format", format = "webp", quality = 80 }',
}


class StepError(ValueError):
    """One problem with one step; ``str()`` is the message, ending in what to do."""


def parse_steps(tables: Sequence[Any], fill: Callable[[str], str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The canonical steps, and one message per problem ("step 2 (crop): ..."). ``fill``
    substitutes matrix values into each string value (it may raise the caller's own error)."""
    steps: list[dict[str, Any]] = []
    problems: list[str] = []
    if not tables:
        return [], ["a derived asset needs at least one step, e.g. steps = [" + _EXAMPLES["fit"] + "]"]
    for i, table in enumerate(tables, start=1):
        op = table.get("op") if isinstance(table, dict) else None
        label = f"step {i}" + (f" ({op})" if isinstance(op, str) and op in OPS else "")
        try:
            if not isinstance(table, dict):
                raise StepError(f"is {_kind(table)}, not a table; write each step as {_EXAMPLES['resize']}")
            filled = {k: fill(v) if isinstance(v, str) else v for k, v in table.items()}
            steps.append(parse_step(filled))
        except StepError as exc:
            problems.append(f"{label}: {exc}")
    formats = [i for i, s in enumerate(steps, start=1) if s.get("op") == "format"]
    if not problems and formats and (len(formats) > 1 or formats[0] != len(steps)):
        problems.append(f"step {formats[0]} (format): the format step comes last, once; move it to the end")
    if not problems:
        problems += _oversized(steps)
    return steps, problems


Size = tuple["int | None", "int | None"]  # (width, height) in px; None where it depends on the source image


def step_size(step: Mapping[str, Any], size: Size) -> Size:
    """The size of the image ``step`` makes from one of ``size`` (at most that, for a ``fit``
    in contain mode and a ratio crop), computed before the step runs."""
    w, h = size
    op = step["op"]
    if op == "resize":
        tw, _, th = step["size"].partition("x")
        nw, nh = (int(tw) if tw else None), (int(th) if th else None)
        if nw is not None and nh is None:
            nh = max(1, round(h * nw / w)) if w and h else None
        elif nh is not None and nw is None:
            nw = max(1, round(w * nh / h)) if w and h else None
        return nw, nh
    if op == "fit":
        fw, _, fh = step["size"].partition("x")
        return int(fw), int(fh)
    if op == "crop":
        if "box" in step:
            return step["box"][2], step["box"][3]
        if ":" not in step["size"]:
            cw, _, ch = step["size"].partition("x")
            return int(cw), int(ch)
        return w, h
    if op == "pad":
        top, right, bottom, left = step["margin"]
        return (None if w is None else w + left + right), (None if h is None else h + top + bottom)
    return w, h  # grayscale, overlay and format keep the size


def oversized(steps: Sequence[Mapping[str, Any]], size: Size) -> str | None:
    """Why running ``steps`` on an image of ``size`` would make one wider or taller than
    MAX_SIDE (naming the first step that would), or None. Nothing is decoded."""
    for number, step in enumerate(steps, start=1):
        size = step_size(step, size)
        if any(side is not None and side > MAX_SIDE for side in size):
            shown = "x".join("?" if side is None else str(side) for side in size)
            return (f"step {number} ({step['op']}) would make a {shown} image; each side is at most {MAX_SIDE} px "
                    "(a memory guard): make the image smaller before this step")
    return None


def _oversized(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sizes the steps fix whatever the source (a resize, a fit, a pad after them), checked
    when the manifest loads; the rest is checked against the source image before each step runs."""
    problem = oversized(steps, (None, None))
    return [problem] if problem else []


def extension(steps: Sequence[Mapping[str, Any]]) -> str:
    """The output file extension the steps write: their format step's, else .png."""
    fmt = next((s["format"] for s in reversed(steps) if s.get("op") == "format"), "png")
    return FORMATS[fmt]


def format_of(steps: Sequence[Mapping[str, Any]]) -> str:
    return next((s["format"] for s in reversed(steps) if s.get("op") == "format"), "png")


def parse_step(table: Mapping[str, Any]) -> dict[str, Any]:
    """One step in canonical form; StepError says what is wrong and what to do."""
    op = table.get("op")
    if op is None:
        raise StepError(f"needs an op; one of {', '.join(sorted(OPS))}, e.g. {_EXAMPLES['fit']}")
    if not isinstance(op, str) or op not in OPS:
        close = difflib.get_close_matches(str(op), list(OPS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(sorted(OPS))}"
        raise StepError(f"unknown op {_clip(op)}; {hint}")
    required, optional = OPS[op]
    known = ("op", *required, *optional)
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"{op} takes {', '.join(known[1:]) or 'no other keys'}"
            raise StepError(f"unknown key {_clip(key)}; {hint}")
    for key in required:
        if key not in table:
            raise StepError(f"needs {key}, e.g. {_EXAMPLES[op]}")
    return _PARSERS[op](table)


# -- one parser per op ----------------------------------------------------------------------

def _resize(t: Mapping[str, Any]) -> dict[str, Any]:
    text = _str(t, "size")
    m = re.fullmatch(r"([0-9]{1,6})?x([0-9]{1,6})?", text.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise StepError(f"size {_clip(text)} is not WxH (512x512), Wx (512x: height keeps the aspect) or xH")
    w = _side(m.group(1), text) if m.group(1) else None
    h = _side(m.group(2), text) if m.group(2) else None
    return {"op": "resize", "size": f"{w or ''}x{h or ''}"}


def _fit(t: Mapping[str, Any]) -> dict[str, Any]:
    w, h = _pixels(_str(t, "size"))
    mode = _choice(t, "mode", ("cover", "contain", "pad"), "cover")
    step: dict[str, Any] = {"op": "fit", "size": f"{w}x{h}", "mode": mode}
    if "background" in t and mode != "pad":
        raise StepError(f"background applies to mode = \"pad\" only (this fit is {mode}); remove it")
    if "gravity" in t and mode != "cover":
        raise StepError(f"gravity applies to mode = \"cover\" only (this fit is {mode}); remove it")
    if mode == "pad":
        step["background"] = _colour(t, "background", "transparent")
    if mode == "cover":
        step["gravity"] = _choice(t, "gravity", GRAVITIES, "center")
    return step


def _crop(t: Mapping[str, Any]) -> dict[str, Any]:
    if ("box" in t) == ("size" in t):
        raise StepError('needs box = [x, y, width, height], or size = "WxH" or "W:H" (with gravity), not '
                        + ("both" if "box" in t else "neither"))
    if "box" in t:
        if "gravity" in t:
            raise StepError("gravity places a crop of a given size; a box is placed already: remove gravity")
        box = t["box"]
        if not (isinstance(box, list) and len(box) == 4 and all(_is_int(v) for v in box)):
            raise StepError(f"box {_clip(box)} is not four whole numbers [x, y, width, height], e.g. [0, 0, 512, 512]")
        x, y, w, h = box
        if x < 0 or y < 0:
            raise StepError(f"box {_clip(box)} starts left of or above the image; x and y are at least 0")
        if w <= 0 or h <= 0:
            raise StepError(f"box {_clip(box)} has a width or height of 0 or less; give the size of the part to keep")
        if max(x + w, y + h) > MAX_SIDE:
            raise StepError(f"box {_clip(box)} reaches past {MAX_SIDE} px; no image is that large")
        return {"op": "crop", "box": [x, y, w, h]}
    text = _str(t, "size")
    gravity = _choice(t, "gravity", GRAVITIES, "center")
    m = re.fullmatch(r"([0-9]{1,6}):([0-9]{1,6})", text.strip())
    if m:
        rw, rh = int(m.group(1)), int(m.group(2))
        if rw == 0 or rh == 0:
            raise StepError(f"size {_clip(text)} has a zero term; write a ratio such as 1:1 or 16:9")
        g = math.gcd(rw, rh)
        if max(rw, rh) // g > 64 * (min(rw, rh) // g):
            raise StepError(f"size {_clip(text)} is an aspect ratio beyond 64:1; use a gentler ratio")
        return {"op": "crop", "size": f"{rw // g}:{rh // g}", "gravity": gravity}
    w, h = _pixels(text, ratio_ok=True)
    return {"op": "crop", "size": f"{w}x{h}", "gravity": gravity}


def _pad(t: Mapping[str, Any]) -> dict[str, Any]:
    margin = t["margin"]
    values = [margin] if _is_int(margin) else margin
    if not (isinstance(values, list) and len(values) in (1, 2, 4) and all(_is_int(v) for v in values)):
        raise StepError(f"margin {_clip(margin)} is not a number of px, [vertical, horizontal] or "
                        "[top, right, bottom, left]")
    if any(v < 0 or v > MAX_SIDE for v in values):
        raise StepError(f"margin {_clip(margin)}: each side is 0 to {MAX_SIDE} px")
    if len(values) == 1:
        values = values * 4
    elif len(values) == 2:
        values = values * 2
    return {"op": "pad", "margin": list(values), "background": _colour(t, "background", "transparent")}


def _grayscale(t: Mapping[str, Any]) -> dict[str, Any]:
    return {"op": "grayscale"}


def _overlay(t: Mapping[str, Any]) -> dict[str, Any]:
    image = _str(t, "image").strip()
    if not image:
        raise StepError('image is empty; name a file ("brand/logo.png") or an asset ("@logo")')
    step: dict[str, Any] = {"op": "overlay", "image": image,
                            "position": _choice(t, "position", GRAVITIES, "southeast")}
    margin = t.get("margin", 0)
    if not _is_int(margin) or not 0 <= margin <= MAX_SIDE:
        raise StepError(f"margin {_clip(margin)} is not a number of px from 0 to {MAX_SIDE}")
    step["margin"] = margin
    if "scale" in t:
        scale = _number(t, "scale")
        if not 0 < scale <= 1:
            raise StepError(f"scale {_clip(t['scale'])} is out of range; it is the overlay's width as a fraction of "
                            "the image's, above 0 and at most 1 (0.2 = a fifth)")
        step["scale"] = scale
    opacity = _number(t, "opacity") if "opacity" in t else 1.0
    if not 0 <= opacity <= 1:
        raise StepError(f"opacity {_clip(t['opacity'])} is out of range; use 0 (invisible) to 1 (opaque)")
    step["opacity"] = opacity
    return step


def _format(t: Mapping[str, Any]) -> dict[str, Any]:
    fmt = _str(t, "format").strip().lower()
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        close = difflib.get_close_matches(fmt, list(FORMATS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else "use png, jpeg, webp or ico"
        raise StepError(f"format {_clip(t['format'])} is not one assetbuild writes; {hint}")
    step: dict[str, Any] = {"op": "format", "format": fmt}
    if "quality" in t and fmt not in _DEFAULT_QUALITY:
        raise StepError(f"quality applies to jpeg and webp, not {fmt} ({fmt} is lossless); remove it")
    if fmt in _DEFAULT_QUALITY:
        quality = t.get("quality", _DEFAULT_QUALITY[fmt])
        if not _is_int(quality) or not 1 <= quality <= 100:
            raise StepError(f"quality {_clip(quality)} is not a whole number from 1 to 100")
        step["quality"] = quality
    if "sizes" in t and fmt != "ico":
        raise StepError(f"sizes applies to ico (the icon sizes of a favicon), not {fmt}; remove it")
    if fmt == "ico":
        sizes = t.get("sizes", _DEFAULT_ICO_SIZES)
        if not (isinstance(sizes, list) and sizes and all(_is_int(s) for s in sizes)):
            raise StepError(f"sizes {_clip(sizes)} is not a list of icon sizes in px, e.g. [16, 32, 48]")
        if any(not 1 <= s <= ICO_MAX for s in sizes):
            raise StepError(f"sizes {_clip(sizes)}: an .ico holds icons of 1 to {ICO_MAX} px")
        if len(set(sizes)) != len(sizes):
            raise StepError(f"sizes {_clip(sizes)} lists a size twice; list each once")
        step["sizes"] = sorted(sizes)
    if "background" in t and fmt != "jpeg":
        raise StepError(f"background fills transparency in a jpeg (which has none), not in {fmt}; remove it")
    if fmt == "jpeg":
        step["background"] = _colour(t, "background", "white")
    return step


_PARSERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "resize": _resize, "fit": _fit, "crop": _crop, "pad": _pad, "grayscale": _grayscale, "overlay": _overlay,
    "format": _format,
}


# -- values -----------------------------------------------------------------------------------

def _str(t: Mapping[str, Any], key: str) -> str:
    value = t[key]
    if not isinstance(value, str):
        raise StepError(f"{key} is {_kind(value)}; write it as a string, e.g. {key} = \"...\"")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(t: Mapping[str, Any], key: str) -> float:
    value = t[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StepError(f"{key} {_clip(value)} is not a number")
    return float(value)


def _choice(t: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    if key not in t:
        return default
    value = _str(t, key).strip().lower()
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(choices)}"
        raise StepError(f"{key} {_clip(t[key])} is not allowed; {hint}")
    return value


def _side(digits: str, text: str) -> int:
    value = int(digits)
    if not 1 <= value <= MAX_SIDE:
        raise StepError(f"size {_clip(text)}: each side is 1 to {MAX_SIDE} px")
    return value


def _pixels(text: str, *, ratio_ok: bool = False) -> tuple[int, int]:
    m = re.fullmatch(r"([0-9]{1,6})x([0-9]{1,6})", text.strip())
    if not m:
        also = ' or an aspect ratio W:H ("16:9")' if ratio_ok else ""
        raise StepError(f"size {_clip(text)} is not WxH in px (e.g. \"1200x630\"){also}")
    return _side(m.group(1), text), _side(m.group(2), text)


def _colour(t: Mapping[str, Any], key: str, default: str) -> str:
    """A colour as "#rrggbbaa": "#rgb", "#rgba", "#rrggbb", "#rrggbbaa", or transparent / white / black."""
    text = _str(t, key).strip().lower() if key in t else default
    if text in _COLOURS:
        return _COLOURS[text]
    m = re.fullmatch(r"#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})", text)
    if not m:
        raise StepError(f"{key} {_clip(t.get(key))} is not a colour; write \"#rrggbb\", \"#rrggbbaa\", "
                        "\"transparent\", \"white\" or \"black\"")
    digits = m.group(1)
    if len(digits) <= 4:
        digits = "".join(c * 2 for c in digits)
    if len(digits) == 6:
        digits += "ff"
    return "#" + digits


def _kind(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _clip(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"
