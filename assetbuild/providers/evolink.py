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

from dataclasses import replace
from typing import Any

from ..errors import UserError
from ..store.imageinfo import ImageDecodeError, as_png
from ..spec.sizes import nearest_ratio, nearest_tier
from ._http import HostError, default_error_parser
from ._remote import Job, JobState, RemoteProvider, dig
from .base import GenerationRequest, ReferenceImage

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")  # ``size`` (§2.2)
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
    "message"}}``; the file API answers ``{"success": false, "code", "msg"}``. A code of
    ``REQUEST_ERROR_CODES`` puts the fault on the request."""
    parsed = default_error_parser(status, body, text)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        if isinstance(err.get("code"), int) and err.get("type"):
            parsed = parsed._replace(code=str(err["type"]))
        if err.get("fallback_suggestion"):
            parsed = parsed._replace(message=f"{parsed.message} ({err['fallback_suggestion']})")
        parsed = parsed._replace(refused=parsed.refused or parsed.code == REFUSAL_CODE)
    elif isinstance(body, dict) and body.get("code") is not None and body.get("msg"):
        parsed = parsed._replace(code=str(body["code"]))
    return parsed._replace(transient=False if parsed.code in REQUEST_ERROR_CODES else None)


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The documented ``size`` ratio closest to width:height."""
    return nearest_ratio(width, height, ASPECT_RATIOS)


def quality_for(width: int, height: int, model: str) -> str:
    """The ``quality`` (a Seedream tier the model offers) nearest to width x height."""
    return nearest_tier(model, width, height)


class EvolinkProvider(RemoteProvider):
    type = "evolink"
    default_base_url = "https://api.evolink.ai"
    default_files_url = "https://files-api.evolink.ai"
    default_key_env = "EVOLINK_API_KEY"
    # Ids, prices (the seeds' $0.0222 / $0.0313) and reference limits (4.0 held to the older
    # ones, §2.2): the models table.
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

    def exact_size(self, request: GenerationRequest) -> bool:
        return False  # ratio + quality: the backend picks the pixels (§2.2)

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
        return self.finish_body(body, request)

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        image_urls = [self._upload(ref) for ref in request.references]
        body = self.request_body(request, self.model_id(request.model), image_urls)
        task = self.http.request_object("POST", SUBMIT_PATH, json=body)
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
            raise self.reported_error(label, parse_error(200, body, ""), "envelope", body.get("code"))
        url = dig(body, "data", "file_url") or dig(body, "data", "url") or body.get("url")
        return self.found(url, f"{label} returned no file URL")

    def fetch(self, task_id: str) -> JobState:
        task = self.http.request_object("GET", f"/v1/tasks/{task_id}")
        status = task.get("status")
        if status == "completed":
            return JobState(outputs=_result_urls(task))
        if status not in FAILED_STATUSES:
            return JobState(running=True)  # pending, processing, or a status not documented (§7.11)
        err = parse_error(200, task, f"status {status}")
        return JobState(error=self.reported_error(f"task {task_id}", err))


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
