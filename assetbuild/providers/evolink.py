"""evolink.ai: Seedream 4.0 / 4.5 as asynchronous tasks (providers.md §2).

``POST /v1/images/generations`` creates a task; ``GET /v1/tasks/{id}`` reports it until
``results[]`` holds the image URLs (valid 24 h). The size goes in the newer documented form
(§2.2 "newer revision"): an aspect ratio in ``size`` plus ``quality`` 1K|2K|4K, from which the
backend picks the pixels, so results are checked to decode, never for exact dimensions.
References must be URLs the host can fetch, so they are uploaded through evolink's file API
first (§2.1), which takes JPEG, PNG, GIF and WEBP only (§7.15): a BMP or TIFF reference (4.5
accepts them) is converted to PNG for the upload. ``seed`` is not sent: no evolink Seedream
page lists it (§2.2, §7.15); put it in ``params`` to send it anyway. Only ``completed``,
``failed`` and ``cancelled`` (named by the callback docs, §2.4) end a task: any other status
is taken as still running (§7.11).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from ..errors import UserError
from ..imageinfo import ImageDecodeError, as_png
from ._http import HostError, default_error_parser
from ._remote import LIST_PRICES, JobState, RemoteProvider, dig, merge_params
from .base import GenerationRequest, GenerationResult, JobStore, ReferenceImage

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
QUALITY_PIXELS = {"1K": 1024 * 1024, "2K": 2048 * 2048, "4K": 4096 * 4096}
FAILED_STATUSES = ("failed", "cancelled")
UPLOAD_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")  # the file API's (§7.15)
REFUSAL_CODE = "content_policy_violation"
# Failed-task codes (§2.4) that a resubmission would not fix; every other code is the host's trouble.
REQUEST_ERROR_CODES = frozenset({
    "invalid_parameters", "image_processing_error", "image_dimension_mismatch", "quota_exceeded", "request_cancelled",
})
SUBMIT_PATH = "/v1/images/generations"


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
    type = "evolink"
    default_base_url = "https://api.evolink.ai"
    default_files_url = "https://files-api.evolink.ai"
    default_key_env = "EVOLINK_API_KEY"
    model_ids = {"seedream-4.0": "doubao-seedream-4.0", "seedream-4.5": "doubao-seedream-4.5"}
    # evolink prices in credits (1.8 reserved per 4.0 image, 2 per 4.5 image, §2.6); their USD
    # value is unconfirmed, so Seedream's list price stands in.
    prices = LIST_PRICES
    max_references = {"seedream-4.0": 10, "seedream-4.5": 14}
    # Seedream 4.0's references are held to the older limits (§2.2); 4.5 takes the current ones.
    reference_media_types = {**RemoteProvider.reference_media_types, "seedream-4.0": ("image/jpeg", "image/png")}
    reference_ratio = {**RemoteProvider.reference_ratio, "seedream-4.0": (1 / 3, 3.0)}
    max_prompt_chars = 2000
    prompt_says_count = True  # §2.2: the batch size must ALSO be said in the prompt
    # supports_watermark stays False: §2.2 documents no watermark option.
    modeled_keys = ("model", "prompt", "size", "quality", "n", "image_urls")
    error_parser = staticmethod(parse_error)

    @property
    def files_url(self) -> str:
        """The file API's base URL. Beside the default API it is files-api.evolink.ai (§2.1);
        any other ``base_url`` (a proxy, the emulator) is taken to serve the file API too, at
        the same host, since ProviderConfig has no field for a second URL."""
        return self.default_files_url if self.base_url == self.default_base_url else self.base_url

    def generate(self, request: GenerationRequest, jobs: JobStore) -> GenerationResult:
        self.validate(request)
        model_id = self.model_id(request.model)
        return self.run_job(request, jobs, submit=lambda ended: self._submit(request, model_id),
                            wait=self.polling(self._fetch), model_id=model_id, exact_size=False)

    def request_body(self, request: GenerationRequest, model_id: str, image_urls: list[str]) -> dict[str, Any]:
        """The documented task body (§2.2, newer revision): ratio + quality, ``n`` images."""
        body: dict[str, Any] = {
            "model": model_id,
            "prompt": self.prompt_text(request),
            "size": nearest_aspect_ratio(request.width, request.height),
            "quality": quality_for(request.width, request.height, request.model),
            "n": request.count,
        }
        if image_urls:
            body["image_urls"] = image_urls
        return merge_params(body, request.params)

    def _submit(self, request: GenerationRequest, model_id: str) -> dict[str, Any]:
        image_urls = [self._upload(ref) for ref in request.references]
        task = self.http.request_object("POST", SUBMIT_PATH, json=self.request_body(request, model_id, image_urls))
        return {"id": self.found(task.get("id"), f"POST {SUBMIT_PATH} returned no task id", submitted=True)}

    def _upload(self, ref: ReferenceImage) -> str:
        """A URL evolink's servers can fetch the reference from (file API, kept 72 h, §2.1).
        The response shape is only known from an SDK: ``data.file_url``, ``data.url`` and a
        top-level ``url`` are all accepted."""
        label = f"reference upload of {ref.label}"
        body = self.http.request_object(
            "POST", f"{self.files_url}/api/v1/files/upload/base64",
            json={"base64_data": uploadable(ref).data_url()},
            billable=False,  # an upload bills nothing: retrying it after a timeout is safe
        )
        if body.get("success") is False:
            raise self.envelope_error(label, parse_error(200, body, ""), body.get("code"))
        url = dig(body, "data", "file_url") or dig(body, "data", "url") or body.get("url")
        return self.found(url, f"{label} returned no file URL")

    def _fetch(self, task_id: str) -> JobState:
        task = self.http.request_object("GET", f"/v1/tasks/{task_id}")
        status = task.get("status")
        if status == "completed":
            return JobState(outputs=_result_urls(task))
        if status not in FAILED_STATUSES:
            return JobState(running=True)  # pending, processing, or a status not documented (§7.11)
        err = parse_error(200, task, f"status {status}")
        return JobState(error=self.job_error(f"task {task_id}", err, request_error=err.code in REQUEST_ERROR_CODES))


def uploadable(ref: ReferenceImage) -> ReferenceImage:
    """``ref`` in a format the file API takes: BMP and TIFF become PNG (lossless)."""
    if ref.media_type in UPLOAD_MEDIA_TYPES:
        return ref
    try:
        return replace(ref, data=as_png(ref.data), media_type="image/png")
    except ImageDecodeError as exc:
        raise UserError(f"reference {ref.label} cannot be converted to PNG for evolink's upload: {exc}") from exc


def _result_urls(task: dict[str, Any]) -> tuple[str, ...]:
    """``results[]`` (URL strings) per the task doc; ``result_data[].image_url`` appears only in
    EvoLink's MCP reference (§2.4, unconfirmed) and is read when ``results`` is absent."""
    results = task.get("results")
    if isinstance(results, list):
        return tuple(url for url in results if isinstance(url, str) and url)
    items = task.get("result_data")
    if isinstance(items, list):
        return tuple(item["image_url"] for item in items
                     if isinstance(item, dict) and isinstance(item.get("image_url"), str) and item["image_url"])
    return ()


__all__ = ["EvolinkProvider", "nearest_aspect_ratio", "parse_error", "quality_for", "uploadable"]
