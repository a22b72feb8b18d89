"""Helpers for the provider tests: providers aimed at an emulator, requests, reference images,
image sizes, and requests run on threads at once."""

from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

from assetbuild.store.imageinfo import inspect_image
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.base import (
    GenerationRequest, GenerationResult, JobStore, MemoryJobStore, Provider, ReferenceImage,
)
from tests.fakes.server import make_jpeg, make_png


class ProviderMaker:
    """Makes providers of one class aimed at an emulator, each standing for a new build
    process, and closes every one it made."""

    def __init__(self, cls: Any, name: str, base_url: str, env: Mapping[str, str], clock: Any):
        self._cls, self._name, self._base_url, self._env, self._clock = cls, name, base_url, env, clock
        self._made: list[Any] = []

    def __call__(self, env: Mapping[str, str] | None = None, **config: Any) -> Any:
        cfg = ProviderConfig(type=self._cls.type, base_url=self._base_url, **config)
        self._made.append(self._cls(self._name, cfg, env=self._env if env is None else env, clock=self._clock))
        return self._made[-1]

    def close(self) -> None:
        for provider in self._made:
            provider.close()


def request(**overrides: Any) -> GenerationRequest:
    """A 1280x720 text-to-image request for Seedream 4.0."""
    fields: dict[str, Any] = dict(asset_id="hero", fingerprint="fp-hero", prompt="A fox on a hill",
                                  model="seedream-4.0", width=1280, height=720, size="1280x720")
    fields.update(overrides)
    return GenerationRequest(**fields)


def png_ref(width: int = 64, height: int = 48, label: str = "brand/palette.png") -> ReferenceImage:
    return ReferenceImage(label, make_png(width, height), "image/png", width, height)


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
