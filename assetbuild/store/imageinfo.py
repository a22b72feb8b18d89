"""Reading image headers: format and pixel size of bytes, and checking a download decodes."""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from dataclasses import dataclass
from typing import IO, Any

from ..errors import AssetbuildError

_MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


SUPPORTED_FORMATS = tuple(_MEDIA_TYPES)  # what a reference image may be
_OUTPUT_ONLY = {"ICO": "image/x-icon"}  # what a derived output may also be (a favicon)


# Full decodes at once in this process: a 2K image is 12 MB of pixels, and a build at -j 16
# would otherwise hold sixteen of them while checking downloads. Decoding is CPU work (Pillow
# lets go of the GIL), so more at once than there are cores only costs memory.
_DECODES = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))


def _decode_slot() -> threading.BoundedSemaphore:
    """One of the few slots for a full decode (the first use also has a whole process give
    freed images back to the OS: process.big_blocks_returned)."""
    from ..process import big_blocks_returned

    big_blocks_returned()
    return _DECODES


class ImageDecodeError(AssetbuildError):
    """Bytes that are not a complete, supported image."""


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int


def inspect_image(data: bytes, *, verify: bool = False) -> ImageInfo:
    """Format and size of ``data``. With ``verify``, decode every pixel (catches truncation)."""
    from PIL import Image, UnidentifiedImageError  # Pillow loads only when an image is read

    try:
        with Image.open(io.BytesIO(data)) as img:
            if verify:
                with _decode_slot():
                    img.load()
            media_type = _MEDIA_TYPES.get(img.format or "") or _OUTPUT_ONLY.get(img.format or "")
            if media_type is None:
                raise ImageDecodeError(f"unsupported image format {img.format!r}")
            return ImageInfo(media_type, img.width, img.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"not a decodable image ({len(data)} bytes): {_reason(exc)}") from exc


def as_png(data: bytes) -> bytes:
    """``data`` re-encoded as PNG (lossless) unless it already is PNG. Deterministic."""
    from PIL import Image, UnidentifiedImageError  # Pillow loads only when an image is read

    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return data
    try:
        with Image.open(io.BytesIO(data)) as img, _decode_slot():
            img.load()
            if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            buf = io.BytesIO()
            img.save(buf, format="PNG", compress_level=6)
            return buf.getvalue()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageDecodeError(f"cannot convert to PNG: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """Pillow's message without the repr of the file object it read (``<_io.BytesIO object at 0x...>``)."""
    from PIL import UnidentifiedImageError

    text = re.sub(r"\s*<[^<>]* at 0x[0-9A-Fa-f]+>", "", str(exc)).strip()
    if isinstance(exc, UnidentifiedImageError) or text == "cannot identify image file":
        return f"not {', '.join(SUPPORTED_FORMATS[:-1])} or {SUPPORTED_FORMATS[-1]}"
    return text or type(exc).__name__


@dataclass(frozen=True)
class ImageFacts:
    """What a file's header says, and whether every pixel decoded. Plain data, kept in the
    file-hash memo so an unchanged reference is never opened again."""

    format: str | None  # Pillow's name ("PNG", "JPEG", ...); None: not an image
    width: int = 0
    height: int = 0
    complete: bool | None = None  # None: not decoded (over the pixel limit, or not an image)
    problem: str = ""  # why it is not an image, or why the decode failed

    def to_json(self) -> list[Any]:
        return [self.format, self.width, self.height, self.complete, self.problem]

    @classmethod
    def from_json(cls, data: Any) -> "ImageFacts | None":
        if (isinstance(data, list) and len(data) == 5 and isinstance(data[0], (str, type(None)))
                and all(isinstance(v, int) and not isinstance(v, bool) for v in data[1:3])
                and isinstance(data[3], (bool, type(None))) and isinstance(data[4], str)):
            return cls(*data)
        return None


def examine(fh: IO[bytes], *, max_pixels: int) -> ImageFacts:
    """Facts of the image in the open file ``fh``. The header is read first; the pixels are
    decoded (to catch truncation) only when there are at most ``max_pixels`` of them, so a
    decompression bomb is never expanded."""
    from PIL import Image  # Pillow loads only when an image is read

    size = fh.seek(0, io.SEEK_END)
    fh.seek(0)
    with warnings.catch_warnings():  # Pillow warns (to stderr) about large or odd files; we judge them
        warnings.simplefilter("ignore")
        try:
            img = Image.open(fh)
        except Image.DecompressionBombError as exc:
            m = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
            return ImageFacts(None, problem=f"has {pixels}, more than can be opened safely "
                                            f"({2 * (Image.MAX_IMAGE_PIXELS or 0):,}); use a smaller image")
        except Exception as exc:  # Pillow raises many kinds of exception on hostile bytes
            fh.seek(0)
            fmt = _signature(fh.read(16))
            if fmt is not None:  # the right magic bytes, then nothing readable: cut short
                return ImageFacts(fmt, complete=False, problem="its header is cut short or damaged")
            why = f"{size:,} bytes: {_reason(exc)}" if size else "0 bytes"
            return ImageFacts(None, problem=f"is not an image ({why}); use a PNG, JPEG or WebP file")
        with img:
            fmt, width, height = img.format or "?", img.width, img.height
            if fmt not in _MEDIA_TYPES or width * height > max_pixels:
                return ImageFacts(fmt, width, height)
            try:
                with _decode_slot():
                    img.load()
            except Exception as exc:  # truncated or corrupt data: Pillow's kinds vary by format
                return ImageFacts(fmt, width, height, False, _reason(exc))
            return ImageFacts(fmt, width, height, True)


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _signature(head: bytes) -> str | None:
    """The format whose magic bytes ``head`` starts with, if any."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), None)
