"""Apiframe (v2): Seedream as asynchronous jobs behind ``X-API-Key`` (providers.md §4).

``POST /v2/images/generate`` answers 202 ``{jobId, status}``; ``GET /v2/jobs/{id}`` is polled
until ``COMPLETED`` | ``FAILED`` | ``CANCELLED`` (UPPERCASE, §4.3). What is sent (§4.2): ``model``
(the models table's id), ``prompt`` and ``seedreamParams`` with the size, ``seed`` when given,
and references as an ``image_input`` ARRAY of URLs made by ``POST /v2/uploads`` (the field is a
JSON-schema ``uri``; data URIs are unconfirmed, §7.5).

The size: Apiframe's current model pages (docs-v2.apiframe.ai, Seedream 4.5 and 5 Lite, read
2026-12-06) say ``width`` / ``height`` (1024–4096) are "only used when size is 'custom'", and
otherwise ``size`` (2K | 4K; 5 Lite 2K | 3K) with ``aspect_ratio``. So exact pixels go as
``size: "custom"`` + ``width`` / ``height`` when both sides are within 1024–4096 and the model
has a custom size (4.x); anything else goes as the nearest tier + ratio, and then the image is
checked for its ratio only. Seed 002's single-string ``image_input`` is the older quick-start
example of the marketing page; the OpenAPI file and every current model page type it
``string[]`` (up to 14), so an array is sent.
Every key is checked by the host (``additionalProperties: false``), so nothing else is sent;
``params`` are merged into the body, nested tables into nested objects.

Seedream on Apiframe has no batch field (§4.2): ``count = N`` is N jobs, each submitted with its
own ``Idempotency-Key`` derived from the request fingerprint (§4.1). A retried or rerun submit
within 24 h therefore replays the original job instead of paying again, which is why submits
are retried like GETs here; and a count = 3 whose third submit fails (say with 402) loses
nothing: the rerun replays the first two jobs. A replay of a job that failed is not an answer:
the next key is derived from the failed job's id, so a rerun asks for a new job (and replays that
one later). A job that completed with an unusable image (corrupt at the CDN even when fetched
again) ends like on other hosts; the rerun derives that image's key from the job's id too, so it
gets a new job instead of replaying the unusable one.

Only ``COMPLETED``, ``FAILED`` and ``CANCELLED`` end a job (§4.3); any other status is taken as
still running (§7.11). The docs do not promise that ``width`` / ``height`` are honoured (§7.13):
an image of another size is kept, with a warning.

Apiframe has no watermark option (validate() says so), and its price is in credits that were not
retrieved (§4.5): $0.03 / $0.04, Seedream's list price, stand in (unconfirmed).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from ..errors import ProviderRequestError, ProviderUnavailable
from ._http import BadAnswer, HostError, default_error_parser
from ..spec.sizes import TABLE_RATIOS, nearest_ratio, nearest_tier
from ._remote import Job, JobState, RemoteProvider, dig
from .base import GenerationRequest

SUBMIT_PATH = "/v2/images/generate"
JOB_PATH = "/v2/jobs/{id}"
UPLOAD_PATH = "/v2/uploads"
CUSTOM_SIDE = (1024, 4096)  # width / height with size "custom" (docs-v2.apiframe.ai Seedream 4.5 page)
FAILED = ("FAILED", "CANCELLED")
# How many earlier failed jobs a submit steps past (one per failed run within the 24 h window).
MAX_REPLAYED_FAILURES = 10


def idempotency_key(model_id: str, fingerprint: str, index: int, after_job: str = "") -> str:
    """The ``Idempotency-Key`` of image ``index`` of a request (<= 255 chars, §4.1): the same on
    every retry and rerun, and a new one once ``after_job`` (the job it last named) failed."""
    digest = hashlib.sha256(f"{model_id}|{fingerprint}|{index}|{after_job}".encode()).hexdigest()
    return f"assetbuild-{digest}"


def parse_apiframe_error(status: int, body: Any, text: str) -> HostError:
    """``{"error": "...", "details": {"<json.path>": ["msg", ...]}}`` (§4.5), in plain words."""
    base = default_error_parser(status, body, text)
    if not isinstance(body, dict):
        return base
    if status == 402:
        need, have = body.get("creditsRequired"), body.get("creditsAvailable")
        counts = f" (the job needs {need} credits, the account has {have})" if need is not None else ""
        return HostError(base.code, f"not enough Apiframe credits{counts}; top up the account", False)
    details = body.get("details")
    if isinstance(details, dict) and details:
        parts = [f"{path}: {'; '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                 for path, msgs in details.items()]
        return HostError(base.code, f"{base.message}: {', '.join(parts)}", base.refused)
    return base


def result_urls(result: Any) -> list[str]:
    """Image URLs from a job's ``result``, which the OpenAPI file leaves untyped (§4.3,
    unconfirmed): a URL string, an array, or ``{images: [...]}``, items strings or ``{url}``."""
    if isinstance(result, dict):
        result = result.get("images", result.get("url"))
    items = result if isinstance(result, list) else [result]
    urls = [item.get("url") if isinstance(item, dict) else item for item in items]
    return [url for url in urls if isinstance(url, str) and url]


class ApiframeProvider(RemoteProvider):
    type = "apiframe"
    default_base_url = "https://api.apiframe.ai"
    default_key_env = "APIFRAME_API_KEY"
    # Ids, prices (credits of unknown USD value: stand-ins) and reference limits (14 image_input
    # URIs) are the models table's.
    # Each image is its own job, so references + 1 <= 15 always holds: no joint limit on count.
    max_refs_plus_outputs = 14 + 15
    max_prompt_chars = 2000
    # supports_watermark stays False: §4.2 has no watermark field.
    modeled_keys = ("model", "prompt", "seedreamParams.image_input", "seedreamParams.width",
                    "seedreamParams.height", "seedreamParams.seed", "seedreamParams.size",
                    "seedreamParams.aspect_ratio", "seedreamParams.output_format")
    error_parser = staticmethod(parse_apiframe_error)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"X-API-Key": key}  # Bearer is only for Apiframe's dashboard sessions (§4.1)

    def size_params(self, request: GenerationRequest) -> tuple[dict[str, Any], bool]:
        """``seedreamParams`` for the size, and whether they ask for exact pixels."""
        offer = self.offer(request.model)
        lo, hi = CUSTOM_SIDE
        custom = offer is None or not offer.keyword_tiers
        if custom and lo <= request.width <= hi and lo <= request.height <= hi:
            return {"size": "custom", "width": request.width, "height": request.height}, True
        return {"size": nearest_tier(request.model, request.width, request.height),
                "aspect_ratio": nearest_ratio(request.width, request.height, TABLE_RATIOS)}, False

    def exact_size(self, request: GenerationRequest) -> bool:
        return self.size_params(request)[1]

    def request_id(self, job: Job) -> str:
        return ",".join(_job_ids(job))

    # -- submit -----------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        """One job per image (§4.2: no batch field), all ids persisted together. ``ended``: the
        saved job this replaces, whose unusable image (``failed_output``) must not be replayed."""
        model_id = self.model_id(request.model)
        unusable: dict[int, str] = {}
        if ended is not None and isinstance(ended.get("failed_output"), int):
            old_ids = _job_ids(ended)
            if 0 <= ended["failed_output"] < len(old_ids):
                unusable[ended["failed_output"]] = old_ids[ended["failed_output"]]
        params: dict[str, Any] = dict(self.size_params(request)[0])
        if request.references:
            params["image_input"] = [self._upload(request, i) for i in range(len(request.references))]
        if request.seed is not None:
            params["seed"] = request.seed
        if request.output_format is not None:
            params["output_format"] = "jpg" if request.output_format == "jpeg" else request.output_format
        body = self.finish_body({"model": model_id, "prompt": request.prompt, "seedreamParams": params}, request)
        ids = [self._submit_one(body, model_id, request.fingerprint, i, unusable.get(i, ""))
               for i in range(request.count)]
        return {"id": ids[0], "ids": ids}

    def _submit_one(self, body: dict[str, Any], model_id: str, fingerprint: str, index: int, after: str) -> str:
        for _ in range(MAX_REPLAYED_FAILURES + 1):
            key = idempotency_key(model_id, fingerprint, index, after)
            # Retried like a GET: the key makes the host replay the job, never bill it twice (§4.1).
            reply = self.http.request_object("POST", SUBMIT_PATH, json=body, headers={"Idempotency-Key": key},
                                             idempotent=True, billable=True)
            job_id = self.found(reply.get("jobId"), f"POST {SUBMIT_PATH} returned no jobId", submitted=True)
            if reply.get("status") not in FAILED:
                return job_id
            after = job_id  # a replay of an earlier run's failed job: ask for a new one
        raise ProviderUnavailable(
            f"the last {MAX_REPLAYED_FAILURES} Apiframe jobs for this image failed; see them in the "
            "Apiframe dashboard, or change the asset", provider=self.name)

    def _upload(self, request: GenerationRequest, index: int) -> str:
        """A reference as a URL Apiframe can fetch, through ``POST /v2/uploads``. §4.1 lists the
        endpoint without its schema (unconfirmed): multipart field ``file`` is sent, and the URL
        is read from ``url`` or ``data.url``."""
        ref = request.references[index]
        files = {"file": (f"reference-{index + 1}.{ref.format}", ref.data, ref.media_type)}
        reply = self.http.request_object("POST", UPLOAD_PATH, files=files, billable=False)  # no job, no cost
        return self.found(reply.get("url") or dig(reply, "data", "url"),
                          f"POST {UPLOAD_PATH} returned no URL for reference {ref.label}")

    # -- wait -------------------------------------------------------------------------------

    def wait(self, job: Job) -> JobState:
        """Every image's job polled to its end: the images that came, and the first failure."""
        states = [self.poll(functools.partial(self.fetch, job_id), job_id=job_id) for job_id in _job_ids(job)]
        return JobState(outputs=tuple(url for state in states for url in state.outputs),
                        error=next((state.error for state in states if state.error is not None), None))

    def fetch(self, job_id: str) -> JobState:
        """A job's state: running, its image URL (one image per job), or why it has none."""
        state = self.http.request_object("GET", JOB_PATH.format(id=job_id))
        status = state.get("status")
        if status in FAILED:
            return JobState(error=self.failed_job(job_id, state.get("error") or status.lower(), status))
        if status != "COMPLETED":
            return JobState(running=True)  # QUEUED, PROCESSING, or a status not documented (§7.11)
        if state.get("expired"):
            return JobState(error=ProviderRequestError(
                f"job {job_id}'s images were purged (kept 24 h); a rerun makes new ones",
                provider=self.name, code="expired"))
        urls = result_urls(state.get("result"))
        if not urls:
            return JobState(error=BadAnswer(f"job {job_id} ended {status} without an image", provider=self.name))
        return JobState(outputs=(urls[0],))


def _job_ids(job: Job) -> list[str]:
    """The persisted job's ids, one per image (``id`` alone for a job persisted by hand)."""
    return [str(job_id) for job_id in job.get("ids") or [job["id"]]]


__all__ = ["ApiframeProvider", "idempotency_key", "parse_apiframe_error", "result_urls"]
