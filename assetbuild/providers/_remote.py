"""The base of every remote (Seedream host) provider: key lookup, the shared HTTP client,
model ids and prices with config overrides, the host's reference limits checked before
anything is sent, and the submit-or-resume / poll loop of asynchronous hosts.

A host module subclasses :class:`RemoteProvider`, fills in the class attributes and writes
``generate`` (plus ``error_parser`` / ``auth_headers`` where its protocol differs).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import httpx

from ..clock import Clock, SystemClock
from ..errors import ProviderUnavailable, UserError
from ..models import ProviderConfig
from ._http import ErrorParser, HttpClient, RateLimiter, default_error_parser, require_key
from .base import GenerationRequest, JobStore

T = TypeVar("T")

POLL_BACKOFF = 1.5
POLL_MAX_INTERVAL_S = 10.0


class RemoteProvider:
    type: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    default_key_env: ClassVar[str] = ""
    model_ids: ClassVar[dict[str, str]] = {}  # canonical model -> host model id
    prices: ClassVar[dict[str, float]] = {}  # canonical model -> USD per image (providers.md defaults)
    max_references: ClassVar[dict[str, int]] = {"seedream-4.0": 14, "seedream-4.5": 14}
    max_refs_plus_outputs: ClassVar[int] = 15
    max_count: ClassVar[int] = 15  # outputs from one request
    max_reference_bytes: ClassVar[int] = 10 * 1024 * 1024
    max_reference_pixels: ClassVar[int] = 36_000_000
    min_reference_side: ClassVar[int] = 15  # "> 14 px"
    reference_ratio: ClassVar[tuple[float, float]] = (1 / 16, 16)
    reference_media_types: ClassVar[tuple[str, ...]] = (
        "image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif",
    )
    error_parser: ClassVar[ErrorParser] = staticmethod(default_error_parser)  # type: ignore[assignment]

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.name = name
        self.config = config
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self.key_env = config.api_key_env or self.default_key_env
        self._env = os.environ if env is None else env
        self._clock = clock or SystemClock()
        self._transport = transport
        self._limiter = RateLimiter(config.concurrency, config.requests_per_minute, self._clock)
        self._http: HttpClient | None = None
        self._http_lock = threading.Lock()

    # -- configuration ----------------------------------------------------------------------

    @property
    def key_is_set(self) -> bool:
        return bool(self._env.get(self.key_env))

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def http(self) -> HttpClient:
        """The client, made on first use (so plan/check never need a key)."""
        with self._http_lock:
            if self._http is None:
                key = require_key(self._env, self.key_env, self.name)
                self._http = HttpClient(
                    provider=self.name,
                    base_url=self.base_url,
                    headers=self.auth_headers(key),
                    secret=key,
                    timeout_s=self.config.timeout_s,
                    max_attempts=self.config.max_attempts,
                    limiter=self._limiter,
                    clock=self._clock,
                    transport=self._transport,
                    error_parser=type(self).error_parser,
                )
            return self._http

    def model_id(self, model: str) -> str:
        if model in self.config.model_ids:
            return self.config.model_ids[model]
        try:
            return self.model_ids[model]
        except KeyError:
            raise UserError(
                f"provider {self.name} ({self.type}) has no model {model!r}; "
                f"it offers {', '.join(sorted(self.model_ids))}"
            ) from None

    def price_per_image(self, model: str) -> float:
        price = self.config.price_per_image
        if isinstance(price, (int, float)):
            return float(price)
        if isinstance(price, dict) and model in price:
            return float(price[model])
        return self.prices.get(model, 0.0)

    # -- limits -----------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        """The host's documented limits, checked before any request (providers.md)."""
        self.model_id(request.model)
        where = f"asset {request.asset_id}: provider {self.name} ({self.type})"
        refs = request.references
        limit = self.max_references.get(request.model, 14)
        if len(refs) > limit:
            raise UserError(f"{where} accepts at most {limit} reference images; this asset has {len(refs)}")
        if request.count > self.max_count:
            raise UserError(f"{where} makes at most {self.max_count} images per request; count is {request.count}")
        if refs and len(refs) + request.count > self.max_refs_plus_outputs:
            raise UserError(
                f"{where} allows references + outputs <= {self.max_refs_plus_outputs}; "
                f"this asset has {len(refs)} + {request.count}"
            )
        lo, hi = self.reference_ratio
        for ref in refs:
            if ref.media_type not in self.reference_media_types:
                raise UserError(f"{where} does not accept {ref.media_type} references ({ref.label})")
            if len(ref.data) > self.max_reference_bytes:
                raise UserError(
                    f"{where} accepts references up to {self.max_reference_bytes // (1024 * 1024)} MB; "
                    f"{ref.label} is {len(ref.data) / (1024 * 1024):.1f} MB"
                )
            if ref.width * ref.height > self.max_reference_pixels:
                raise UserError(f"{where}: reference {ref.label} has more than {self.max_reference_pixels} pixels")
            if min(ref.width, ref.height) < self.min_reference_side:
                raise UserError(f"{where}: reference {ref.label} must be at least {self.min_reference_side} px a side")
            ratio = ref.width / ref.height
            if not lo <= ratio <= hi:
                raise UserError(f"{where}: reference {ref.label} aspect ratio {ratio:.2f} is outside [{lo:.3g}, {hi:.3g}]")

    # -- asynchronous jobs ------------------------------------------------------------------

    def job_key(self, request: GenerationRequest) -> str:
        """Where a submitted job's id is kept until its images are safely downloaded."""
        return f"{self.type}|{self.base_url}|{request.fingerprint}"

    def submit_or_resume(self, request: GenerationRequest, jobs: JobStore, submit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The persisted job for this request if one is in flight, else ``submit()``'s job
        (a dict with at least ``id``), persisted before any polling starts."""
        job = jobs.get(self.job_key(request))
        if job is not None:
            job["resumed"] = True
            return job
        job = submit()
        jobs.put(self.job_key(request), job)
        return job

    def poll(self, fetch: Callable[[], T], done: Callable[[T], bool], *, job_id: str) -> T:
        """Call ``fetch`` until ``done`` says so, backing off from ``poll_interval_s`` by x1.5
        to 10 s, within ``poll_timeout_s``. The job stays persisted if the deadline passes, so
        a rerun resumes it."""
        interval = self.config.poll_interval_s
        deadline = self._clock.monotonic() + self.config.poll_timeout_s
        while True:
            state = fetch()
            if done(state):
                return state
            if self._clock.monotonic() + interval > deadline:
                raise ProviderUnavailable(
                    f"job {job_id} still running after {self.config.poll_timeout_s:.0f} s; "
                    "rerun the build to pick up its result without paying again",
                    provider=self.name,
                )
            self._clock.sleep(interval)
            interval = min(interval * POLL_BACKOFF, POLL_MAX_INTERVAL_S)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
