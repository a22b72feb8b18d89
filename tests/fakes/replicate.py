"""An emulator of Replicate's predictions API for Seedream (providers.md §6.1).

``POST /v1/models/bytedance/{seedream-4|seedream-4.5}/predictions`` checks ``Authorization:
Bearer <token>``, the prediction body (only ``input``, ``stream``, ``webhook``,
``webhook_completed``, ``webhook_events_filter``: the request schema has
``additionalProperties: false``; the official client sends ``webhook_completed`` when asked) and
the model's documented inputs (§6.1: ``size`` keywords per version, ``width`` / ``height``
1024–4096, ``aspect_ratio``, ``sequential_image_generation``, ``max_images`` 1–15, 10 (4.0) /
14 (4.5) ``image_input`` items as URLs or data URLs, inputs + outputs <= 15; a URL of a file
uploaded here must name one this server holds), answering 422 problem documents ``{"title",
"detail", "status", "invalid_fields"}``, and creates a prediction (201). ``GET
/v1/predictions/{id}`` is ``starting`` / ``processing`` for ``polls_until_done`` polls, then
``succeeded`` with ``output`` an array of URLs (``output_shape = "string"`` gives a single URL
for a single image). ``base_url`` is the server root, like ``https://api.replicate.com``.

``Prefer: wait`` (or ``wait=N``, 1–60 s; §6.1) on create answers synchronously: each poll the
prediction would take counts as one second, so a prediction that ends within the wait comes
back finished, and one that does not comes back running, to be polled as usual. Other ``Prefer``
values are ignored (RFC 7240).

``POST /v1/files`` (the official client's way to send a file input) takes multipart field
``content`` (and optional ``metadata``, JSON text) and answers 201 with the file object
(``id``, ``name``, ``content_type``, ``size``, ``etag``, ``checksums``, ``metadata``,
``created_at``, ``expires_at``, ``urls.get``); ``GET /v1/files/{id}`` answers the same object.
Every other path answers a problem document 404, as Replicate's API does.

Faults, besides the base's: ``fail_next_job(code, message)`` ends the next prediction ``failed``
with ``error = "<message> (<code>)"`` (``code="canceled"`` ends it ``canceled``). The base's
``batch_limit`` caps the images sequential generation makes ("up to" ``max_images``).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from tests.fakes.server import HostEmulator, JobFault, Request, Response, is_int, timestamp

MODELS = {"bytedance/seedream-4": "4.0", "bytedance/seedream-4.5": "4.5", "bytedance/seedream-5-lite": "5.0-lite"}
VERSION_IDS = {"4.0": "5f2c" * 16, "4.5": "a91e" * 16, "5.0-lite": "eeb2" * 16}  # stand-ins for the 64-hex ids
# Older versions a prediction may pin (``POST /v1/predictions`` with ``version``): 4.5's has no "custom" size.
OLD_VERSION_IDS = {"0ld4" * 16: "4.5-old"}
SIZES = {"4.0": ("1K", "2K", "4K", "custom"), "4.5": ("2K", "4K", "custom"), "5.0-lite": ("2K", "3K"),
         "4.5-old": ("2K", "4K")}
KEYWORD_SIDES = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}
ASPECT_RATIOS = ("match_input_image", "1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
MAX_INPUTS = {"4.0": 10, "4.5": 14, "5.0-lite": 14, "4.5-old": 14}
FLAGS = {"4.0": ("enhance_prompt",), "4.5": ("disable_safety_checker",), "5.0-lite": (), "4.5-old": ()}
OUTPUT_FORMATS = {"5.0-lite": ("png", "jpeg")}  # seedream-5-lite's schema: output_format, default png
BODY_KEYS = ("input", "stream", "webhook", "webhook_completed", "webhook_events_filter")
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
PREFER_WAIT = re.compile(r"wait(?:=(\d+))?")
MAX_WAIT_S = 60
CUSTOM_SIDE = (1024, 4096)
MAX_IMAGES = 15


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    size: tuple[int, int]
    fault: JobFault | None
    created_at: str
    polls: int = 0
    status: str = "starting"
    output: Any = None
    error: str | None = None


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response(status, {"title": title, "detail": detail, "status": status, **extra},
                    content_type="application/problem+json")


class ReplicateEmulator(HostEmulator):
    counts_from_prompt = True  # a batch makes the count its prompt states, one if none (§7.10)

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(api_key=api_key, clock=clock, polls_until_done=polls_until_done)
        self.output_shape = "list"  # "list" | "string" (single image only)
        self.predictions: dict[str, Prediction] = {}
        self._file_objects: dict[str, dict[str, Any]] = {}  # POST /v1/files answers, by id
        self.api_route("create", "POST", r"/v1/models/(?P<model>[^/]+/[^/]+)/predictions")(self._create)
        self.api_route("create", "POST", r"/v1/predictions")(self._create)  # with a pinned "version"
        self.api_route("get", "GET", r"/v1/predictions/(?P<id>[^/]+)")(self._get)
        self.api_route("upload", "POST", r"/v1/files")(self._upload)
        self.api_route("file_info", "GET", r"/v1/files/(?P<fid>[^/]+)")(self._file_info)
        for method in ("GET", "POST", "PUT", "DELETE"):  # last: any other path is Replicate's 404
            self.route("unknown", method, r"/.*")(
                lambda req: _problem(404, "Not found", "The requested resource could not be found."))

    # -- handlers ---------------------------------------------------------------------------

    def denied(self, req: Request) -> Response | None:
        if self.authorized(req):
            return None
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    def _create(self, req: Request) -> Response:
        try:
            body = req.json
        except ValueError:
            body = None
        pinned = "model" not in req.match  # POST /v1/predictions: the body names the version
        if pinned:
            version_id = body.get("version") if isinstance(body, dict) else None
            by_id = {**{v: k for k, v in VERSION_IDS.items()}, **OLD_VERSION_IDS}
            version = by_id.get(version_id.rsplit(":", 1)[-1]) if isinstance(version_id, str) else None
            if version is None:
                return _problem(422, "Invalid version or not permitted",
                                "The specified version does not exist (or perhaps you don't have permission to use it?)")
            model = next((m for m, v in MODELS.items() if v == version.split("-old")[0]), "bytedance/seedream-4.5")
        else:
            version, model = MODELS.get(req.match["model"]), req.match["model"]
            if version is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return _problem(422, "Input validation failed", "- input: Invalid type. Expected: object")
        invalid = [{"type": "additional_property_not_allowed", "field": key,
                    "description": f"Additional property {key} is not allowed"}
                   for key in body if key not in BODY_KEYS and not (pinned and key == "version")]
        _check_webhooks(body, invalid)
        size = self._validate(body["input"], version, invalid)
        if invalid:
            detail = "\n".join(f"- {f['field']}: {f['description']}" for f in invalid)
            return _problem(422, "Input validation failed", detail, invalid_fields=invalid)
        with self.state_lock:
            version_id = body["version"] if pinned else VERSION_IDS[version]
            prediction = Prediction(uuid.uuid4().hex[:26], model, version_id,
                                    body["input"], size, self.take_job_fault(), timestamp())
            self.predictions[prediction.id] = prediction
            self.bill(req)
            for _ in range(_wait_s(req.headers.get("prefer", ""))):  # Prefer: wait runs it here
                if prediction.status not in ("starting", "processing"):
                    break
                self._advance(prediction)
            return Response(201, self._render(prediction))

    def _get(self, req: Request) -> Response:
        with self.state_lock:
            prediction = self.predictions.get(req.match["id"])
            if prediction is None:
                return _problem(404, "Not found", "The requested resource could not be found.")
            if prediction.status in ("starting", "processing"):
                self._advance(prediction)
            return Response(200, self._render(prediction))

    def _upload(self, req: Request) -> Response:
        if not req.headers.get("content-type", "").startswith("multipart/form-data"):
            return _problem(400, "Bad request", "Expected multipart/form-data with a content field")
        fields = req.multipart()
        if "content" not in fields or not fields["content"][1]:
            return _problem(400, "Bad request", "The content field is required")
        name, data = fields["content"]
        try:
            metadata = json.loads(fields["metadata"][1]) if "metadata" in fields else {}
        except ValueError:
            return _problem(400, "Bad request", "metadata must be a JSON object")
        url = self.store_file(data)
        fid = url.rsplit("/", 1)[1]
        file_object = {
            "id": fid, "name": name or "file", "content_type": _part_type(req, "content"), "size": len(data),
            "etag": hashlib.md5(data).hexdigest(),
            "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()},
            "metadata": metadata, "created_at": timestamp(), "expires_at": None,
            "urls": {"get": f"{self.url}/v1/files/{fid}"},
        }
        with self.state_lock:
            self._file_objects[fid] = file_object
        return Response(201, file_object)

    def _file_info(self, req: Request) -> Response:
        with self.state_lock:
            file_object = self._file_objects.get(req.match["fid"])
        if file_object is None:
            return _problem(404, "Not found", "The requested resource could not be found.")
        return Response(200, file_object)

    def uploaded(self, url: str) -> bytes | None:
        """The bytes of a file uploaded through ``POST /v1/files``, by its ``urls.get``."""
        prefix = f"{self.url}/v1/files/"
        return self.stored_file(f"{self.url}/files/{url[len(prefix):]}") if url.startswith(prefix) else None

    # -- predictions ------------------------------------------------------------------------

    def _advance(self, prediction: Prediction) -> None:
        if self.tick(prediction):
            prediction.status = "starting" if prediction.polls == 1 else "processing"
            return
        fault = prediction.fault
        if fault is not None:
            prediction.status = "canceled" if fault.code == "canceled" else "failed"
            if prediction.status == "failed":
                prediction.error = f"{fault.message} ({fault.code})"
            return
        inputs = prediction.input
        made = self.images_made(
            inputs.get("max_images", 1) if inputs.get("sequential_image_generation") == "auto" else 1,
            inputs.get("prompt"))
        urls = [self.result_url(*prediction.size) for _ in range(made)]
        prediction.status = "succeeded"
        prediction.output = urls[0] if self.output_shape == "string" and len(urls) == 1 else urls

    def _render(self, p: Prediction) -> dict[str, Any]:
        get = f"{self.url}/v1/predictions/{p.id}"
        return {
            "id": p.id, "model": p.model, "version": p.version, "input": p.input, "logs": "",
            "output": p.output, "data_removed": False, "error": p.error, "status": p.status,
            "created_at": p.created_at,
            "urls": {"get": get, "cancel": f"{get}/cancel", "web": f"https://replicate.com/p/{p.id}"},
        }

    # -- validation (§6.1) ------------------------------------------------------------------

    def _validate(self, inputs: dict[str, Any], version: str, invalid: list[dict[str, Any]]) -> tuple[int, int]:
        def bad(name: str, description: str) -> None:
            invalid.append({"type": "invalid", "field": f"input.{name}", "description": description})

        if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"]:
            bad("prompt", "prompt is required")
        if "output_format" in inputs and inputs["output_format"] not in OUTPUT_FORMATS.get(version, ()):
            bad("output_format", f"output_format must be one of: {', '.join(OUTPUT_FORMATS.get(version, ())) or '-'}")
        if "custom" not in SIZES[version]:
            for name in ("width", "height"):
                if name in inputs:
                    bad(name, f"Additional property {name} is not allowed")
        for name in FLAGS[version]:
            if name in inputs and not isinstance(inputs[name], bool):
                bad(name, "Invalid type. Expected: boolean")
        if inputs.get("sequential_image_generation", "disabled") not in ("disabled", "auto"):
            bad("sequential_image_generation", "must be one of: disabled, auto")
        max_images = inputs.get("max_images", 1)
        if not is_int(max_images, 1, MAX_IMAGES):
            bad("max_images", f"must be an integer from 1 to {MAX_IMAGES}")
            max_images = 1
        refs = inputs.get("image_input", [])
        if not isinstance(refs, list) or len(refs) > MAX_INPUTS[version]:
            bad("image_input", f"must be an array of at most {MAX_INPUTS[version]} images")
        elif any(not isinstance(r, str) or not r.startswith(("http://", "https://", "data:")) for r in refs):
            bad("image_input", "each item must be a URI (an http(s) URL or a data URL)")
        elif any(r.startswith(f"{self.url}/v1/files/") and self.uploaded(r) is None for r in refs):
            bad("image_input", "a file input could not be fetched")
        elif len(refs) + max_images > MAX_IMAGES:
            bad("max_images", "input images + generated images must be at most 15")
        return self._size(inputs, version, bad)

    @staticmethod
    def _size(inputs: dict[str, Any], version: str, bad: Callable[[str, str], None]) -> tuple[int, int]:
        size = inputs.get("size", "2K")
        if size not in SIZES[version]:
            bad("size", f"size must be one of: {', '.join(SIZES[version])}")
            return 2048, 2048
        ratio_name = inputs.get("aspect_ratio", "match_input_image")
        if ratio_name not in ASPECT_RATIOS:
            bad("aspect_ratio", f"aspect_ratio must be one of: {', '.join(ASPECT_RATIOS)}")
            ratio_name = "1:1"
        if size == "custom":
            w, h = inputs.get("width", 2048), inputs.get("height", 2048)
            for name, value in (("width", w), ("height", h)):
                if not is_int(value, *CUSTOM_SIDE):
                    bad(name, f"{name} must be an integer from {CUSTOM_SIDE[0]} to {CUSTOM_SIDE[1]}")
            return (w, h) if is_int(w, *CUSTOM_SIDE) and is_int(h, *CUSTOM_SIDE) else (2048, 2048)
        rw, rh = (1, 1) if ratio_name == "match_input_image" else map(int, ratio_name.split(":"))
        area = KEYWORD_SIDES[size] ** 2
        return 16 * round(math.sqrt(area * rw / rh) / 16), 16 * round(math.sqrt(area * rh / rw) / 16)


def _wait_s(prefer: str) -> int:
    """The seconds a ``Prefer`` header asks create to wait: ``wait`` is 60, ``wait=N`` N (1–60);
    0 without one (unknown preferences are ignored, RFC 7240)."""
    for preference in prefer.split(","):
        match = PREFER_WAIT.fullmatch(preference.strip())
        if match:
            return min(int(match[1]), MAX_WAIT_S) if match[1] else MAX_WAIT_S
    return 0


def _check_webhooks(body: dict[str, Any], invalid: list[dict[str, Any]]) -> None:
    """``webhook`` / ``webhook_completed`` are URLs; ``webhook_events_filter`` a list of events."""
    for name in ("webhook", "webhook_completed"):
        if name in body and not (isinstance(body[name], str) and body[name].startswith(("https://", "http://"))):
            invalid.append({"type": "format", "field": name, "description": "Does not match format 'uri'"})
    events = body.get("webhook_events_filter", list(WEBHOOK_EVENTS))
    if not isinstance(events, list) or any(event not in WEBHOOK_EVENTS for event in events):
        invalid.append({"type": "enum", "field": "webhook_events_filter",
                        "description": f"each item must be one of: {', '.join(WEBHOOK_EVENTS)}"})


def _part_type(req: Request, name: str) -> str:
    """The Content-Type the multipart part ``name`` declared."""
    head = f"Content-Type: {req.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            return part.get_content_type()
    return "application/octet-stream"


__all__ = ["ReplicateEmulator"]
