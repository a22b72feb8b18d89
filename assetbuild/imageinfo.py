"""Reading image headers: format and pixel size of bytes, and checking a download decodes."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from .errors import AssetbuildError

_MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


class ImageDecodeError(AssetbuildError):
    """Bytes that are not a complete, supported image."""


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int


def inspect_image(data: bytes, *, verify: bool = False) -> ImageInfo:
    """Format and size of ``data``. With ``verify``, decode every pixel (catches truncation)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if verify:
                img.load()
            media_type = _MEDIA_TYPES.get(img.format or "")
            if media_type is None:
                raise ImageDecodeError(f"unsupported image format {img.format!r}")
            return ImageInfo(media_type, img.width, img.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"not a decodable image ({len(data)} bytes): {exc}") from exc


def as_png(data: bytes) -> bytes:
    """``data`` re-encoded as PNG (lossless) unless it already is PNG. Deterministic."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=6)
            return buf.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageDecodeError(f"cannot convert to PNG: {exc}") from exc
