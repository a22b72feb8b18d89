"""BytePlus ModelArk and Volcengine Ark: Seedream through Ark's synchronous image API.

One ``POST {base_url}/images/generations`` returns the finished images (providers.md §1):
there is no task id and nothing to poll, so nothing goes into the JobStore. The two platforms
speak the same protocol; they differ in base URL and model ids (§1.1, §1.2).

What is sent (§1.2): exact ``WxH`` pixels in ``size``; ``watermark: false`` unless asked (Ark
defaults it to true); a batch as ``sequential_image_generation: "auto"`` with
``sequential_image_generation_options.max_images = count`` and ``"disabled"`` for one image
(``max_images`` defaults to 15, so it is always set with ``auto``); references as data URLs in
``image`` (a string for one, an array for several); ``response_format: "url"`` with the results
downloaded at once (URLs live 24 h), ``b64_json`` read too if ``params`` asks for it.

The prompt says how many images a batch should have (§7.10: the model takes the number from the
prompt; ``max_images`` only caps it). A 500 is retried (§1.7 "Retry 429 / 500 with backoff";
billing is per image delivered, §1.5); a dropped connection or a read timeout after the request
was sent is not, since the images may have been made and billed.

Ark has no job to poll, but its answer is saved like one when a result download fails in
transit (the images were made and billed; their URLs live 24 h): the rerun downloads them from
the saved answer instead of paying for new ones, and hands the saved answer back (``job_key``)
for the executor to forget once they are cached.

``request.seed`` is not sent: the docs say only the 3.0 models take ``seed`` (§1.2, "4.x: not
supported"). A user who wants it sent anyway writes it in ``params``, which is merged into the
body (tables into objects); the keys assetbuild sets itself (``modeled_keys``) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import (
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    UserError,
)
from ..spec.sizes import SizeError, check_pixels
from ._http import (
    BadAnswer,
    HostError,
    check_image,
    classify_error,
    decode_b64_image,
    default_error_parser,
    one_line,
    size_report,
)
from ._remote import Job, JobState, RemoteProvider, ends_job
from .base import CANONICAL_MODELS, GenerationRequest, GenerationResult, JobStore

GENERATE_PATH = "/images/generations"

# Codes that mean "try again later" rather than "the request is wrong" (§1.7: the 429 and 500 rows).
UNAVAILABLE_CODES = (
    "InternalServiceError", "ServerOverloaded", "QuotaExceeded", "RequestBurstTooFast",
    "SetLimitExceeded", "InflightBatchsizeExceeded",
)


@dataclass(frozen=True)
class _Failure:
    """Why one image (or the whole request) did not come back."""

    kind: type[ProviderError]
    message: str
    code: str | None = None
    status: int | None = None
    in_transit: bool = False  # a result download that failed on the way: a rerun can fetch it again


def is_refusal(code: str | None) -> bool:
    """The content-safety codes: SensitiveContentDetected and its Input*/Output*/.* variants (§1.7)."""
    return code is not None and "SensitiveContentDetected" in code


def parse_ark_error(status: int, body: Any, text: str) -> HostError:
    """Ark's envelope ``{"error": {"code", "message", "param", "type"}}`` (§1.7); a rate-limit
    or overload code says "try later" (``transient``), any other the request is at fault."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return default_error_parser(status, body, text)
    code = None if err.get("code") is None else str(err["code"])
    message = str(err.get("message") or err.get("type") or code or httpx.codes.get_reason_phrase(status))
    transient = code is not None and ("RateLimitExceeded" in code or code.split(".", 1)[0] in UNAVAILABLE_CODES)
    return HostError(code, message, is_refusal(code), transient)


class ModelArkProvider(RemoteProvider):
    """Seedream on BytePlus ModelArk (ap-southeast)."""

    type = "modelark"
    default_base_url = "https://ark.ap-southeast.bytepluses.com/api/v3"
    default_key_env = "ARK_API_KEY"
    # Model ids, prices and reference limits: the models table (spec/catalog.py).
    supports_watermark = True  # and it defaults to true (§7.2), so it is always sent
    # The synchronous call makes and bills every image before it answers, and a POST that timed
    # out after it was sent is not retried, so a timeout loses paid images: wait at least as
    # long as Ark's official SDK does (byteplus-python-sdk-v2 3.0.63,
    # byteplussdkarkruntime/_constants.py: DEFAULT_TIMEOUT_SECONDS = 600.0). A batch of up to
    # 15 images at 4K can take minutes.
    default_timeout_s = 600.0
    prompt_says_count = True  # §7.10: with sequential generation the model reads the count from the prompt
    # §1.7: "Retry 429 / 500 with backoff"; §1.5: billing is per image delivered, and a 500 delivers none.
    unstarted_statuses = frozenset({500})
    modeled_keys = ("model", "prompt", "image", "size", "watermark", "output_format",
                    "sequential_image_generation", "sequential_image_generation_options")
    error_parser = staticmethod(parse_ark_error)

    # -- limits -----------------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        where = self.where(request)
        self._check_size(request, where)
        if request.params.get("stream"):
            raise UserError(f"{where}: params.stream is not supported; assetbuild reads the whole response")

    def _check_size(self, request: GenerationRequest, where: str) -> None:
        """Ark takes exact pixels within the model's output limits (§1.4), which sizes.py owns."""
        if request.model not in CANONICAL_MODELS:  # a model only a config override names: the host judges
            return
        try:
            check_pixels(request.width, request.height, request.model, label=request.size)
        except SizeError as exc:
            raise UserError(f"{where}: {exc}") from None

    # -- generation -------------------------------------------------------------------------

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body of ``POST /images/generations`` for ``request`` (§1.2)."""
        body: dict[str, Any] = {
            "model": self.model_id(request.model),
            "prompt": self.prompt_text(request),
            "size": f"{request.width}x{request.height}",
            "response_format": "url",
            "watermark": request.watermark,
        }
        if request.count > 1:
            body["sequential_image_generation"] = "auto"
            body["sequential_image_generation_options"] = {"max_images": request.count}
        else:
            body["sequential_image_generation"] = "disabled"
        if request.output_format is not None:  # 5.0 only (the table's "takes"; 4.x always JPEG)
            body["output_format"] = request.output_format
        refs = [ref.data_url() for ref in request.references]
        if len(refs) == 1:
            body["image"] = refs[0]
        elif refs:
            body["image"] = refs
        return self.finish_body(body, request)  # 5.0 Pro: no sequential field at all (the table)

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        """The one synchronous call: its answer, saved as the job (``_start``) before any
        download, so a rerun after a kill or a download failing in transit fetches the paid
        images from it (Ark's result URLs live 24 h) instead of paying again."""
        response = self.http.request("POST", GENERATE_PATH, json=self.request_body(request))
        # Ark's request id header is not in providers.md (unconfirmed); taken when present.
        request_id = response.headers.get("x-request-id")
        return {"id": request_id or "ark", "payload": self._payload(response), "request_id": request_id}

    def resumable(self, job: Job) -> bool:
        return super().resumable(job) and isinstance(job.get("payload"), dict)

    def wait(self, job: Job) -> JobState:
        return JobState()  # the answer holds the images: nothing to poll

    def deliver(self, request: GenerationRequest, jobs: JobStore, key: str, job: Job,
                state: JobState) -> GenerationResult:
        """The answer's images. Any error says ``submitted``: images may have been made and
        billed. The saved answer is handed back (``job_key``) once it ends, for the executor to
        forget after caching the images; one whose download failed in transit (or was cut by
        Ctrl-C) stays saved for a rerun."""
        payload, request_id = job["payload"], job.get("request_id")
        try:
            images, warnings, failures = self._collect(request, payload)
            made = self._generated(payload)
            if len(images) < request.count:
                error = self._shortfall(request, images, made, failures)
                if not any(failure.in_transit for failure in failures):
                    if made > len(images):  # made and billed, but not fetched
                        error.billed_for(one_line(self.http.redact(str(request_id or "(no request id)")), 100))
                    raise self._ended(jobs, key, job, error)
                raise error
        except ProviderError as exc:
            exc.submitted = True
            raise
        model_id = payload.get("model")
        return GenerationResult(
            images=tuple(images[: request.count]),
            model_id=model_id if isinstance(model_id, str) and model_id else self.model_id(request.model),
            request_id=request_id,
            cost_usd=made * self.request_price(request),
            warnings=tuple(warnings),
            job_key=key,
        )

    def _payload(self, response: Any) -> dict[str, Any]:
        payload = self.http.read_json(response, f"POST {GENERATE_PATH}", True)
        if not isinstance(payload, dict):
            raise BadAnswer(f"POST {GENERATE_PATH} returned a body that is not a JSON object",
                            provider=self.name, submitted=True)
        return payload

    def _collect(self, request: GenerationRequest,
                 payload: dict[str, Any]) -> tuple[list[bytes], list[str], list[_Failure]]:
        """Every image that came back, downloaded and checked now (kept with a warning if it
        is not the size asked), and why the others did not. A failed image inside a batch
        arrives as ``data[i].error`` with HTTP 200 (§1.5), and some clients also see a
        request-level ``error`` with HTTP 200 (§1.7)."""
        images: list[bytes] = []
        got: list[tuple[int, int]] = []
        failures: list[_Failure] = []
        if isinstance(payload.get("error"), dict):
            failures.append(self._host_failure(parse_ark_error(200, payload, ""), "the request failed: "))
        data = payload.get("data")
        for index, item in enumerate(data if isinstance(data, list) else []):
            label = f"image {index + 1}: "
            if isinstance(item, dict) and isinstance(item.get("error"), dict):
                failures.append(self._host_failure(parse_ark_error(200, item, ""), label))
                continue
            try:
                image, info = self._fetch(item)
            except ProviderError as exc:
                failures.append(_Failure(type(exc), label + exc.detail, exc.code, exc.status, not ends_job(exc)))
                continue
            got.append((info.width, info.height))
            images.append(image)
        warning = size_report(request.width, request.height, got)
        return images, [warning] if warning else [], failures

    def _host_failure(self, err: HostError, label: str) -> _Failure:
        return _Failure(classify_error(err, "envelope").error, label + self.http.redact(err.message), err.code, 200)

    def _fetch(self, item: Any) -> tuple[bytes, Any]:
        """One result's bytes, checked to decode (re-fetched while corrupt, as on every host)."""
        url = item.get("url") if isinstance(item, dict) else None
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if isinstance(url, str) and url:
            return self._fetch_image(url)
        if isinstance(b64, str) and b64:
            data = decode_b64_image(b64, self.name)
            return data, check_image(data, self.name)
        raise BadAnswer("returned a data[] item with neither url nor b64_json", provider=self.name)

    @staticmethod
    def _generated(payload: dict[str, Any]) -> int:
        """Images Ark made and bills: ``usage.generated_images`` counts successful images only
        (§1.5); without it, the ``data[]`` items that are not errors."""
        usage = payload.get("usage")
        count = usage.get("generated_images") if isinstance(usage, dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= 1000:
            return count
        data = payload.get("data")
        return sum(1 for item in (data if isinstance(data, list) else [])
                   if isinstance(item, dict) and "error" not in item)

    def _shortfall(self, request: GenerationRequest, images: list[bytes], made: int,
                   failures: list[_Failure]) -> ProviderError:
        """The error for fewer than ``count`` images, carrying the ones that did come back."""
        if not failures:
            # With sequential generation the model decides how many images to make, up to max_images.
            failures = [_Failure(ProviderUnavailable, f"the model made fewer images than the {request.count} "
                                 "the prompt asks for")]
        first = next((f for f in failures if f.kind is ProviderRefused), failures[0])
        reasons = "; ".join(f.message for f in failures)
        if images or made:
            reasons = f"got {len(images)} of {request.count} images ({made} generated and billed): {reasons}"
        return first.kind(reasons, provider=self.name, code=first.code, status=first.status, images=tuple(images))


class VolcengineProvider(ModelArkProvider):
    """Seedream on Volcengine Ark (cn-beijing): ModelArk's protocol with ``doubao-`` model ids."""

    type = "volcengine"
    default_base_url = "https://ark.cn-beijing.volces.com/api/v3"
    # Ids and (stand-in USD) prices: the models table.
