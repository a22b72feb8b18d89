"""An emulator of Atlas Cloud's prediction API for Seedream (providers.md §3).

Submit ``POST /api/v1/model/generateImage`` -> ``{code: 200, data: {id, status: processing}}``;
``GET /api/v1/model/prediction/{id}`` stays ``processing`` for ``polls_until_done`` polls, then
``completed`` with ``data.outputs[]`` (images of exactly the ``W*H`` asked for). ``POST
/api/v1/model/uploadMedia`` takes multipart field ``file``. Requests without a real User-Agent
get Cloudflare's 403 (error 1010), as reported for the live host.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .server import HostEmulator, JobFault, Request, Response, data_url_bytes, open_image, result_image

MIN_PIXELS = {"bytedance/seedream-v4": 1280 * 720, "bytedance/seedream-v4.5": 2560 * 1440,
              "bytedance/seedream-v5.0-lite": 2560 * 1440}  # 5.0 Lite: its model page (+ all four modes)
MAX_PIXELS_OF = {"bytedance/seedream-v5.0-lite": 10_404_496}
MAX_PIXELS = 4096 * 4096
MODES = {"": (False, False), "/edit": (True, False), "/sequential": (False, True), "/edit-sequential": (True, True)}
MODELS = {  # model id -> (base model, needs images, is sequential): the ids of §3.2
    base + suffix: (base, *mode)
    for base in MIN_PIXELS
    for suffix, mode in MODES.items()  # 4.5 has /edit-sequential too (§7.14)
}
# §3.3's fields (the Atlas schema page was not retrieved; ``seed`` is unconfirmed). Anything
# else is refused, so a misspelt field shows.
FIELDS = frozenset({"model", "prompt", "images", "size", "max_images", "enable_base64_output", "enable_sync_mode",
                    "seed"})
MAX_IMAGES = 10
SIZE = re.compile(r"(\d+)\*(\d+)")


@dataclass
class Prediction:
    id: str
    model: str
    made: int
    width: int
    height: int
    base64_output: bool
    polls: int = 0
    fault: JobFault | None = None  # code: Atlas's numeric error_code, or None
    outputs: list[str] = field(default_factory=list)


class AtlasCloudEmulator(HostEmulator):
    """Faults, besides the base's: ``fail_next_job(code, message)`` makes the next prediction
    fail with ``data.error`` = message and ``data.error_code`` = code (1039 = moderation; None
    for none); ``forget_predictions()`` makes every known prediction 404; ``success_status`` is
    ``"completed"`` or ``"succeeded"``; ``upload_shape`` is ``"url"`` (top-level, the docs) or
    ``"data.download_url"`` (clients)."""

    counts_from_prompt = True  # a batch makes the count its prompt states, one if none (§7.10)

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(api_key=api_key, clock=clock, polls_until_done=polls_until_done)
        self.success_status = "completed"
        self.upload_shape = "url"
        self.predictions: dict[str, Prediction] = {}
        self.api_route("generate", "POST", r"/api/v1/model/generateImage")(self._generate)
        self.api_route("prediction", "GET", r"/api/v1/model/prediction/(?P<id>[^/]+)")(self._prediction)
        self.api_route("upload", "POST", r"/api/v1/model/uploadMedia")(self._upload)

    def forget_predictions(self) -> None:
        with self.state_lock:
            self.predictions.clear()

    def denied(self, req: Request) -> Response | None:
        """Cloudflare's User-Agent block (§3.1, [3p]) then the key."""
        agent = req.headers.get("user-agent", "")
        if not agent or agent.startswith(("python-", "curl/")):
            return Response(403, b"error code: 1010", content_type="text/plain")
        if not self.authorized(req):
            return _envelope(401, "Unauthorized: invalid or missing API key")
        return None

    # -- predictions ------------------------------------------------------------------------

    def _generate(self, req: Request) -> Response:
        try:
            body = req.json
        except ValueError:
            return _envelope(400, "request body is not JSON")
        problem = self._check(body)
        if problem is not None:
            return _envelope(400, problem)
        width, height = (int(p) for p in SIZE.fullmatch(body["size"]).groups())  # type: ignore[union-attr]
        prediction = Prediction(
            uuid.uuid4().hex, body["model"], self.images_made(body.get("max_images", 1), body.get("prompt")), width, height,
            bool(body.get("enable_base64_output")), fault=self.take_job_fault(),
        )
        with self.state_lock:
            self.predictions[prediction.id] = prediction
        self.bill(req)
        return _envelope(200, "", self._data(prediction, "processing"))

    def _check(self, body: Any) -> str | None:
        """The field rules of §3.3 and §1.4's pixel limits; the problem, or None."""
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return f"invalid parameter: {unknown[0]}"
        if body.get("model") not in MODELS:
            return f"model not found: {body.get('model')}"
        base, edit, sequential = MODELS[body["model"]]
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return "prompt is required"
        match = SIZE.fullmatch(str(body.get("size", "2048*2048")))
        if match is None:
            return "size must be WIDTH*HEIGHT"
        width, height = (int(p) for p in match.groups())
        if not MIN_PIXELS[base] <= width * height <= MAX_PIXELS_OF.get(base, MAX_PIXELS) or not 1 / 16 <= width / height <= 16:
            return f"size {width}*{height} is outside the model's limits"
        images = body.get("images")
        if edit != (images is not None):
            return "images is required by edit models and accepted only by them"
        if images is not None and not (
            isinstance(images, list) and 1 <= len(images) <= MAX_IMAGES and all(self._fetchable(u) for u in images)
        ):
            return f"images must be 1-{MAX_IMAGES} downloadable image URLs"
        max_images = body.get("max_images")
        if sequential != (max_images is not None):
            return "max_images is required by sequential models and accepted only by them"
        if max_images is not None and not (isinstance(max_images, int) and 1 <= max_images <= 15):
            return "max_images must be an integer in [1, 15]"
        if images and max_images and len(images) + max_images > 15:
            return "images + max_images must be at most 15"
        return None

    def _fetchable(self, url: Any) -> bool:
        """An uploaded file of this host, or a data URI ([3p], §3.3), holding an image."""
        if not isinstance(url, str):
            return False
        data = data_url_bytes(url) if url.startswith("data:") else self.stored_file(url)
        return data is not None and open_image(data) is not None

    def _prediction(self, req: Request) -> Response:
        with self.state_lock:
            prediction = self.predictions.get(req.match["id"])
        if prediction is None:
            return _envelope(404, "prediction not found")
        if self.tick(prediction):
            return _envelope(200, "", self._data(prediction, "processing"))
        if prediction.fault is not None:
            code = prediction.fault.code
            data = self._data(prediction, "failed")
            data.update(error=prediction.fault.message, **({"error_code": code} if code is not None else {}))
            return _envelope(200, "", data)
        with self.state_lock:
            if not prediction.outputs:
                prediction.outputs = [self._output(prediction) for _ in range(prediction.made)]
        data = self._data(prediction, self.success_status)
        data["outputs"] = list(prediction.outputs)
        return _envelope(200, "", data)

    def _output(self, prediction: Prediction) -> str:
        if prediction.base64_output:  # naked base64, no data-URI prefix (§6.2)
            return base64.b64encode(result_image(prediction.width, prediction.height)).decode("ascii")
        return self.result_url(prediction.width, prediction.height)

    def _data(self, prediction: Prediction, status: str) -> dict[str, Any]:
        return {
            "id": prediction.id, "model": prediction.model, "outputs": None, "status": status, "error": "",
            "urls": {"get": f"{self.url}/api/v1/model/prediction/{prediction.id}"},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    # -- uploads ----------------------------------------------------------------------------

    def _upload(self, req: Request) -> Response:
        if not req.headers.get("content-type", "").startswith("multipart/form-data"):
            return _envelope(400, "expected multipart/form-data with a file field")
        part = req.multipart().get("file")
        if part is None or open_image(part[1]) is None:
            return _envelope(400, "file must be an image")
        url = self.store_file(part[1])
        if self.upload_shape == "url":
            return Response(200, {"url": url})
        return _envelope(200, "", {"download_url": url, "filename": part[0], "size": len(part[1])})


def _envelope(code: int, message: str, data: Any = None) -> Response:
    """Atlas's ``{code, message, data}``; the HTTP status follows ``code``."""
    return Response(code, {"code": code, "message": message, "data": data})
