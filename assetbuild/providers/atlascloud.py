"""Atlas Cloud: Seedream 4.0 / 4.5 as asynchronous predictions (providers.md §3).

``POST /api/v1/model/generateImage`` starts a prediction (``data.id``); ``GET
/api/v1/model/prediction/{id}`` reports it until ``data.outputs[]`` holds the images. Every
answer is a ``{code, message, data}`` envelope, and a ``code`` other than 200 is an error even
under HTTP 200. The model id carries the mode: ``/edit`` with references, ``/sequential`` for
a batch, ``/edit-sequential`` for both (4.5 too: ``bytedance/seedream-v4.5/edit-sequential``,
§7.14). Sizes are exact pixels, ``"W*H"``; an image of another size is kept with a warning.
References are uploaded with ``uploadMedia`` and sent as URLs in ``images``. ``seed`` is not
sent: no Atlas Seedream schema lists it (§3.3, §7.15); put it in ``params`` to send it anyway.
Only ``completed`` / ``succeeded`` and ``failed`` end a prediction; any other status, documented
(``created``, ``processing``) or not, is taken as still running, as Atlas's own clients do (§7.11).
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderRequestError
from ._http import HostError, default_error_parser, host_error
from ._remote import Job, JobState, RemoteProvider
from .base import GenerationRequest, ReferenceImage

SUBMIT_PATH = "/api/v1/model/generateImage"
SUCCEEDED_STATUSES = ("completed", "succeeded")  # model pages also accept "succeeded" (§3.4)
FAILED_STATUS = "failed"
MODERATION_CODE = 1039  # [3p] only (§3.5): unconfirmed
MODE_SUFFIXES = {  # (has references, count > 1) -> model id suffix (§3.2)
    (False, False): "",
    (True, False): "/edit",
    (False, True): "/sequential",
    (True, True): "/edit-sequential",
}


def parse_error(status: int, body: Any, text: str) -> HostError:
    """Atlas's ``{code, message, data}`` envelope (§3.4). The failure text is ``data.error``
    when there is one, else ``message``; the code is an ``error_code`` (top level or in
    ``data``; where it appears is unconfirmed) else the envelope's ``code``. A refusal is
    ``error_code`` 1039 (§3.5, unconfirmed) or recognised by its words."""
    if not isinstance(body, dict):
        return default_error_parser(status, body, text)
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    error_code = data.get("error_code", body.get("error_code"))
    code = error_code if error_code is not None else body.get("code")
    parsed = host_error(status, code, data.get("error") or body.get("message") or body.get("msg"), text)
    return parsed._replace(refused=parsed.refused or str(error_code) == str(MODERATION_CODE))


class AtlasCloudProvider(RemoteProvider):
    type = "atlascloud"
    default_base_url = "https://api.atlascloud.ai"
    default_key_env = "ATLASCLOUD_API_KEY"
    # Ids per mode, prices per run taken as per image (the conservative reading for sequential
    # runs; 4.0 text-to-image is unconfirmed, the /edit price stands in) and the reference limit
    # (none documented; WaveSpeed's 10, §3.3, §6.2): the models table.
    prompt_says_count = True  # as on evolink (§2.2): the batch size is said in the prompt too
    # supports_watermark stays False: §3.3 documents no watermark option.
    modeled_keys = ("model", "prompt", "size", "images", "max_images")
    error_parser = staticmethod(parse_error)

    def variant_id(self, request: GenerationRequest) -> str:
        """The host model id for this request's mode (the table's ids: /edit, /sequential, ...);
        a config override is the base id, suffixed here."""
        found = self.offer(request.model)
        if request.model in self.config.model_ids or found is None:
            return self.model_id(request.model) + MODE_SUFFIXES[(bool(request.references), request.count > 1)]
        return found.model_id(bool(request.references), request.count > 1)

    result_model_id = variant_id

    def request_body(self, request: GenerationRequest, model_id: str, image_urls: list[str]) -> dict[str, Any]:
        """The flat prediction body (§3.3): exact ``W*H`` pixels, ``max_images`` for a batch."""
        body: dict[str, Any] = {
            "model": model_id,
            "prompt": self.prompt_text(request),
            "size": f"{request.width}*{request.height}",
        }
        if image_urls:
            body["images"] = image_urls
        if request.count > 1:
            body["max_images"] = request.count
        return self.finish_body(body, request)

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        image_urls = [self._upload(ref) for ref in request.references]
        label = f"POST {SUBMIT_PATH}"
        body = self.http.request_object("POST", SUBMIT_PATH,
                                        json=self.request_body(request, self.variant_id(request), image_urls))
        data = self._unwrap(body, label, submitted=True)
        return {"id": self.found(data.get("id"), f"{label} returned no prediction id", submitted=True)}

    def _upload(self, ref: ReferenceImage) -> str:
        """A temporary URL for the reference (multipart field ``file``). The docs' examples read
        a top-level ``url``, several clients ``data.download_url`` (§3.4): both accepted."""
        label = f"reference upload of {ref.label}"
        body = self.http.request_object(
            "POST", "/api/v1/model/uploadMedia",
            files={"file": (f"reference.{ref.format}", ref.data, ref.media_type)},
            billable=False,  # an upload bills nothing: retrying it after a timeout is safe
        )
        data = self._unwrap(body, label)
        return self.found(body.get("url") or data.get("download_url"), f"{label} returned no URL")

    def fetch(self, prediction_id: str) -> JobState:
        path = f"/api/v1/model/prediction/{prediction_id}"
        data = self._unwrap(self.http.request_object("GET", path), f"GET {path}")
        status = data.get("status")
        if status in SUCCEEDED_STATUSES:
            outputs = data.get("outputs")
            return JobState(outputs=tuple(_output_url(o) for o in outputs if isinstance(o, str) and o)
                            if isinstance(outputs, list) else ())
        if status != FAILED_STATUS:
            return JobState(running=True)  # created, processing, or a status not documented (§7.11)
        # A failed prediction: a refusal (moderation) or the host's trouble.
        err = parse_error(200, {"data": data}, f"status {status}")
        return JobState(error=self.reported_error(f"prediction {prediction_id}", err))

    def _unwrap(self, body: dict[str, Any], label: str, *, submitted: bool = False) -> dict[str, Any]:
        """``data`` of a ``{code, message, data}`` envelope, raising when ``code`` is not 200
        (an error even under HTTP 200, §3.4). A body without the envelope (the older
        top-level shapes of §3.4) is returned whole."""
        code = body.get("code")
        if code is not None and str(code) != "200":
            error = self.reported_error(label, parse_error(200, body, f"code {code} without a message"),
                                        "envelope", code)
            error.submitted = submitted and not isinstance(error, ProviderRequestError)
            raise error
        data = body.get("data")
        return data if isinstance(data, dict) else body


def _output_url(output: Any) -> str:
    """An output as a URL. ``enable_base64_output`` (settable through ``params``) makes outputs
    naked base64 (§3.3, §6.2); those become data URLs, which the client decodes in place."""
    text = str(output)
    if text.startswith(("http://", "https://", "data:")):
        return text
    return f"data:image/jpeg;base64,{text}"


__all__ = ["AtlasCloudProvider", "parse_error"]
