"""Helpers for the provider tests: reference images, image sizes, and requests run on threads
at once."""

from __future__ import annotations

import threading
from typing import Sequence

from assetbuild.imageinfo import inspect_image
from assetbuild.providers.base import (
    GenerationRequest, GenerationResult, JobStore, MemoryJobStore, Provider, ReferenceImage,
)
from tests.fakes.server import make_jpeg, make_png


def reference(width: int, height: int, fmt: str = "png", label: str = "ref.png") -> ReferenceImage:
    """A reference image for a request."""
    data = make_png(width, height, (10, 120, 60)) if fmt == "png" else make_jpeg(width, height, (10, 120, 60))
    return ReferenceImage(label=label, data=data, media_type=f"image/{fmt}", width=width, height=height)


def dims(data: bytes) -> tuple[int, int]:
    """The width and height of an image (decoded in full)."""
    info = inspect_image(data, verify=True)
    return info.width, info.height


def sizes(result: GenerationResult) -> list[tuple[int, int]]:
    """The width and height of every image in a result."""
    return [dims(image) for image in result.images]


def generate_in_threads(provider: Provider, requests: Sequence[GenerationRequest],
                        jobs: JobStore | None = None) -> tuple[list[GenerationResult], list[BaseException]]:
    """Run ``provider.generate`` for every request at once, one thread each."""
    store = jobs or MemoryJobStore()
    results: list[GenerationResult] = []
    errors: list[BaseException] = []

    def run(request: GenerationRequest) -> None:
        try:
            results.append(provider.generate(request, store))
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors
