"""The built-in offline provider: a deterministic placeholder renderer (Pillow).

It honours the exact size, makes ``count`` images, shows the reference images as
thumbnails, draws the prompt, and takes its palette from the inputs. Same inputs, same
bytes; no key, no network, no cost. It is its own model ("local"), not Seedream.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from typing import Any, Mapping

from PIL import Image, ImageDraw, ImageFont, ImageStat

from ..spec.models import ProviderConfig
from .base import GenerationRequest, GenerationResult, JobStore


class LocalProvider:
    """Placeholder images rendered offline: a provider like any other that reads no key,
    sends nothing and costs nothing."""

    type = "local"
    key_env = None
    base_url = None
    key_is_set = True
    models = ("local",)

    def __init__(self, name: str = "local", config: ProviderConfig | None = None, *,
                 env: Mapping[str, str] | None = None, clock: Any = None, transport: Any = None):
        self.name = name
        self.config = config or ProviderConfig(type="local")

    def model_id(self, model: str) -> str:
        return "local"

    def price_per_image(self, model: str, pixels: int = 0, references: int = 0) -> float:
        return 0.0

    def price_rule(self, model: str) -> tuple[str, str]:
        return "$0/image", "the local renderer is free"

    def validate(self, request: GenerationRequest) -> None:
        """Sizes were checked against the local model's limits when the manifest loaded."""

    def generate(self, request: GenerationRequest, jobs: JobStore) -> GenerationResult:
        images = tuple(render(request, i) for i in range(request.count))
        return GenerationResult(images=images, model_id="local", request_id=f"local-{request.fingerprint[:16]}")

    def interrupt(self) -> None:
        """Nothing to stop: a render is short and sends nothing."""

    def close(self) -> None:
        pass


def _palette(request: GenerationRequest, index: int) -> list[tuple[int, int, int]]:
    seed = f"{request.prompt}|{request.seed}|{request.watermark}|{sorted(request.params.items())!r}|{index}"
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    colors = [tuple(digest[i:i + 3]) for i in range(0, 18, 3)]
    for k, ref in enumerate(request.references[:3]):  # references tint the palette
        with Image.open(io.BytesIO(ref.data)) as img:
            mean = ImageStat.Stat(img.convert("RGB").resize((8, 8))).mean
        colors[k] = tuple((int(m) + c) // 2 for m, c in zip(mean, colors[k]))
    return [c for c in colors]  # type: ignore[misc]


def render(request: GenerationRequest, index: int) -> bytes:
    w, h = request.width, request.height
    colors = _palette(request, index)
    # A diagonal gradient between two palette colours, made small and scaled up (fast at 4K).
    small = Image.new("RGB", (2, 2))
    small.putdata([colors[0], colors[1], colors[1], colors[2]])
    img = small.resize((w, h), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    unit = min(w, h)
    digest = hashlib.sha256(f"{request.prompt}|{index}".encode()).digest()
    for k in range(3):  # a few shapes, placed by the prompt's hash
        cx, cy = digest[4 * k] / 255 * w, digest[4 * k + 1] / 255 * h
        r = (0.08 + digest[4 * k + 2] / 255 * 0.2) * unit
        box = (cx - r, cy - r, cx + r, cy + r)
        if digest[4 * k + 3] % 2:
            draw.ellipse(box, fill=colors[3 + k])
        else:
            draw.rectangle(box, fill=colors[3 + k])
    _draw_references(img, request)
    _draw_text(draw, request, index, w, h)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _draw_references(img: Image.Image, request: GenerationRequest) -> None:
    if not request.references:
        return
    w, h = img.size
    thumb = max(8, min(h // 4, w // (len(request.references) + 1)))
    margin = max(2, thumb // 10)
    for k, ref in enumerate(request.references):
        with Image.open(io.BytesIO(ref.data)) as src:
            tile = src.convert("RGB")
            tile.thumbnail((thumb, thumb), Image.Resampling.BILINEAR)
        x = margin + k * (thumb + margin)
        if x + tile.width > w:
            break
        img.paste(tile, (x, h - tile.height - margin))


def _draw_text(draw: ImageDraw.ImageDraw, request: GenerationRequest, index: int, w: int, h: int) -> None:
    if min(w, h) < 48:
        return
    size = max(8, min(w, h) // 24)
    font = ImageFont.load_default(size=size)
    chars = max(8, int(w / (size * 0.55)) - 2)
    header = f"assetbuild local - {w}x{h}" + (f" - {index + 1}/{request.count}" if request.count > 1 else "")
    lines = [header] + textwrap.wrap(request.prompt, chars)[: max(1, (h // 2) // (size + 4))]
    y = size // 2
    for line in lines:
        draw.text((size // 2 + 1, y + 1), line, fill=(0, 0, 0), font=font)
        draw.text((size // 2, y), line, fill=(255, 255, 255), font=font)
        y += size + 4
