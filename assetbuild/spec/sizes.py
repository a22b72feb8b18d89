"""The size grammar, over each model's limits from the models table (catalog.py;
providers.md §1.4, newer revision): the hosts ask here instead of keeping their own copy.

``"1K" | "2K" | "3K" | "4K"``, ``"WxH"``, ``"W:H"`` or ``"W:H@1K|2K|3K|4K"`` resolve to exact pixels; a
ratio uses the recommended-size table where it lists the ratio and otherwise the tier's
pixel budget rounded to multiples of 16. Every size is checked against the model's limits.
Hosts that take a keyword size instead of pixels ask :func:`nearest_tier` and
:func:`nearest_ratio` for the closest one the model offers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .catalog import MODELS

TIER_SIDE = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}

# Newer official revision. The 1K column's 4:3/3:2 entries are listed swapped in the doc
# ("864x1152 (sic)"); they are given here the right way round.
RECOMMENDED: dict[str, dict[tuple[int, int], tuple[int, int]]] = {
    "1K": {(1, 1): (1024, 1024), (4, 3): (1152, 864), (3, 4): (864, 1152), (16, 9): (1280, 720),
           (9, 16): (720, 1280), (3, 2): (1248, 832), (2, 3): (832, 1248), (21, 9): (1512, 648)},
    "2K": {(1, 1): (2048, 2048), (4, 3): (2304, 1728), (3, 4): (1728, 2304), (16, 9): (2848, 1600),
           (9, 16): (1600, 2848), (3, 2): (2496, 1664), (2, 3): (1664, 2496), (21, 9): (3136, 1344)},
    # Seedream 5.0 Lite's 3K (apixo.ai's table of the BytePlus sizes [3p]; 3072x3072 x 1.1025 at most).
    "3K": {(1, 1): (3072, 3072), (4, 3): (3456, 2592), (3, 4): (2592, 3456), (16, 9): (4096, 2304),
           (9, 16): (2304, 4096), (3, 2): (3744, 2496), (2, 3): (2496, 3744), (21, 9): (4704, 2016)},
    "4K": {(1, 1): (4096, 4096), (4, 3): (4704, 3520), (3, 4): (3520, 4704), (16, 9): (5504, 3040),
           (9, 16): (3040, 5504), (3, 2): (4992, 3328), (2, 3): (3328, 4992), (21, 9): (6240, 2656)},
}
# The ratios the table lists, as "W:H": 1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3, 21:9.
TABLE_RATIOS = tuple(f"{w}:{h}" for w, h in RECOMMENDED["2K"])


@dataclass(frozen=True)
class ModelLimits:
    tiers: tuple[str, ...]
    min_pixels: int = 0
    max_pixels: int = 1 << 62
    min_ratio: float = 1 / 16
    max_ratio: float = 16.0
    min_side: int = 1
    max_side: int = 1 << 30


LIMITS: dict[str, ModelLimits] = {
    **{m.name: ModelLimits(m.tiers, m.min_pixels, m.max_pixels, m.min_ratio, m.max_ratio) for m in MODELS},
    # The offline placeholder renderer is its own model: any size from 16 to 8192 px a side.
    "local": ModelLimits(("1K", "2K", "4K"), min_ratio=0, max_ratio=float("inf"), min_side=16, max_side=8192),
}

# A model only a host's config names: the tiers every Seedream model has.
DEFAULT_TIERS = ("2K", "4K")

_PIXELS = re.compile(r"^([0-9]+)x([0-9]+)$")
_RATIO = re.compile(r"^([0-9]+):([0-9]+)(?:@(1K|2K|3K|4K))?$")
_MAX_DIGITS = 6  # no model takes a side or a ratio term of a million or more


class SizeError(ValueError):
    """A size that does not parse or does not fit the model."""


def resolve_size(text: str, model: str) -> tuple[int, int]:
    """Exact (width, height) for ``text`` on ``model``; SizeError says what is wrong and what fits."""
    limits = LIMITS[model]
    spec = text.strip()
    shown = _shown(text)
    if len(spec) > 2 * _MAX_DIGITS + 4:  # int() of 5,000 digits raises; none of them is a size
        longest = max((len(t) for t in re.findall(r"[0-9]+", spec)), default=0)
        if longest > _MAX_DIGITS:
            raise SizeError(f"size {shown} has a number of {longest:,} digits; write a size such as 2048x2048 or 16:9")
    if spec.upper() in TIER_SIDE:
        tier = spec.upper()
        _check_tier(tier, model, limits)
        side = TIER_SIDE[tier]
        width, height = side, side
    elif m := _PIXELS.match(spec):
        width, height = int(m.group(1)), int(m.group(2))
        if width == 0 or height == 0:
            raise SizeError(f"size {shown} has a zero side")
    elif m := _RATIO.match(spec):
        rw, rh = int(m.group(1)), int(m.group(2))
        if rw == 0 or rh == 0:
            raise SizeError(f"size {shown} has a zero term")
        tier = m.group(3) or "2K"
        _check_tier(tier, model, limits)
        width, height = _ratio_pixels(rw, rh, tier, limits.max_pixels)
    else:
        raise SizeError(f"size {shown} is not 1K, 2K, 3K, 4K, WxH (2048x2048), W:H (16:9) or W:H@4K")
    check_pixels(width, height, model, label=text)
    return width, height


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else f"{shown[:35]}...{shown[-2:]}"


def check_pixels(width: int, height: int, model: str, *, label: str = "") -> None:
    limits = LIMITS[model]
    label = label[:40] or f"{width}x{height}"
    ratio = width / height
    if not limits.min_ratio <= ratio <= limits.max_ratio:
        raise SizeError(f"size {label!r} ({width}x{height}) has aspect ratio {ratio:.3g}; {model} allows 1/16 to 16")
    if not (limits.min_side <= width <= limits.max_side and limits.min_side <= height <= limits.max_side):
        raise SizeError(f"size {label!r} ({width}x{height}): {model} takes {limits.min_side} to {limits.max_side} px a side")
    pixels = width * height
    if not limits.min_pixels <= pixels <= limits.max_pixels:
        raise SizeError(
            f"size {label!r} ({width}x{height}) is {pixels:,} pixels; {model} needs "
            f"{limits.min_pixels:,} to {limits.max_pixels:,}"
        )


def _check_tier(tier: str, model: str, limits: ModelLimits) -> None:
    if tier not in limits.tiers:
        raise SizeError(f"{model} has no {tier} size; use {' or '.join(limits.tiers)}")


def _reduced(rw: int, rh: int) -> tuple[int, int]:
    g = math.gcd(rw, rh)
    return rw // g, rh // g


def _ratio_pixels(rw: int, rh: int, tier: str, max_pixels: int = 1 << 62) -> tuple[int, int]:
    """The recommended pixels for a ratio, else the tier's budget (within the model's maximum:
    Seedream 5.0 Pro's 2K is at most 4,194,304 pixels) in multiples of 16."""
    key = _reduced(rw, rh)
    # The table's ratios reduced as the asked one is: it lists 21:9, which is 7:3.
    table = {_reduced(*ratio): pixels for ratio, pixels in RECOMMENDED[tier].items()}
    if key in table and table[key][0] * table[key][1] <= max_pixels:
        return table[key]
    budget = TIER_SIDE[tier] ** 2
    ratio = key[0] / key[1]
    width = max(16, round(math.sqrt(budget * ratio) / 16) * 16)
    height = max(16, round(width / ratio / 16) * 16)
    if width * height > max_pixels:  # down to the largest multiples of 16 within the maximum
        width = max(16, math.floor(math.sqrt(max_pixels * ratio) / 16) * 16)
        height = max(16, math.floor(width / ratio / 16) * 16)
    return width, height


def tiers(model: str) -> tuple[str, ...]:
    """The keyword sizes ``model`` offers (the models table): no 1K on Seedream 4.5 (§1.4), 2K and 3K
    on 5.0 Lite, 1K and 2K on 5.0 Pro."""
    limits = LIMITS.get(model)
    return DEFAULT_TIERS if limits is None else limits.tiers


def nearest_tier(model: str, width: int, height: int) -> str:
    """The tier of ``model`` whose nominal pixels (1024², 2048², 4096²) are nearest to
    ``width`` x ``height`` on a log scale."""
    pixels = width * height
    return min(tiers(model), key=lambda tier: abs(math.log(TIER_SIDE[tier] ** 2 / pixels)))


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...] = TABLE_RATIOS) -> str:
    """Of ``ratios`` (``"W:H"``), the one nearest to ``width``:``height`` on a log scale, so 2:1
    and 1:2 are equally far from 1:1."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ratios, key=distance)
