"""Apiframe (v2): Seedream as asynchronous jobs behind ``X-API-Key`` (providers.md §4).

``POST /v2/images/generate`` answers 202 ``{jobId, status}``; ``GET /v2/jobs/{id}`` is polled
until ``COMPLETED`` | ``FAILED`` | ``CANCELLED`` (UPPERCASE, §4.3). What is sent (§4.2): ``model``
(``seedream-4`` / ``seedream-4.5``), ``prompt`` and ``seedreamParams`` with exact ``width`` /
``height`` (512–4096 a side), ``seed`` when given, and references as ``image_input`` URLs made
by ``POST /v2/uploads`` (the field is a JSON-schema ``uri``; data URIs are unconfirmed, §7.5).
Every key is checked by the host (``additionalProperties: false``), so nothing else is sent;
``params`` are merged into the body, nested tables into nested objects.

Seedream on Apiframe has no batch field (§4.2): ``count = N`` is N jobs, each submitted with its
own ``Idempotency-Key`` derived from the request fingerprint (§4.1). A retried or rerun submit
within 24 h therefore replays the original job instead of paying again, which is why submits
are retried like GETs here; and a count = 3 whose third submit fails (say with 402) loses
nothing: the rerun replays the first two jobs. A replay of a job that failed is not an answer:
the next key is derived from the failed job's id, so a rerun asks for a new job (and replays that
one later). A job that completed with an unusable image (corrupt at the CDN) is dropped like on
other hosts, but its key still replays it for 24 h (a known limit: such reruns fail at no cost).

Apiframe has no watermark option (validate() says so), and its price is in credits that were not
retrieved (§4.5): $0.03 / $0.04, Seedream's list price, stand in (unconfirmed).

The first part of this module is what the three asynchronous hosts written alongside it
(apiframe, fal, replicate) share; it belongs in ``_remote.py`` and lives here until it moves.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

from ..errors import ProviderError, ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from ._http import HostError, check_image, default_error_parser
from ._remote import RemoteProvider
from .base import GenerationRequest, GenerationResult, JobStore

T = TypeVar("T")


# -- shared by the asynchronous hosts (to move to _remote.py) ---------------------------------


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


def _param_paths(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every key in ``params``, nested tables included."""
    paths: list[str] = []
    for key, value in params.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(_param_paths(value, f"{path}."))
    return paths


class AsyncRemoteProvider(RemoteProvider):
    """A host whose jobs are submitted, polled and then downloaded, with no watermark option."""

    # Body keys (dotted paths) assetbuild sets from the request; ``params`` may not set them.
    modeled_keys: ClassVar[tuple[str, ...]] = ()

    def where(self, request: GenerationRequest) -> str:
        return f"asset {request.asset_id}: provider {self.name} ({self.type})"

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        if request.watermark:
            raise UserError(
                f"{self.where(request)} has no watermark option; remove watermark = true "
                "or use a modelark / volcengine provider"
            )
        clashes = sorted(set(_param_paths(request.params)) & set(self.modeled_keys))
        if clashes:
            raise UserError(
                f"{self.where(request)}: params may not set {', '.join(clashes)}; assetbuild sets "
                "them from the asset's prompt, model, size, count, references and seed"
            )

    def run_job(self, request: GenerationRequest, jobs: JobStore, submit: Callable[[], dict[str, Any]],
                wait: Callable[[dict[str, Any]], T]) -> T:
        """The persisted job for ``request`` (or a new one from ``submit``), waited for. A
        resumed job the host no longer knows (HTTP 404) is dropped and submitted anew."""
        job = self.submit_or_resume(request, jobs, submit)
        try:
            return wait(job)
        except ProviderRequestError as exc:
            if not (job.get("resumed") and exc.status == 404):
                raise
        jobs.delete(self.job_key(request))
        return wait(self.submit_or_resume(request, jobs, submit))

    def failed_job(self, job_id: str, message: Any, code: str | None) -> ProviderError:
        """The error for a job the host reports as failed: a refusal when its words say so."""
        text = self.http.redact(str(message or "no reason given"))
        refused = default_error_parser(200, {"error": {"code": code, "message": text}}, text).refused
        kind = ProviderRefused if refused else ProviderUnavailable
        return kind(f"job {job_id} failed: {text}", provider=self.name, code=code)

    def collect(self, request: GenerationRequest, jobs: JobStore, urls: Sequence[str], *, model_id: str,
                request_id: str | None, exact_size: bool, failure: ProviderError | None = None) -> GenerationResult:
        """Download the results now (URLs expire) and check they decode (at the requested size
        when ``exact_size``); forget the job; return exactly ``count`` images or raise
        ``failure`` / a shortfall error carrying the images that did come back.

        A download that fails in transit (after the client's retries) keeps the job persisted,
        so a rerun fetches the same paid-for results again; an expired URL, an over-sized body or
        a corrupt image will not get better, so the job is dropped and a rerun submits anew."""
        key = self.job_key(request)
        dims = {"width": request.width, "height": request.height} if exact_size else {}
        images: list[bytes] = []
        for url in urls[: request.count]:
            fetched = False
            try:
                data = self.http.download(url)
                fetched = True
                check_image(data, self.name, **dims)
            except ProviderError as exc:
                exc.images = tuple(images)
                in_transit = not fetched and isinstance(exc, ProviderUnavailable) and not url.startswith("data:")
                if not in_transit:
                    jobs.delete(key)
                raise
            images.append(data)
        jobs.delete(key)
        if failure is not None:
            failure.images = tuple(images)
            raise failure
        if len(images) < request.count:
            raise ProviderUnavailable(
                f"got {len(images)} of {request.count} images (the rest did not come back)",
                provider=self.name, images=tuple(images),
            )
        return GenerationResult(
            images=tuple(images),
            model_id=model_id,
            request_id=request_id,
            cost_usd=len(urls) * self.price_per_image(request.model),
        )


# -- Apiframe ---------------------------------------------------------------------------------

SUBMIT_PATH = "/v2/images/generate"
JOB_PATH = "/v2/jobs/{id}"
UPLOAD_PATH = "/v2/uploads"
SIDE_RANGE = (512, 4096)  # seedreamParams.width / height (§4.2)
MAX_PROMPT_CHARS = 2000
RUNNING = ("QUEUED", "PROCESSING")
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


class ApiframeProvider(AsyncRemoteProvider):
    type = "apiframe"
    default_base_url = "https://api.apiframe.ai"
    default_key_env = "APIFRAME_API_KEY"
    model_ids = {"seedream-4.0": "seedream-4", "seedream-4.5": "seedream-4.5"}
    # Apiframe bills credits whose USD value was not retrieved (§4.5): Seedream's list price (unconfirmed).
    prices = {"seedream-4.0": 0.03, "seedream-4.5": 0.04}
    # The schema allows 14 image_input URIs; a third party cites 10 for Seedream 4 (§4.2).
    max_references = {"seedream-4.0": 14, "seedream-4.5": 14}
    # Each image is its own job, so references + 1 <= 15 always holds: no joint limit on count.
    max_refs_plus_outputs = 14 + RemoteProvider.max_count
    modeled_keys = ("model", "prompt", "seedreamParams.image_input", "seedreamParams.width",
                    "seedreamParams.height", "seedreamParams.seed")
    error_parser = staticmethod(parse_apiframe_error)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"X-API-Key": key}  # Bearer is only for Apiframe's dashboard sessions (§4.1)

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        lo, hi = SIDE_RANGE
        if not (lo <= request.width <= hi and lo <= request.height <= hi):
            raise UserError(
                f"{self.where(request)} makes {lo} to {hi} px a side; {request.width}x{request.height} "
                f"is outside that: choose a size within {hi}x{hi} or another provider"
            )
        if not 1 <= len(request.prompt) <= MAX_PROMPT_CHARS:
            raise UserError(f"{self.where(request)} takes prompts of 1 to {MAX_PROMPT_CHARS} characters; "
                            f"this one has {len(request.prompt)}")

    def generate(self, request: GenerationRequest, jobs: JobStore) -> GenerationResult:
        self.validate(request)
        model_id = self.model_id(request.model)
        states = self.run_job(request, jobs, lambda: self._submit_all(request, model_id), self._wait_all)
        urls: list[str] = []
        failure: ProviderError | None = None
        for state in states:
            found = self._outcome(state)
            if isinstance(found, str):
                urls.append(found)
            elif failure is None:
                failure = found
        return self.collect(request, jobs, urls, model_id=model_id, exact_size=True, failure=failure,
                            request_id=",".join(str(state.get("id")) for state in states))

    # -- submit -----------------------------------------------------------------------------

    def _submit_all(self, request: GenerationRequest, model_id: str) -> dict[str, Any]:
        """One job per image (§4.2: no batch field), all ids persisted together."""
        params: dict[str, Any] = {"width": request.width, "height": request.height}
        if request.references:
            params["image_input"] = [self._upload(request, i) for i in range(len(request.references))]
        if request.seed is not None:
            params["seed"] = request.seed
        body = merge_params({"model": model_id, "prompt": request.prompt, "seedreamParams": params},
                            request.params)
        ids = [self._submit_one(body, model_id, request.fingerprint, i) for i in range(request.count)]
        return {"id": ids[0], "ids": ids}

    def _submit_one(self, body: dict[str, Any], model_id: str, fingerprint: str, index: int) -> str:
        after = ""
        for _ in range(MAX_REPLAYED_FAILURES + 1):
            key = idempotency_key(model_id, fingerprint, index, after)
            reply = self.http.request_json("POST", SUBMIT_PATH, json=body, headers={"Idempotency-Key": key},
                                           idempotent=True)
            job_id = reply.get("jobId") if isinstance(reply, dict) else None
            if not isinstance(job_id, str) or not job_id:
                raise ProviderUnavailable(f"POST {SUBMIT_PATH} returned no jobId", provider=self.name)
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
        reply = self.http.request_json("POST", UPLOAD_PATH, files=files, idempotent=True)  # no job, no cost
        data = reply.get("data") if isinstance(reply, dict) else None
        url = reply.get("url") if isinstance(reply, dict) else None
        if not url and isinstance(data, dict):
            url = data.get("url")
        if not isinstance(url, str) or not url:
            raise ProviderUnavailable(f"POST {UPLOAD_PATH} returned no URL for reference {ref.label}",
                                      provider=self.name)
        return url

    # -- wait -------------------------------------------------------------------------------

    def _wait_all(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        ids = job.get("ids") or [job["id"]]
        return [self.poll(lambda: self._fetch(job_id), _finished, job_id=job_id) for job_id in ids]

    def _fetch(self, job_id: str) -> dict[str, Any]:
        state = self.http.request_json("GET", JOB_PATH.format(id=job_id))
        if not isinstance(state, dict):
            raise ProviderUnavailable(f"GET {JOB_PATH.format(id=job_id)} returned no job", provider=self.name)
        state.setdefault("id", job_id)
        return state

    def _outcome(self, state: dict[str, Any]) -> str | ProviderError:
        """A finished job's image URL, or why it has none."""
        job_id, status = str(state["id"]), state.get("status")
        if status in FAILED:
            return self.failed_job(job_id, state.get("error") or status.lower(), status)
        if state.get("expired"):
            return ProviderRequestError(f"job {job_id}'s images were purged (kept 24 h); a rerun makes new ones",
                                        provider=self.name, code="expired")
        urls = result_urls(state.get("result"))
        if status != "COMPLETED" or not urls:
            return ProviderUnavailable(f"job {job_id} ended {status} without an image", provider=self.name)
        return urls[0]  # one image per job


def _finished(state: dict[str, Any]) -> bool:
    return state.get("status") not in RUNNING


__all__ = ["ApiframeProvider", "AsyncRemoteProvider", "idempotency_key", "merge_params",
           "parse_apiframe_error", "result_urls"]
