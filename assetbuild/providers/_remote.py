"""The base of every remote (Seedream host) provider: key lookup, the shared HTTP client,
model ids and prices with config overrides, the host's documented limits and the ``params``
rules checked before anything is sent, and the one loop of the asynchronous hosts.

A host module subclasses :class:`RemoteProvider`, fills in the class attributes and writes
``generate`` (plus ``error_parser`` / ``auth_headers`` where its protocol differs). An
asynchronous host's ``generate`` hands :meth:`RemoteProvider.run_job` the two parts of its
protocol: ``submit() -> job`` (a dict with at least ``id``, persisted before any waiting) and
``wait(job) -> JobState`` (usually :meth:`RemoteProvider.polling` of a one-poll ``fetch``);
``run_job`` resumes, downloads, checks, prices and forgets the job the same way for every host.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import httpx

from ..clock import Clock, SystemClock
from ..errors import Interrupted, ProviderError, ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from ..models import ProviderConfig
from ._http import (
    ErrorParser,
    HostError,
    HttpClient,
    RateLimiter,
    check_image,
    default_error_parser,
    host_error,
    require_key,
)
from .base import CANONICAL_MODELS, GenerationRequest, GenerationResult, JobStore, ReferenceImage

POLL_BACKOFF = 1.5
POLL_MAX_INTERVAL_S = 10.0
# Ark's current input limits (§1.3), which every host passes on unless it documents its own.
REFERENCE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
REFERENCE_RATIO = (1 / 16, 16.0)
MAX_REFERENCES = 14
# Seedream's USD list price per image (third-party figures, §1.8): it stands in wherever a host's
# own price is unconfirmed.
LIST_PRICES = {"seedream-4.0": 0.03, "seedream-4.5": 0.04}

Job = dict[str, Any]


@dataclass(frozen=True)
class JobState:
    """A host's asynchronous job in common terms: still ``running``, or ended with the
    ``outputs`` it made (result URLs or data URLs) and, if it failed, its ``error``. Both can
    be set: some images made and a failure for the rest (Apiframe's job per image)."""

    running: bool = False
    outputs: tuple[str, ...] = ()
    error: ProviderError | None = None


def count_prompt(prompt: str, count: int) -> str:
    """The prompt, saying how many images to make when ``count`` > 1.

    Seedream's batch mode takes the number of images from the prompt and the host's batch
    field only caps it: evolink says so (§2.2, "you must ALSO say so in the prompt") and Ark's
    batch example does it (§1.2), so "Generate N different images." is appended.
    """
    if count == 1:
        return prompt
    text = prompt.rstrip()
    if not text.endswith((".", "!", "?")):
        text += "."
    return f"{text} Generate {count} different images."


def merge_params(body: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``params`` merged in: a table in ``params`` merges into the object of the
    same name (Apiframe ``seedreamParams``, Replicate ``input``), anything else replaces."""
    merged = dict(body)
    for key, value in params.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = merge_params(current, value)
        else:
            merged[key] = value
    return merged


def param_paths(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every key in ``params``, nested tables included."""
    paths: list[str] = []
    for key, value in params.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(param_paths(value, f"{path}."))
    return paths


def dig(value: Any, *keys: str) -> Any:
    """``value[key1][key2]...`` through nested JSON objects, or None where one is missing."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _ratio_text(bound: float) -> str:
    """A ratio bound as the docs write it: 1/16, 1/3, 3, 16."""
    return f"1/{1 / bound:g}" if bound < 1 else f"{bound:g}"


def _type_names(media_types: tuple[str, ...]) -> str:
    """Media types in words: JPEG and PNG; JPEG, PNG, WEBP and GIF."""
    names = [media_type.split("/", 1)[1].upper() for media_type in media_types]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class RemoteProvider:
    type: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    default_key_env: ClassVar[str] = ""
    model_ids: ClassVar[dict[str, str]] = {}  # canonical model -> host model id
    prices: ClassVar[dict[str, float]] = {}  # canonical model -> USD per image (providers.md defaults)
    # Reference limits per canonical model; a model only a config override names gets Ark's.
    max_references: ClassVar[dict[str, int]] = {model: MAX_REFERENCES for model in CANONICAL_MODELS}
    reference_media_types: ClassVar[dict[str, tuple[str, ...]]] = {
        model: REFERENCE_MEDIA_TYPES for model in CANONICAL_MODELS
    }
    reference_ratio: ClassVar[dict[str, tuple[float, float]]] = {model: REFERENCE_RATIO for model in CANONICAL_MODELS}
    max_refs_plus_outputs: ClassVar[int] = 15
    max_count: ClassVar[int] = 15  # outputs from one request
    max_reference_bytes: ClassVar[int] = 10 * 1024 * 1024
    max_reference_pixels: ClassVar[int] = 36_000_000
    min_reference_side: ClassVar[int] = 15  # "> 14 px"
    max_prompt_chars: ClassVar[int | None] = None  # of the prompt as sent (prompt_text)
    default_timeout_s: ClassVar[float] = 180.0  # one HTTP request, unless the config sets timeout_s
    # The host takes the number of a batch's images from the prompt (count_prompt).
    prompt_says_count: ClassVar[bool] = False
    supports_watermark: ClassVar[bool] = False  # only Ark documents a watermark option
    # Body keys (dotted paths) assetbuild sets from the request; ``params`` may not set them.
    modeled_keys: ClassVar[tuple[str, ...]] = ()
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
        self._interrupted = threading.Event()

    # -- configuration ----------------------------------------------------------------------

    @property
    def key_is_set(self) -> bool:
        return bool(self._env.get(self.key_env))

    @property
    def timeout_s(self) -> float:
        """One HTTP request's timeout: the config's ``timeout_s``, else this type's default."""
        return self.default_timeout_s if self.config.timeout_s is None else self.config.timeout_s

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
                    timeout_s=self.timeout_s,
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

    def prompt_text(self, request: GenerationRequest) -> str:
        """The prompt as sent to the host."""
        return count_prompt(request.prompt, request.count) if self.prompt_says_count else request.prompt

    # -- limits -----------------------------------------------------------------------------

    def where(self, request: GenerationRequest) -> str:
        """How a limit's message starts: the asset, and this provider."""
        return f"asset {request.asset_id}: provider {self.name} ({self.type})"

    def validate(self, request: GenerationRequest) -> None:
        """The host's documented limits and the ``params`` rules, checked before any request
        (providers.md)."""
        self.model_id(request.model)
        where = self.where(request)
        self._check_counts(request, where)
        for ref in request.references:
            self._check_reference(ref, request.model, where)
        self._check_prompt(request, where)
        self._check_options(request, where)

    def _check_counts(self, request: GenerationRequest, where: str) -> None:
        refs = len(request.references)
        limit = self.max_references.get(request.model, MAX_REFERENCES)
        if refs > limit:
            raise UserError(f"{where} accepts at most {limit} reference images; this asset has {refs}")
        if request.count > self.max_count:
            raise UserError(f"{where} makes at most {self.max_count} images per request; count is {request.count}")
        if refs and refs + request.count > self.max_refs_plus_outputs:
            raise UserError(
                f"{where} allows references + outputs <= {self.max_refs_plus_outputs}; "
                f"this asset has {refs} + {request.count}"
            )

    def _check_reference(self, ref: ReferenceImage, model: str, where: str) -> None:
        media_types = self.reference_media_types.get(model, REFERENCE_MEDIA_TYPES)
        if ref.media_type not in media_types:
            raise UserError(
                f"{where} accepts only {_type_names(media_types)} references for {model}; "
                f"{ref.label} is {ref.media_type}"
            )
        if len(ref.data) > self.max_reference_bytes:
            raise UserError(
                f"{where} accepts references up to {self.max_reference_bytes // (1024 * 1024)} MB; "
                f"{ref.label} is {len(ref.data) / (1024 * 1024):.1f} MB"
            )
        if ref.width * ref.height > self.max_reference_pixels:
            raise UserError(f"{where}: reference {ref.label} has more than {self.max_reference_pixels} pixels")
        if min(ref.width, ref.height) < self.min_reference_side:
            raise UserError(f"{where}: reference {ref.label} must be at least {self.min_reference_side} px a side")
        lo, hi = self.reference_ratio.get(model, REFERENCE_RATIO)
        ratio = ref.width / ref.height
        if not lo <= ratio <= hi:
            raise UserError(
                f"{where}: reference {ref.label} aspect ratio {ratio:.2f} is outside "
                f"[{_ratio_text(lo)}, {_ratio_text(hi)}] for {model}"
            )

    def _check_prompt(self, request: GenerationRequest, where: str) -> None:
        if self.max_prompt_chars is None:
            return
        chars = len(self.prompt_text(request))
        if not 1 <= chars <= self.max_prompt_chars:
            raise UserError(f"{where} takes prompts of 1 to {self.max_prompt_chars} characters; this one has {chars}")

    def _check_options(self, request: GenerationRequest, where: str) -> None:
        """``watermark = true`` only where the host has the option; ``params`` only for what
        assetbuild does not set itself."""
        if request.watermark and not self.supports_watermark:
            raise UserError(
                f"{where} has no watermark option; remove watermark = true or use a modelark / volcengine provider"
            )
        clashes = sorted(set(param_paths(request.params)) & set(self.modeled_keys))
        if clashes:
            raise UserError(
                f"{where}: params may not set {', '.join(clashes)}; assetbuild sets them from the asset's "
                "prompt, model, size, count, references, seed and watermark"
            )

    # -- asynchronous jobs ------------------------------------------------------------------

    def job_key(self, request: GenerationRequest) -> str:
        """Where a submitted job is kept until its images are safely downloaded."""
        return f"{self.type}|{self.base_url}|{request.fingerprint}"

    def request_id(self, job: Job) -> str:
        """The host's id of a job, as reported in results and errors."""
        return str(job["id"])

    def run_job(
        self,
        request: GenerationRequest,
        jobs: JobStore,
        *,
        submit: Callable[[], Job],
        wait: Callable[[Job], JobState],
        model_id: str,
        exact_size: bool,
    ) -> GenerationResult:
        """Submit the job (or resume the persisted one), wait for its end, download its images
        at once (result URLs expire) and forget the job.

        With ``exact_size`` each image must be ``request.width`` x ``request.height``, else it
        must merely decode. A failed job raises its error, and fewer images than
        ``request.count`` raise ProviderUnavailable, either carrying the images that did come;
        a rerun then submits anew. The cost is the images the host returned times the price.
        """
        job, state = self._settle(request, jobs, submit, wait)
        job_id = self.request_id(job)
        images = self._download(request, jobs, state.outputs[: request.count], exact_size)
        jobs.delete(self.job_key(request))
        if state.error is not None:
            state.error.images = images
            raise state.error
        if len(images) < request.count:
            raise ProviderUnavailable(
                f"job {job_id} made {len(images)} of the {request.count} images asked for",
                provider=self.name, images=images,
            )
        return GenerationResult(
            images=images,
            model_id=model_id,
            request_id=job_id,
            cost_usd=len(state.outputs) * self.price_per_image(request.model),
        )

    def polling(self, fetch: Callable[[str], JobState]) -> Callable[[Job], JobState]:
        """A ``wait`` for :meth:`run_job` that polls ``fetch(job id)`` until the job ends."""
        return lambda job: self.poll(lambda: fetch(str(job["id"])), job_id=str(job["id"]))

    def poll(self, fetch: Callable[[], JobState], *, job_id: str) -> JobState:
        """Call ``fetch`` until the job stops running, backing off from ``poll_interval_s`` by
        x1.5 to 10 s, within ``poll_timeout_s``. The job stays persisted if the deadline
        passes, so a rerun resumes it."""
        interval = self.config.poll_interval_s
        deadline = self._clock.monotonic() + self.config.poll_timeout_s
        while True:
            self._check_interrupted(job_id)
            state = fetch()
            if not state.running:
                return state
            if self._clock.monotonic() + interval > deadline:
                raise ProviderUnavailable(
                    f"job {job_id} still running after {self.config.poll_timeout_s:.0f} s; "
                    "rerun the build to pick up its result without paying again",
                    provider=self.name,
                )
            self._clock.sleep(interval)
            interval = min(interval * POLL_BACKOFF, POLL_MAX_INTERVAL_S)

    def _settle(
        self, request: GenerationRequest, jobs: JobStore, submit: Callable[[], Job], wait: Callable[[Job], JobState],
    ) -> tuple[Job, JobState]:
        """The job and its final state. A resumed job the host no longer knows (HTTP 404:
        expired or purged) is dropped and the request submitted anew."""
        job = self._submit_or_resume(request, jobs, submit)
        try:
            return job, wait(job)
        except ProviderRequestError as exc:
            if not (job.get("resumed") and exc.status == 404):
                raise
        jobs.delete(self.job_key(request))
        job = self._submit_or_resume(request, jobs, submit)
        return job, wait(job)

    def _submit_or_resume(self, request: GenerationRequest, jobs: JobStore, submit: Callable[[], Job]) -> Job:
        """The persisted job for this request if one is in flight, else ``submit()``'s job,
        persisted before any polling starts."""
        job = jobs.get(self.job_key(request))
        if job is not None:
            job["resumed"] = True
            return job
        job = submit()
        jobs.put(self.job_key(request), job)
        return job

    def _download(
        self, request: GenerationRequest, jobs: JobStore, urls: tuple[str, ...], exact_size: bool,
    ) -> tuple[bytes, ...]:
        """Each result's bytes, checked. A download that fails in transit (after the client's
        retries) keeps the job persisted, so a rerun fetches the same paid-for results again;
        an expired URL, an over-size body, a malformed data URL or a corrupt (or wrong-size)
        image will not get better, so the job is dropped."""
        dims = {"width": request.width, "height": request.height} if exact_size else {}
        images: list[bytes] = []
        for url in urls:
            fetched = False
            try:
                data = self.http.download(url)
                fetched = True
                check_image(data, self.name, **dims)
            except ProviderError as exc:
                exc.images = tuple(images)
                in_transit = not fetched and isinstance(exc, ProviderUnavailable) and not url.startswith("data:")
                if not in_transit:
                    jobs.delete(self.job_key(request))
                raise
            images.append(data)
        return tuple(images)

    # -- what hosts report inside a successful response -------------------------------------

    def job_error(self, what: str, err: HostError, *, request_error: bool = False) -> ProviderError:
        """The error for a failure a host reports inside a successful HTTP response (a failed
        job, an error envelope); it is never retried. A refusal when ``err.refused``, a request
        error when resubmitting would not fix it (``request_error``), else the host's trouble."""
        cls: type[ProviderError] = ProviderUnavailable
        if err.refused:
            cls = ProviderRefused
        elif request_error:
            cls = ProviderRequestError
        return cls(f"{what} failed: {self.http.redact(err.message)}", provider=self.name, code=err.code)

    def failed_job(self, job_id: str, message: Any, code: str | None) -> ProviderError:
        """A failed job the host describes in words only (with maybe a code): a refusal when
        the words say so, else the host's trouble."""
        return self.job_error(f"job {job_id}", host_error(200, code, message or "no reason given", ""))

    def envelope_error(self, what: str, err: HostError, code: Any) -> ProviderError:
        """The error for an error envelope under HTTP 200, classed by its numeric ``code`` the
        way HttpClient classes HTTP statuses: 429 and 5xx are the host's trouble (so are the
        5000-series codes of the WaveSpeed/Atlas envelope, §6.3), any other code the request's."""
        trouble = isinstance(code, int) and (code == 429 or code // 100 == 5 or code // 1000 == 5)
        return self.job_error(what, err, request_error=not trouble)

    def found(self, value: Any, missing: str) -> str:
        """``value`` (an id or a URL read from a host's reply) as text, or ProviderUnavailable
        saying what is ``missing`` when it is absent or empty."""
        if value and isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        raise ProviderUnavailable(missing, provider=self.name)

    def interrupt(self) -> None:
        self._interrupted.set()

    def _check_interrupted(self, job_id: str) -> None:
        if self._interrupted.is_set():
            raise Interrupted(f"job {job_id} is still running at the host; a rerun resumes it without paying again",
                              provider=self.name, submitted=True)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


__all__ = ["LIST_PRICES", "JobState", "RemoteProvider", "count_prompt", "dig", "merge_params", "param_paths"]
