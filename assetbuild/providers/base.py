"""The provider seam: what the executor hands a provider and what it gets back.

A provider turns one canonical :class:`GenerationRequest` into images. Remote providers map
it onto their host's API (see ``shared/providers.md``); the ``local`` provider renders
placeholders offline. Providers never touch the manifest, the lock or the output files.
"""

from __future__ import annotations

import base64
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol

from ..spec.catalog import MODEL_NAMES

CANONICAL_MODELS = MODEL_NAMES  # the models table's (spec/catalog.py)
LOCAL_MODEL = "local"


@dataclass(frozen=True)
class ReferenceImage:
    """One input image: a file under the project or an upstream asset's output."""

    label: str  # what the user wrote: "brand/palette.png" or "@logo" (for messages only)
    data: bytes
    media_type: str  # "image/png" | "image/jpeg" | "image/webp" | ...
    width: int
    height: int

    @property
    def format(self) -> str:
        """Lower-case format name as used in data URLs: png, jpeg, webp, ..."""
        return self.media_type.split("/", 1)[1].lower()

    def data_url(self) -> str:
        b64 = base64.b64encode(self.data).decode("ascii")
        return f"data:image/{self.format};base64,{b64}"


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, in assetbuild's canonical terms."""

    asset_id: str
    fingerprint: str  # stable for the same inputs: the key for job persistence / idempotency
    prompt: str
    model: str  # canonical: "seedream-4.0" | "seedream-4.5" | "local"
    width: int  # resolved, validated pixels
    height: int
    size: str  # the size as written in the manifest ("2K", "16:9", "2048x2048"), for hosts that want keywords
    count: int = 1  # images wanted from this one request
    references: tuple[ReferenceImage, ...] = ()
    seed: int | None = None
    watermark: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    output_format: str | None = None  # "png" | "jpeg" where the host takes it (the models table); None: its default


@dataclass(frozen=True)
class GenerationResult:
    """What a provider made: exactly ``request.count`` decoded-and-checked images."""

    images: tuple[bytes, ...]
    model_id: str  # the host's model id that made them ("local" for the local provider)
    request_id: str | None = None
    cost_usd: float = 0.0
    # The saved job this result ends (async hosts): the executor forgets it only once the
    # images are in the cache, so a kill before that resumes the job instead of paying again.
    job_key: str | None = None
    # What the executor should tell the user about images kept as they came, e.g. one of
    # another size than asked: "asked 2048x2048, got 2048x1536" (it was paid for).
    warnings: tuple[str, ...] = ()


class JobStore(Protocol):
    """Persists in-flight jobs (and a synchronous host's answer until its images are
    downloaded), so a crash while polling or downloading resumes the job instead of paying for
    a new one. Keys are opaque strings chosen by the provider."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryJobStore:
    """A JobStore in memory (for library use and tests)."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._jobs.get(key)
        return dict(value) if value is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._jobs[key] = dict(value)

    def delete(self, key: str) -> None:
        self._jobs.pop(key, None)


class Provider(Protocol):
    """A configured image host."""

    name: str  # the configured name ([providers.NAME]) or the built-in type
    type: str  # local | modelark | volcengine | evolink | atlascloud | apiframe | fal | replicate
    key_env: str | None  # the environment variable holding its API key; None: it needs none
    base_url: str | None  # where its requests go; None: it sends none

    @property
    def key_is_set(self) -> bool:
        """Whether its key can be sent (always, for one that needs none); a value no HTTP
        header can carry is a UserError naming the variable."""
        ...

    @property
    def models(self) -> tuple[str, ...]:
        """The canonical models it offers."""
        ...

    def model_id(self, model: str) -> str:
        """The host's id for a canonical model; raises UserError if the host lacks it."""
        ...

    def price_per_image(self, model: str, pixels: int = 0, references: int = 0) -> float:
        """USD per generated image of ``model`` at ``pixels`` output pixels with ``references``
        reference images (the models table's rule; config ``price_per_image`` overrides)."""
        ...

    def price_rule(self, model: str) -> tuple[str, str]:
        """The price rule ``model`` gets here, in words, and where it comes from."""
        ...

    def validate(self, request: GenerationRequest) -> None:
        """Check the host's limits (reference count/bytes/pixels/ratio, refs + outputs <= 15)
        before anything is sent; raise UserError naming the host and the limit."""
        ...

    def generate(self, request: GenerationRequest, jobs: JobStore) -> GenerationResult:
        """Make the images, after ``validate`` (nothing is sent for a request outside the
        host's limits). Raises ProviderError (with any partial images attached). A job that
        ended is not deleted from ``jobs`` here: its key is returned (``job_key``) and the
        executor forgets it once the images are cached."""
        ...

    def interrupt(self) -> None:
        """Ctrl-C: start no new request and stop any wait at once (raising Interrupted);
        requests already sent finish within their own timeouts. Saved jobs stay saved."""
        ...

    def close(self) -> None: ...


_phases = threading.local()


def report_phase(phase: str) -> None:
    """Say where the request this thread runs stands: ``submitted`` (the host accepted the job,
    or ``resumed``: a saved one), ``polling`` (it is still running), ``downloading``. The
    executor listens (the live build display shows it); nobody listening, nothing happens."""
    listener = getattr(_phases, "listener", None)
    if listener is not None:
        listener(phase)


@contextmanager
def phases_to(listener: Callable[[str], None]) -> Iterator[None]:
    """Send this thread's :func:`report_phase` calls to ``listener`` for the block."""
    previous = getattr(_phases, "listener", None)
    _phases.listener = listener
    try:
        yield
    finally:
        _phases.listener = previous
