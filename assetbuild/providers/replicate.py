"""Replicate: Seedream as predictions of ``bytedance/seedream-4`` / ``bytedance/seedream-4.5``
(providers.md §6.1).

``POST /v1/models/{model}/predictions`` with ``{"input": {...}}`` creates a prediction, and
``GET /v1/predictions/{id}`` is polled through ``starting`` → ``processing`` → ``succeeded`` |
``failed`` | ``canceled``; ``output`` is an array of URI strings (a single string is accepted
too). ``Prefer: wait`` is not sent: the submit stays short and the job id is persisted before
any waiting, so a crash resumes the prediction instead of paying for another.

What is sent in ``input``: ``prompt``; ``size: "custom"`` with exact ``width`` / ``height`` when
both sides are within 1024–4096, else the nearest keyword (``1K``/``2K``/``4K``; 4.5 has no
``1K``) by pixel count with the nearest ``aspect_ratio`` (and then only decoding is checked, not
the size); ``sequential_image_generation: "auto"`` with ``max_images = count`` for a batch (the
model makes *up to* that many; fewer is an error carrying the ones made), ``"disabled"`` with
``max_images = 1`` otherwise; references as data URLs in ``image_input`` — Replicate accepts
data URLs for file inputs (its API schema recommends them for files up to 256 KB and hosted URLs
for larger ones; the files API is not used here, unconfirmed for large references).

The prompt says how many images a batch should have (§7.10: with ``"auto"`` the model decides
from the prompt, ``max_images`` only caps it). Only ``succeeded``, ``failed`` and ``canceled``
end a prediction; any other status is taken as still running (§7.11). A submit is never
retried once it may have reached Replicate (§7.12: its official client never retries a POST).

The Seedream schemas have no ``seed`` and no watermark (§6.1): ``request.seed`` is not sent (put
it in ``params`` to send it anyway) and ``watermark = true`` is refused. Price is not documented
(§6.1): the models table's figures stand in (unconfirmed).

``version = { "seedream-4.5" = "<version id>" }`` in the provider's table pins a model version
(4.5's ``size: "custom"`` exists only in recent versions): the prediction is created through
``POST /v1/predictions`` with ``version`` in the body, and the result's model id names it
(``bytedance/seedream-4.5:<version>``), so the lock records which version made the images.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ProviderUnavailable
from ..spec.sizes import TABLE_RATIOS, nearest_ratio, nearest_tier
from ._http import HostError, default_error_parser, host_error
from ._remote import Job, JobState, RemoteProvider
from .base import GenerationRequest

CUSTOM_SIDE = (1024, 4096)  # width / height with size "custom" (§6.1)
# The aspect_ratio values of Replicate's Seedream schemas (§6.1 says "ratios"; list unconfirmed):
# taken to be those of Seedream's recommended-size table.
ASPECT_RATIOS = TABLE_RATIOS
ERROR_CODE = re.compile(r"\((E\d{3,4})\)")  # Replicate's error strings end in a code like "(E005)"


def parse_replicate_error(status: int, body: Any, text: str) -> HostError:
    """Replicate's problem documents ``{"title", "detail", "status", "invalid_fields"?}`` (its
    general API docs; not in providers.md, so unconfirmed here)."""
    if not isinstance(body, dict) or not ({"title", "detail"} & set(body)):
        return default_error_parser(status, body, text)
    fields = body.get("invalid_fields")
    invalid = [f"{f.get('field')}: {f.get('description')}" for f in fields if isinstance(f, dict)] \
        if isinstance(fields, list) else []
    # ``detail`` lists the invalid fields again, one per line: the structured list reads better.
    detail = "; ".join(invalid) if invalid else str(body.get("detail") or "")
    message = ": ".join(part for part in (str(body.get("title") or ""), detail) if part)
    match = ERROR_CODE.search(message)
    return host_error(status, match.group(1) if match else None, message, text)


def size_fields(model: str, width: int, height: int, custom: bool = True) -> tuple[dict[str, Any], bool]:
    """``input`` fields for a size, and whether the host promises exactly ``width``x``height``.
    ``custom``: the model takes ``size: "custom"`` (5.0 Lite does not: 2K | 3K + ratio only)."""
    lo, hi = CUSTOM_SIDE
    if custom and lo <= width <= hi and lo <= height <= hi:
        return {"size": "custom", "width": width, "height": height}, True
    keyword, ratio = nearest_tier(model, width, height), nearest_ratio(width, height, ASPECT_RATIOS)
    return {"size": keyword, "aspect_ratio": ratio}, False


def output_urls(output: Any) -> list[str]:
    """``output`` is an array of URIs (§6.1); a single URI string is accepted too."""
    items = output if isinstance(output, list) else [output]
    return [item for item in items if isinstance(item, str) and item]


class ReplicateProvider(RemoteProvider):
    type = "replicate"
    default_base_url = "https://api.replicate.com"
    default_key_env = "REPLICATE_API_TOKEN"
    # Ids, prices (not documented, §6.1: stand-ins) and reference limits: the models table.
    modeled_keys = ("input.prompt", "input.image_input", "input.size", "input.aspect_ratio", "input.width",
                    "input.height", "input.sequential_image_generation", "input.max_images", "input.output_format",
                    "version")
    # supports_watermark stays False: the §6.1 schemas have no watermark input.
    error_parser = staticmethod(parse_replicate_error)
    prompt_says_count = True  # §7.10

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The prediction body."""
        size, _ = self._size(request)
        inputs: dict[str, Any] = {
            "prompt": self.prompt_text(request),
            **size,
            "sequential_image_generation": "auto" if request.count > 1 else "disabled",
            "max_images": request.count,
        }
        if request.references:
            inputs["image_input"] = [ref.data_url() for ref in request.references]
        if request.output_format is not None:
            inputs["output_format"] = request.output_format
        body: dict[str, Any] = {"input": inputs}
        version = self.config.version.get(request.model)
        if version:
            body["version"] = version
        return self.finish_body(body, request)

    def _size(self, request: GenerationRequest) -> tuple[dict[str, Any], bool]:
        offer = self.offer(request.model)
        keyword_only = offer is not None and bool(offer.keyword_tiers)  # the table: no "custom" size
        return size_fields(request.model, request.width, request.height, custom=not keyword_only)

    def exact_size(self, request: GenerationRequest) -> bool:
        return self._size(request)[1]

    def result_model_id(self, request: GenerationRequest) -> str:
        version = self.config.version.get(request.model)
        return f"{self.model_id(request.model)}:{version}" if version else self.model_id(request.model)

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        # A pinned version (config ``version``) is created through POST /v1/predictions with the
        # version id in the body; else the model's latest version, by its model path.
        pinned = request.model in self.config.version
        path = "/v1/predictions" if pinned else f"/v1/models/{self.model_id(request.model)}/predictions"
        reply = self.http.request_object("POST", path, json=self.request_body(request))
        return {"id": self.found(reply.get("id"), f"POST {path} returned no prediction id", submitted=True)}

    def fetch(self, prediction_id: str) -> JobState:
        state = self.http.request_object("GET", f"/v1/predictions/{prediction_id}")
        status = state.get("status")
        if status == "succeeded":
            return JobState(outputs=tuple(output_urls(state.get("output"))))
        if status == "failed":
            error = str(state.get("error") or "")
            match = ERROR_CODE.search(error)
            return JobState(error=self.failed_job(prediction_id, error, match.group(1) if match else "failed"))
        if status == "canceled":
            return JobState(error=ProviderUnavailable(f"prediction {prediction_id} ended canceled",
                                                      provider=self.name, code="canceled"))
        return JobState(running=True)  # starting, processing, or a status not documented (§7.11)


__all__ = ["ReplicateProvider", "parse_replicate_error", "size_fields"]
