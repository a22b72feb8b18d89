"""evolink.ai: Seedream 4.0 / 4.5 as asynchronous tasks (providers.md §2).

``POST /v1/images/generations`` creates a task; ``GET /v1/tasks/{id}`` reports it until
``results[]`` holds the image URLs (valid 24 h). The size goes in the newer documented form
(§2.2 "newer revision"): an aspect ratio in ``size`` plus ``quality`` 1K|2K|4K, from which the
backend picks the pixels, so results are checked to decode, never for exact dimensions.
References must be URLs the host can fetch, so they are uploaded through evolink's file API
first (§2.1).

This module also holds the asynchronous-job loop Atlas Cloud shares (:func:`run_async_job`,
:class:`JobState`, :func:`count_prompt`, :func:`envelope_error`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..errors import ProviderError, ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from ._http import HostError, check_image, default_error_parser
from ._remote import RemoteProvider
from .base import GenerationRequest, GenerationResult, JobStore, ReferenceImage

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
QUALITY_PIXELS = {"1K": 1024 * 1024, "2K": 2048 * 2048, "4K": 4096 * 4096}
RUNNING_STATUSES = ("pending", "processing")
REFUSAL_CODE = "content_policy_violation"
# Failed-task codes (§2.4) that a resubmission would not fix; every other code is the host's trouble.
REQUEST_ERROR_CODES = frozenset({
    "invalid_parameters", "image_processing_error", "image_dimension_mismatch", "quota_exceeded", "request_cancelled",
})


# -- shared by the asynchronous hosts (evolink, Atlas Cloud) ---------------------------------


@dataclass(frozen=True)
class JobState:
    """A host's asynchronous job in common terms: still ``running``, failed (``error``), or
    finished with its ``outputs`` (result URLs or data URLs)."""

    running: bool
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


def envelope_error(provider: RemoteProvider, label: str, err: HostError, status: int | None) -> ProviderError:
    """The error for a failure a host reports inside a successful HTTP response, classed the
    way HttpClient classes HTTP statuses: a refusal, 429/5xx (unavailable; also the 5000-series
    codes of the WaveSpeed/Atlas envelope, §6.3), or a request error. Never retried."""
    message = f"{label} failed: {provider.http.redact(err.message)}"
    cls: type[ProviderError] = ProviderRequestError
    if err.refused:
        cls = ProviderRefused
    elif status is not None and (status == 429 or status // 100 == 5 or status // 1000 == 5):
        cls = ProviderUnavailable
    return cls(message, provider=provider.name, code=err.code)


def run_async_job(
    provider: RemoteProvider,
    request: GenerationRequest,
    jobs: JobStore,
    *,
    model_id: str,
    submit: Callable[[], str],
    fetch: Callable[[str], JobState],
    exact_size: bool,
) -> GenerationResult:
    """Submit the job (or resume the persisted one), poll it to the end, download its images at
    once and forget the job.

    ``submit`` sends the request and returns the host's job id; ``fetch`` reads a job. A failed
    job is forgotten (a rerun submits anew) and its error raised. With ``exact_size`` each image
    must be ``request.width`` x ``request.height``, else it must merely decode. Fewer images than
    ``request.count`` raise ProviderUnavailable carrying the ones that came.
    """
    job_id, state = _settle(provider, request, jobs, submit, fetch)
    if state.error is not None:
        jobs.delete(provider.job_key(request))
        raise state.error
    images = _download(provider, request, jobs, state.outputs[: request.count], exact_size)
    jobs.delete(provider.job_key(request))
    if len(images) < request.count:
        raise ProviderUnavailable(
            f"job {job_id} made {len(images)} of the {request.count} images asked for",
            provider=provider.name, images=images,
        )
    return GenerationResult(
        images=images,
        model_id=model_id,
        request_id=job_id,
        cost_usd=len(state.outputs) * provider.price_per_image(request.model),
    )


def _settle(
    provider: RemoteProvider,
    request: GenerationRequest,
    jobs: JobStore,
    submit: Callable[[], str],
    fetch: Callable[[str], JobState],
) -> tuple[str, JobState]:
    """The job's id and final state. A resumed job the host no longer knows (404: expired or
    purged) is dropped and the request submitted anew."""
    job = provider.submit_or_resume(request, jobs, lambda: {"id": submit()})
    job_id = str(job["id"])
    try:
        return job_id, provider.poll(lambda: fetch(job_id), lambda state: not state.running, job_id=job_id)
    except ProviderRequestError as exc:
        if job.get("resumed") and exc.status == 404:
            jobs.delete(provider.job_key(request))
            return _settle(provider, request, jobs, submit, fetch)
        raise


def _download(
    provider: RemoteProvider, request: GenerationRequest, jobs: JobStore, outputs: tuple[str, ...], exact_size: bool,
) -> tuple[bytes, ...]:
    """Each output's bytes, checked. A download that fails in transit (after the client's
    retries) keeps the job persisted, so a rerun fetches the same paid-for results again; an
    expired URL, a malformed data URL or a corrupt image will not get better, so the job is
    dropped."""
    width, height = (request.width, request.height) if exact_size else (None, None)
    images: list[bytes] = []
    for url in outputs:
        fetched = False
        try:
            data = provider.http.download(url)
            fetched = True
            check_image(data, provider.name, width=width, height=height)
        except ProviderError as exc:
            exc.images = tuple(images)
            in_transit = not fetched and isinstance(exc, ProviderUnavailable) and not url.startswith("data:")
            if not in_transit:
                jobs.delete(provider.job_key(request))
            raise
        images.append(data)
    return tuple(images)


# -- evolink -----------------------------------------------------------------------------


def parse_error(status: int, body: Any, text: str) -> HostError:
    """evolink's error envelopes. HTTP errors (§2.6) are ``{"error": {"code": <int>, "type",
    "message", "fallback_suggestion"}}`` where the int only repeats the HTTP status, so
    ``type`` is reported as the code; failed tasks (§2.4) are ``{"error": {"code": "<string>",
    "message"}}``; the file API answers ``{"success": false, "code", "msg"}``."""
    parsed = default_error_parser(status, body, text)
    if not isinstance(body, dict):
        return parsed
    err = body.get("error")
    if isinstance(err, dict):
        if isinstance(err.get("code"), int) and err.get("type"):
            parsed = parsed._replace(code=str(err["type"]))
        if err.get("fallback_suggestion"):
            parsed = parsed._replace(message=f"{parsed.message} ({err['fallback_suggestion']})")
        return parsed._replace(refused=parsed.refused or parsed.code == REFUSAL_CODE)
    if body.get("code") is not None and body.get("msg"):
        return parsed._replace(code=str(body["code"]))
    return parsed


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The documented ``size`` ratio closest to width:height (compared on a log scale, so 2:1
    and 1:2 are equally far from 1:1)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ASPECT_RATIOS, key=distance)


def quality_for(width: int, height: int, model: str) -> str:
    """The ``quality`` whose nominal pixel count (1024², 2048², 4096²) is nearest to width x
    height on a log scale; Seedream 4.5 has no 1K (§2.2)."""
    offered = [q for q in QUALITY_PIXELS if not (model == "seedream-4.5" and q == "1K")]
    pixels = width * height
    return min(offered, key=lambda q: abs(math.log(QUALITY_PIXELS[q] / pixels)))


class EvolinkProvider(RemoteProvider):
    type: ClassVar[str] = "evolink"
    default_base_url: ClassVar[str] = "https://api.evolink.ai"
    default_files_url: ClassVar[str] = "https://files-api.evolink.ai"
    default_key_env: ClassVar[str] = "EVOLINK_API_KEY"
    model_ids: ClassVar[dict[str, str]] = {"seedream-4.0": "doubao-seedream-4.0", "seedream-4.5": "doubao-seedream-4.5"}
    # evolink prices in credits (1.8 reserved per 4.0 image, 2 per 4.5 image, §2.6); their USD
    # value is unconfirmed, so Seedream's list price stands in.
    prices: ClassVar[dict[str, float]] = {"seedream-4.0": 0.03, "seedream-4.5": 0.04}
    max_references: ClassVar[dict[str, int]] = {"seedream-4.0": 10, "seedream-4.5": 14}
    max_prompt_chars: ClassVar[int] = 2000
    # Seedream 4.0's references are held to the older limits (§2.2); 4.5 takes the base class's.
    v40_reference_media_types: ClassVar[tuple[str, ...]] = ("image/jpeg", "image/png")
    v40_reference_ratio: ClassVar[tuple[float, float]] = (1 / 3, 3)
    error_parser = staticmethod(parse_error)

    @property
    def files_url(self) -> str:
        """The file API's base URL. Beside the default API it is files-api.evolink.ai (§2.1);
        any other ``base_url`` (a proxy, the emulator) is taken to serve the file API too, at
        the same host, since ProviderConfig has no field for a second URL."""
        return self.default_files_url if self.base_url == self.default_base_url else self.base_url

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        where = f"asset {request.asset_id}: provider {self.name} ({self.type})"
        if request.watermark:
            raise UserError(f"{where} documents no watermark option (providers.md §2.2); set watermark = false")
        prompt_chars = len(count_prompt(request.prompt, request.count))
        if prompt_chars > self.max_prompt_chars:
            raise UserError(
                f"{where} accepts prompts up to {self.max_prompt_chars} characters; this one is {prompt_chars}"
            )
        if request.model == "seedream-4.0":
            self._validate_v40_references(request, where)

    def _validate_v40_references(self, request: GenerationRequest, where: str) -> None:
        lo, hi = self.v40_reference_ratio
        for ref in request.references:
            if ref.media_type not in self.v40_reference_media_types:
                raise UserError(
                    f"{where} accepts only JPEG and PNG references for seedream-4.0; {ref.label} is {ref.media_type}"
                )
            ratio = ref.width / ref.height
            if not lo <= ratio <= hi:
                raise UserError(
                    f"{where}: reference {ref.label} aspect ratio {ratio:.2f} is outside [1/3, 3] (seedream-4.0)"
                )

    def generate(self, request: GenerationRequest, jobs: JobStore) -> GenerationResult:
        self.validate(request)
        model_id = self.model_id(request.model)
        return run_async_job(
            self, request, jobs,
            model_id=model_id,
            submit=lambda: self._submit(request, model_id),
            fetch=self._fetch,
            exact_size=False,
        )

    def request_body(self, request: GenerationRequest, model_id: str, image_urls: list[str]) -> dict[str, Any]:
        """The documented task body (§2.2, newer revision): ratio + quality, ``n`` images."""
        body: dict[str, Any] = {
            "model": model_id,
            "prompt": count_prompt(request.prompt, request.count),
            "size": nearest_aspect_ratio(request.width, request.height),
            "quality": quality_for(request.width, request.height, request.model),
            "n": request.count,
        }
        if image_urls:
            body["image_urls"] = image_urls
        if request.seed is not None:
            body["seed"] = request.seed  # not in evolink's Seedream docs (§2.2): the host may ignore it
        body.update(request.params)
        return body

    def _submit(self, request: GenerationRequest, model_id: str) -> str:
        image_urls = [self._upload(ref) for ref in request.references]
        task = self.http.request_json("POST", "/v1/images/generations",
                                      json=self.request_body(request, model_id, image_urls))
        if not isinstance(task, dict) or not task.get("id"):
            raise ProviderUnavailable("POST /v1/images/generations returned no task id", provider=self.name)
        return str(task["id"])

    def _upload(self, ref: ReferenceImage) -> str:
        """A URL evolink's servers can fetch the reference from (file API, kept 72 h, §2.1).
        The response shape is only known from an SDK: ``data.file_url``, ``data.url`` and a
        top-level ``url`` are all accepted."""
        label = "reference upload"
        body = self.http.request_json(
            "POST", f"{self.files_url}/api/v1/files/upload/base64",
            json={"base64_data": ref.data_url()},
            idempotent=True,  # an upload bills nothing: retrying it after a timeout is safe
        )
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{label} returned no JSON object", provider=self.name)
        if body.get("success") is False:
            code = body.get("code")
            raise envelope_error(self, f"{label} of {ref.label}", parse_error(200, body, ""),
                                 code if isinstance(code, int) else None)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        url = data.get("file_url") or data.get("url") or body.get("url")
        if not isinstance(url, str) or not url:
            raise ProviderUnavailable(f"{label} of {ref.label} returned no file URL", provider=self.name)
        return url

    def _fetch(self, task_id: str) -> JobState:
        task = self.http.request_json("GET", f"/v1/tasks/{task_id}")
        if not isinstance(task, dict):
            raise ProviderUnavailable(f"GET /v1/tasks/{task_id} returned no JSON object", provider=self.name)
        status = task.get("status")
        if status in RUNNING_STATUSES:
            return JobState(running=True)
        if status == "completed":
            return JobState(running=False, outputs=_result_urls(task))
        return JobState(running=False, error=self._task_error(task_id, task))

    def _task_error(self, task_id: str, task: dict[str, Any]) -> ProviderError:
        """A failed (or otherwise ended: ``cancelled`` is unconfirmed, §2.4) task's error."""
        err = parse_error(200, task, f"status {task.get('status')}")
        message = f"task {task_id} failed: {self.http.redact(err.message)}"
        cls: type[ProviderError] = ProviderUnavailable
        if err.refused:
            cls = ProviderRefused
        elif err.code in REQUEST_ERROR_CODES:
            cls = ProviderRequestError
        return cls(message, provider=self.name, code=err.code)


def _result_urls(task: dict[str, Any]) -> tuple[str, ...]:
    """``results[]`` (URL strings) per the task doc; ``result_data[].image_url`` appears only in
    EvoLink's MCP reference (§2.4, unconfirmed) and is read when ``results`` is absent."""
    results = task.get("results")
    if isinstance(results, list):
        return tuple(str(url) for url in results if url)
    items = task.get("result_data")
    if isinstance(items, list):
        return tuple(str(item["image_url"]) for item in items if isinstance(item, dict) and item.get("image_url"))
    return ()


__all__ = [
    "EvolinkProvider",
    "JobState",
    "count_prompt",
    "envelope_error",
    "nearest_aspect_ratio",
    "parse_error",
    "quality_for",
    "run_async_job",
]
