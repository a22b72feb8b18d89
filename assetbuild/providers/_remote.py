"""The base of every remote (Seedream host) provider: key lookup, the shared HTTP client,
model ids, prices and limits from the models table (``spec/catalog.py``, one row per model on
this host) with config overrides, the ``params`` rules checked before anything is sent, the
request fields a model refuses left out of every body (:meth:`RemoteProvider.finish_body`), and :meth:`RemoteProvider.generate`, the one way every
host makes images: validate → submit (or resume the saved job) → poll → download.

A host module subclasses :class:`RemoteProvider`, fills in the class attributes and writes only
what is its own: ``submit(request, ended) -> job`` (the request body, reference uploads, the
POST; the job a dict with at least ``id``, saved before any waiting) and ``fetch(job_id) ->
JobState`` (one poll, read in common terms), plus ``wait`` where one job is polled in several
steps, ``error_parser`` / ``auth_headers`` where its protocol differs, and ``deliver`` where its
answer carries the images itself (Ark, synchronous). How an error is classed is
``_http.classify_error``'s, for every host.

A saved job is never forgotten here once it reached its end: ``generate`` hands its key back
(``job_key`` on the result, or on the error with any images) and the executor forgets it only
after caching the images, so a kill in between resumes the job instead of paying again. A job
that ended without usable images is marked ``ended`` in the store, so a rerun asks anew instead
of failing the same way forever, even if the executor never got to forget it. Outcomes a rerun
can resume (the poll deadline, a download failing in transit, Ctrl-C) keep the job as it was.
"""

from __future__ import annotations

import json as json_module
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar, Iterator, Mapping

import httpx

from ..clock import Clock, SystemClock
from ..errors import (
    AssetbuildError,
    Interrupted,
    ProviderError,
    ProviderRefused,
    ProviderRequestError,
    ProviderUnavailable,
    UserError,
)
from ..money import unit_price
from ..spec import catalog
from ..spec.catalog import Offer
from ..spec.models import ProviderConfig
from ._http import (
    BadAnswer,
    ErrorParser,
    HostError,
    HttpClient,
    RateLimiter,
    Where,
    check_image,
    classify_error,
    default_error_parser,
    host_error,
    one_line,
    pause,
    redact_text,
    require_key,
    secret_forms,
    size_report,
)
from .base import GenerationRequest, GenerationResult, JobStore, ReferenceImage, report_phase

POLL_BACKOFF = 1.5
POLL_MAX_INTERVAL_S = 10.0
DOWNLOAD_TRIES = 3  # fetches of a result that arrives corrupt before the job counts as failed
MAX_ERROR_CHARS = 1000
# Ark's current input limits (§1.3): a model only a config override names gets them.
REFERENCE_MEDIA_TYPES = catalog.ARK_MEDIA
REFERENCE_RATIO = catalog.ARK_RATIO
MAX_REFERENCES = 14

Job = dict[str, Any]


@dataclass(frozen=True)
class JobState:
    """A host's asynchronous job in common terms: still ``running``, or ended with the
    ``outputs`` it made (result URLs or data URLs) and, if it failed, its ``error``. Both can
    be set: some images made and a failure for the rest (Apiframe's job per image)."""

    running: bool = False
    outputs: tuple[str, ...] = ()
    error: ProviderError | None = None


def ends_job(exc: ProviderError) -> bool:
    """Whether a result download's failure ends its job: an answer that is not an image, a
    4xx (an expired URL), a refusal. Anything else (a connection that failed in transit,
    Ctrl-C) may come through next time, so the job stays saved for a rerun."""
    return isinstance(exc, (BadAnswer, ProviderRequestError, ProviderRefused))


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


def drop_paths(body: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """``body`` without the (dotted) ``paths``: the fields a model refuses on a host."""
    out = dict(body)
    for path in paths:
        head, _, rest = path.partition(".")
        if rest and isinstance(out.get(head), dict):
            out[head] = drop_paths(out[head], (rest,))
        elif not rest:
            out.pop(head, None)
    return out


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
    # Model ids, prices, reference limits and batch sizes are the models table's rows for this
    # type (catalog.offer); a model only a config override names gets Ark's limits.
    max_refs_plus_outputs: ClassVar[int] = 15
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
    # 5xx statuses the host documents as "the job was not started" (nothing billed): a billable
    # submit answered with one is retried. None by default: a 5xx may have started the job.
    unstarted_statuses: ClassVar[frozenset[int]] = frozenset()

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
        self._interrupted = threading.Event()
        self._limiter = RateLimiter(config.concurrency, config.requests_per_minute, self._clock, self._interrupted)
        self._http: HttpClient | None = None
        self._http_lock = threading.Lock()

    # -- configuration ----------------------------------------------------------------------

    @property
    def key_is_set(self) -> bool:
        """Whether the key's variable holds something; a value no HTTP header can carry is a
        UserError naming the variable (checked before a build sends anything)."""
        if not self._env.get(self.key_env, "").strip():
            return False
        require_key(self._env, self.key_env, self.name)
        return True

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
                    interrupted=self._interrupted,
                    unstarted_statuses=self.unstarted_statuses,
                    max_download_bytes=self.config.max_download_mb * 1024 * 1024,
                    download_deadline_s=self.config.download_deadline_s,
                )
            return self._http

    def offer(self, model: str) -> Offer | None:
        """This host's row of the models table for ``model`` (None: the host does not sell it)."""
        return catalog.offer(self.type, model)

    @property
    def models(self) -> tuple[str, ...]:
        """The canonical models this host sells, and any a config override names."""
        return tuple(dict.fromkeys([*(o.model for o in catalog.offers_of(self.type)), *self.config.model_ids]))

    def model_id(self, model: str) -> str:
        if model in self.config.model_ids:
            return self.config.model_ids[model]
        found = self.offer(model)
        if found is None:
            raise UserError(
                f"provider {self.name} ({self.type}) has no model {model!r}; "
                f"it offers {', '.join(sorted(self.models))}"
            )
        return found.id

    def price_per_image(self, model: str, pixels: int = 0, references: int = 0) -> float:
        """USD per image of ``model`` at ``pixels`` output pixels with ``references`` reference
        images: the config's ``price_per_image`` if set, else the table's rule."""
        price = self.config.price_per_image
        if isinstance(price, (int, float)):
            return float(price)
        if isinstance(price, dict) and model in price:
            return float(price[model])
        found = self.offer(model)
        return found.price.per_image(pixels, references) if found is not None else 0.0

    def price_rule(self, model: str) -> tuple[str, str]:
        """The price rule an asset of ``model`` gets here, and where it comes from."""
        price = self.config.price_per_image
        if isinstance(price, (int, float)) or (isinstance(price, dict) and model in price):
            value = price if isinstance(price, (int, float)) else price[model]  # type: ignore[index]
            return f"{unit_price(float(value))}/image", f"[providers.{self.name}] price_per_image"
        found = self.offer(model)
        if found is None:
            return "$0/image", "no price known for this model on this host"
        return found.price.rule(), found.price.source

    def request_price(self, request: GenerationRequest) -> float:
        return self.price_per_image(request.model, request.width * request.height, len(request.references))

    @property
    def max_count(self) -> int:
        """Outputs one request may ask for, over the models this host sells."""
        return max((o.max_count for o in catalog.offers_of(self.type)), default=15)

    def finish_body(self, body: dict[str, Any], request: GenerationRequest) -> dict[str, Any]:
        """``body`` with ``params`` merged in and without the fields the model refuses on this
        host (the table's ``refuses``: Seedream 5.0 Pro answers 400 to any sequential field)."""
        merged = merge_params(body, request.params)
        found = self.offer(request.model)
        return drop_paths(merged, found.refuses) if found is not None else merged

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
        found = self.offer(request.model)
        limit = found.max_references if found is not None else MAX_REFERENCES
        if refs > limit:
            raise UserError(f"{where} accepts at most {limit} reference images for {request.model}; "
                            f"this asset has {refs}")
        max_count = found.max_count if found is not None else self.max_count
        if request.count > max_count:
            hint = '; set batch = "separate" for one request per image' if max_count == 1 else ""
            raise UserError(f"{where} makes at most {max_count} {'image' if max_count == 1 else 'images'} per "
                            f"request with {request.model}; "
                            f"count is {request.count}{hint}")
        if refs and refs + request.count > self.max_refs_plus_outputs:
            raise UserError(
                f"{where} allows references + outputs <= {self.max_refs_plus_outputs}; "
                f"this asset has {refs} + {request.count}"
            )

    def _check_reference(self, ref: ReferenceImage, model: str, where: str) -> None:
        found = self.offer(model)
        media_types = found.reference_media_types if found is not None else REFERENCE_MEDIA_TYPES
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
        lo, hi = found.reference_ratio if found is not None else REFERENCE_RATIO
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
        found = self.offer(request.model)
        if request.output_format is not None and found is not None and "output_format" not in found.takes:
            raise UserError(f"{where} has no output_format option for {request.model} (the models table); "
                            "remove output_format or use a host that takes it")
        if request.watermark and not self.supports_watermark:
            raise UserError(
                f"{where} has no watermark option; remove watermark = true or use a modelark / volcengine provider"
            )
        found = self.offer(request.model)
        refused = sorted(set(param_paths(request.params)) & set(found.refuses if found is not None else ()))
        if refused:
            raise UserError(f"{where}: {request.model} refuses {', '.join(refused)} on this host (the models "
                            "table, `assetbuild models`); remove it from params")
        clashes = sorted(set(param_paths(request.params)) & set(self.modeled_keys))
        if clashes:
            raise UserError(
                f"{where}: params may not set {', '.join(clashes)}; assetbuild sets them from the asset's "
                "prompt, model, size, count, references, seed, watermark and output_format"
            )

    # -- what a host writes ------------------------------------------------------------------

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        """Send ``request`` (uploading its references first where the host wants URLs) and
        return the host's job: a dict with at least ``id``. ``ended`` is the saved job this one
        replaces (its failure was reported already), if any."""
        raise NotImplementedError

    def fetch(self, job_id: str) -> JobState:
        """One poll of a job: still running, or ended with its outputs and any error."""
        raise NotImplementedError

    def wait(self, job: Job) -> JobState:
        """The job's final state: ``fetch`` polled until it ends."""
        job_id = str(job["id"])
        return self.poll(lambda: self.fetch(job_id), job_id=job_id)

    def result_model_id(self, request: GenerationRequest) -> str:
        """The host's id of what made the images, as the result reports it."""
        return self.model_id(request.model)

    def exact_size(self, request: GenerationRequest) -> bool:
        """Whether the host is asked for exact pixels, so an image of another size is kept with
        a warning (it was paid for); False where the host picks the pixels from a tier and a
        ratio, and then an image of another aspect ratio is kept with a warning."""
        return True

    def resumable(self, job: Job) -> bool:
        """Whether a saved job is one to resume rather than replace."""
        return not job.get("ended")

    def resume_job(self, job_id: str) -> Job | None:
        """A job known only by its host id (another machine's, named in a shared-cache lease),
        to resume instead of paying again; None where this host's job needs more than its id
        to be resumed (URLs of its own, a synchronous answer)."""
        if type(self).wait is not RemoteProvider.wait:
            return None
        job: Job = {"id": job_id}
        return job if self.resumable(job) else None

    # -- the one way every host makes images --------------------------------------------------

    def job_key(self, request: GenerationRequest) -> str:
        """Where a submitted job is kept until its images are safely downloaded."""
        return f"{self.type}|{self.base_url}|{request.fingerprint}"

    def request_id(self, job: Job) -> str:
        """The host's id of a job, as reported in results and errors."""
        return str(job["id"])

    def generate(self, request: GenerationRequest, jobs: JobStore) -> GenerationResult:
        """Validate (nothing is sent for a request outside the host's limits), submit the job or
        resume the saved one, wait for its end and :meth:`deliver` its images. Every error
        raised once the job is saved says ``submitted``."""
        self.validate(request)
        key = self.job_key(request)
        with self.reporting():
            job = self._start(request, jobs, key)
            report_phase("resumed" if job.get("resumed") else "submitted")
            try:
                job, state = self._settle(request, jobs, key, job)
            except ProviderError as exc:  # the poll deadline, a poll failing in transit, Ctrl-C
                exc.submitted = True
                raise
            except AssetbuildError:
                raise
            except Exception as exc:  # an answer a host module could not read: it will not get better
                raise self._ended(jobs, key, job, self._unreadable(exc)) from exc
            report_phase("downloading")
            result = self.deliver(request, jobs, key, job, state)
        # What the host named the job is stored (lock, cache index, journal): never the key.
        rid = result.request_id
        return result if rid is None else replace(result, request_id=one_line(self.redact(str(rid)), 200))

    def deliver(self, request: GenerationRequest, jobs: JobStore, key: str, job: Job,
                state: JobState) -> GenerationResult:
        """The ended job's images, downloaded at once (result URLs expire).

        An image of another size than asked is kept with a warning where the host was asked for
        exact pixels (:meth:`exact_size`). A failed job raises its error, and fewer images than
        ``request.count`` raise ProviderUnavailable, either carrying the images that did come
        and its ``job_key`` (see the module's docstring). The cost is the images the host
        returned times the price.
        """
        try:
            images, warnings = self._download(request, state.outputs[: request.count], self.exact_size(request))
        except ProviderError as exc:
            exc.submitted = True
            if ends_job(exc):  # the host made the images (and billed them): they will not come
                exc.billed_for(one_line(self.redact(self.request_id(job)), 100))
                raise self._ended(jobs, key, job, exc, failed_output=len(exc.images))
            raise  # in transit or interrupted: the job stays saved, a rerun fetches it again
        job_id = self.request_id(job)
        if state.error is not None:
            state.error.images = images
            raise self._ended(jobs, key, job, state.error)
        if len(images) < request.count:
            raise self._ended(jobs, key, job, ProviderUnavailable(
                f"job {job_id} made {len(images)} of the {request.count} images asked for",
                provider=self.name, images=images))
        return GenerationResult(
            images=images,
            model_id=self.result_model_id(request),
            request_id=job_id,
            cost_usd=len(state.outputs) * self.request_price(request),
            job_key=key,
            warnings=warnings,
        )

    def poll(self, fetch: Callable[[], JobState], *, job_id: str) -> JobState:
        """Call ``fetch`` until the job stops running, backing off from ``poll_interval_s`` by
        x1.5 to 10 s, within ``poll_timeout_s``. The job stays saved if the deadline passes or
        Ctrl-C stops the wait (at once, even mid-sleep), so a rerun resumes it."""
        interval = self.config.poll_interval_s
        deadline = self._clock.monotonic() + self.config.poll_timeout_s
        while True:
            self._check_interrupted(job_id)
            state = fetch()
            if not state.running:
                return state
            report_phase("polling")
            if self._clock.monotonic() + interval > deadline:
                raise ProviderUnavailable(
                    f"job {job_id} still running after {self.config.poll_timeout_s:g} s; "
                    "rerun the build to pick up its result without paying again",
                    provider=self.name, submitted=True,
                )
            pause(self._clock, self._interrupted, interval)
            interval = min(interval * POLL_BACKOFF, POLL_MAX_INTERVAL_S)

    def _start(self, request: GenerationRequest, jobs: JobStore, key: str) -> Job:
        """The saved job for this request if one is in flight, else a new ``submit``, saved
        before any polling or download starts (a synchronous host's answer too: it holds the
        result URLs of images already made and billed). A saved job marked ``ended`` (its
        failure was reported already) is replaced: ``submit`` gets it, to ask the host for a
        new one."""
        job = jobs.get(key)
        if job is not None and self.resumable(job):
            job["resumed"] = True
            return job
        job = self.stored(self.submit(request, job))
        jobs.put(key, job)
        return job

    def stored(self, job: Job) -> Job:
        """``job`` as it may be stored: every text in it through the redactor (a host may echo
        the key into a request id, a header or an error)."""
        text = json_module.dumps(job)
        clean = self.redact(text)
        return job if clean == text else json_module.loads(clean)

    def _settle(self, request: GenerationRequest, jobs: JobStore, key: str, job: Job) -> tuple[Job, JobState]:
        """The job and its final state. A resumed job the host no longer knows (HTTP 404:
        expired or purged) is dropped and the request submitted anew."""
        try:
            return job, self.wait(job)
        except ProviderRequestError as exc:
            if not (job.get("resumed") and exc.status == 404):
                raise
        jobs.delete(key)
        job = self._start(request, jobs, key)  # nothing saved now: a new submit, saved before the wait
        return job, self.wait(job)

    def _ended(self, jobs: JobStore, key: str, job: Job, error: ProviderError,
               failed_output: int | None = None) -> ProviderError:
        """``error`` for a job that ended without the images asked for: the job is marked
        ``ended`` (a rerun replaces it) and handed back for the executor to forget."""
        saved = {name: value for name, value in job.items() if name != "resumed"}
        saved["ended"] = "failed"
        if failed_output is not None:
            saved["failed_output"] = failed_output
        jobs.put(key, self.stored(saved))
        error.submitted = True
        error.job_key = key
        return error

    def _unreadable(self, exc: Exception) -> BadAnswer:
        text = one_line(self.redact(f"{type(exc).__name__}: {exc}"), 200)
        return BadAnswer(f"returned an answer assetbuild cannot read ({text})", provider=self.name, submitted=True)

    def _download(self, request: GenerationRequest, urls: tuple[str, ...],
                  exact_size: bool) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
        """Each result's bytes, checked to decode, and a warning for each of another size than
        asked (kept: it was paid for). An error carries the images fetched before it."""
        images: list[bytes] = []
        got: list[tuple[int, int]] = []
        for url in urls:
            try:
                data, info = self._fetch_image(url)
            except ProviderError as exc:
                exc.images = tuple(images)
                raise
            got.append((info.width, info.height))
            images.append(data)
        # Every host: another size (exact pixels asked) or another ratio (a tier + ratio asked).
        warning = size_report(request.width, request.height, got, exact_size)
        return tuple(images), (warning,) if warning else ()

    def _fetch_image(self, url: str) -> tuple[bytes, Any]:
        """One result, fetched again (it is a GET) while it arrives corrupt, up to
        ``DOWNLOAD_TRIES`` times in all; then BadAnswer."""
        for attempt in range(1, DOWNLOAD_TRIES + 1):
            data = self.http.download(url)
            try:
                return data, check_image(data, self.name)
            except BadAnswer:
                if attempt == DOWNLOAD_TRIES or url.startswith("data:"):
                    raise
        raise AssertionError("unreachable")

    def redact(self, text: str) -> str:
        """``text`` without the key, whether or not the HTTP client exists yet."""
        if self._http is not None:
            return self._http.redact(text)
        return redact_text(text, secret_forms(self._env.get(self.key_env, "")) if self.key_env else ())

    @contextmanager
    def reporting(self) -> Iterator[None]:
        """Every ProviderError leaves as one line without the key; anything else a host's odd
        answer set off (outside a job: a sync reply) becomes a BadAnswer, never a traceback."""
        try:
            yield
        except ProviderError as exc:
            message = one_line(self.redact(exc.detail), MAX_ERROR_CHARS)
            exc.detail = message
            prefix = f"{exc.provider}: " if exc.provider else ""
            exc.args = (f"{prefix}{message}{f' [{exc.code}]' if exc.code else ''}",)
            raise
        except AssetbuildError:
            raise
        except Exception as exc:
            raise self._unreadable(exc) from exc

    # -- what hosts report inside a successful response -------------------------------------

    def reported_error(self, what: str, err: HostError, where: Where = "job", status: Any = None) -> ProviderError:
        """The error for a failure a host reports inside a successful HTTP response: a failed
        job, or an error envelope (``where="envelope"``, with its numeric code as ``status``).
        Never retried; classed by :func:`classify_error`."""
        error = classify_error(err, where, status).error
        return error(f"{what} failed: {one_line(self.redact(err.message))}", provider=self.name, code=err.code)

    def failed_job(self, job_id: str, message: Any, code: str | None) -> ProviderError:
        """A failed job the host describes in words only (with maybe a code): a refusal when
        the words say so, else the host's trouble."""
        return self.reported_error(f"job {job_id}", host_error(200, code, message or "no reason given", ""))

    def found(self, value: Any, missing: str, *, submitted: bool = False) -> str:
        """``value`` (an id or a URL read from a host's reply) as text, or BadAnswer saying
        what is ``missing`` when it is absent, empty or not text. ``submitted``: the reply
        answered a billable submit, so the host may have made (and billed) a job anyway."""
        if isinstance(value, str) and value.strip() and len(value) <= 2048:
            return value
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
            return str(value)
        raise BadAnswer(missing, provider=self.name, submitted=submitted)

    def interrupt(self) -> None:
        """Ctrl-C: no new request starts, and a poll wait, a backoff or a rate-limit wait ends
        at once raising Interrupted; requests already sent end within their own timeouts."""
        self._interrupted.set()

    def _check_interrupted(self, job_id: str) -> None:
        if self._interrupted.is_set():
            raise Interrupted(f"job {job_id} is still running at the host; a rerun resumes it without paying again",
                              provider=self.name, submitted=True)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


__all__ = ["JobState", "RemoteProvider", "count_prompt", "dig", "drop_paths", "ends_job", "merge_params",
           "param_paths"]
