"""An emulator of evolink.ai's Seedream task API and its file API (providers.md §2).

It speaks the newer documented form: ``size`` an aspect ratio (or ``auto``) plus ``quality``
1K|2K|4K, from which it picks the pixels itself, as the real backend does. A task stays
``processing`` for ``polls_until_done`` polls, then completes with ``results[]`` URLs. The file
API (``/api/v1/files/upload/base64``) is served on the same host as the task API, which is
where the provider looks for it whenever ``base_url`` is not evolink's own.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .server import HostEmulator, JobFault, Request, Response, open_image

MODELS = {  # host model id -> (max references, reference formats, reference ratio range, qualities)
    "doubao-seedream-4.0": (10, ("JPEG", "PNG"), (1 / 3, 3), ("1K", "2K", "4K")),
    "doubao-seedream-4.5": (14, ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"), (1 / 16, 16), ("2K", "4K")),
    # 5.0 Lite (its evolink page names the id; fields taken as 4.5's with quality 2K | 3K)
    "doubao-seedream-5.0-lite": (14, ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"), (1 / 16, 16), ("2K", "3K")),
}
SIZES = ("auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
QUALITY_SIDES = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}
PROMPT_PRIORITIES = {"doubao-seedream-4.0": ("standard", "fast"), "doubao-seedream-4.5": ("standard",),
                     "doubao-seedream-5.0-lite": ("standard",)}
# The documented fields (§2.2) plus ``seed``, which the provider sends when asked though no
# Seedream page lists it (unconfirmed). Anything else is refused, so a misspelt field shows.
FIELDS = frozenset({"model", "prompt", "n", "size", "quality", "prompt_priority", "image_urls", "callback_url", "seed"})
MAX_OUTPUTS_WITH_REFS = 15


def result_size(size: str, quality: str) -> tuple[int, int]:
    """The pixels this backend picks for a ratio + quality (multiples of 16)."""
    side = QUALITY_SIDES[quality]
    if size == "auto":
        return side, side
    w, h = (int(p) for p in size.split(":"))
    scale = math.sqrt(w / h)
    return round(side * scale / 16) * 16, round(side / scale / 16) * 16


@dataclass
class Task:
    id: str
    model: str
    made: int  # images the task will deliver
    width: int
    height: int
    created: int
    polls: int = 0
    fault: JobFault | None = None  # code: evolink's string code
    results: list[str] = field(default_factory=list)


class EvolinkEmulator(HostEmulator):
    """Faults, besides the base's: ``fail_next_job(code, message)`` makes the next task fail
    with that string code; ``forget_tasks()`` makes every known task 404 (expired);
    ``upload_shape`` picks where the file API puts the uploaded file's URL:
    ``"data.file_url"`` (the SDK's shape), ``"data.url"`` or ``"url"``."""

    counts_from_prompt = True  # a batch makes the count its prompt states, one if none (§7.10)

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(api_key=api_key, clock=clock, polls_until_done=polls_until_done)
        self.upload_shape = "data.file_url"
        self.tasks: dict[str, Task] = {}
        self.api_route("generate", "POST", r"/v1/images/generations")(self._generate)
        self.api_route("task", "GET", r"/v1/tasks/(?P<id>[^/]+)")(self._task)
        self.api_route("upload", "POST", r"/api/v1/files/upload/base64")(self._upload)

    def denied(self, req: Request) -> Response | None:
        if self.authorized(req):
            return None
        if req.route == "upload":  # the file API's envelope
            return Response(401, {"success": False, "code": 401, "msg": "Invalid API key"})
        return _error(401, "authentication_error", "Invalid or expired token")

    def forget_tasks(self) -> None:
        with self.state_lock:
            self.tasks.clear()

    # -- task API ---------------------------------------------------------------------------

    def _generate(self, req: Request) -> Response:
        try:
            body = req.json
        except ValueError:
            return _error(400, "invalid_request_error", "Request body is not JSON")
        problem = self._check(body)
        if problem is not None:
            return problem
        model = body["model"]
        refs = len(body.get("image_urls") or ())
        n = body.get("n", 1)
        width, height = result_size(body.get("size", "auto"), body.get("quality", "2K"))
        created = int(time.time())
        made = self.images_made(min(n, MAX_OUTPUTS_WITH_REFS - refs), body.get("prompt"))  # "the output count becomes 15 - refs" (§2.2)
        task = Task(f"task-unified-{created}-{uuid.uuid4().hex[:8]}", model, made, width, height, created,
                    fault=self.take_job_fault())
        with self.state_lock:
            self.tasks[task.id] = task
        self.bill(req)
        return Response(200, {
            "created": created, "id": task.id, "model": model, "object": "image.generation.task",
            "progress": 0, "status": "pending", "task_info": {"can_cancel": True, "estimated_time": 45},
            "type": "image",
            "usage": {"billing_rule": "per_call", "credits_reserved": 1.8 * n, "user_group": "default"},
        })

    def _check(self, body: Any) -> Response | None:
        """The documented field rules (§2.2): a 400 (or 404 for a model) naming the field."""
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "Request body must be a JSON object")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return _error(400, "invalid_request_error", f"Unknown parameter: {unknown[0]}", unknown[0])
        model = body.get("model")
        if model not in MODELS:
            return _error(404, "not_found_error", "Specified model not found", "model")
        max_refs, formats, (lo, hi), qualities = MODELS[model]
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt or len(prompt) > 2000:
            return _error(400, "invalid_request_error", "prompt must be 1-2000 characters", "prompt")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 15:
            return _error(400, "invalid_request_error", "n must be an integer in [1, 15]", "n")
        if body.get("size", "auto") not in SIZES:
            return _error(400, "invalid_request_error", f"size must be one of {', '.join(SIZES)}", "size")
        if body.get("quality", "2K") not in qualities:
            return _error(400, "invalid_request_error", f"quality must be one of {', '.join(qualities)}", "quality")
        if body.get("prompt_priority", "standard") not in PROMPT_PRIORITIES[model]:
            return _error(400, "invalid_request_error", "unsupported prompt_priority", "prompt_priority")
        if "seed" in body and not isinstance(body["seed"], int):
            return _error(400, "invalid_request_error", "seed must be an integer", "seed")
        urls = body.get("image_urls", [])
        if not isinstance(urls, list) or len(urls) > max_refs:
            return _error(400, "invalid_request_error", f"image_urls takes at most {max_refs} URLs", "image_urls")
        for i, url in enumerate(urls):
            data = self.stored_file(url) if isinstance(url, str) else None
            image = open_image(data) if data is not None else None
            if image is None:
                return _error(400, "invalid_request_error", f"image_urls[{i}] could not be downloaded as an image",
                              "image_urls")
            if image.format not in formats or not lo <= image.width / image.height <= hi:
                return _error(400, "invalid_request_error", f"image_urls[{i}] has an unsupported format or ratio",
                              "image_urls")
        return None

    def _task(self, req: Request) -> Response:
        with self.state_lock:
            task = self.tasks.get(req.match["id"])
        if task is None:
            return _error(404, "not_found_error", "Task not found or expired")
        head = {"created": task.created, "id": task.id, "model": task.model, "object": "image.generation.task",
                "type": "image"}
        if self.tick(task):
            return Response(200, {**head, "progress": 50, "status": "processing", "task_info": {"can_cancel": False}})
        if task.fault is not None:
            error = {"code": task.fault.code, "message": task.fault.message}
            return Response(200, {**head, "progress": 0, "status": "failed", "error": error})
        with self.state_lock:
            if not task.results:
                task.results = [self.result_url(task.width, task.height) for _ in range(task.made)]
        return Response(200, {**head, "progress": 100, "status": "completed", "results": list(task.results),
                              "task_info": {"can_cancel": False}})

    # -- file API ---------------------------------------------------------------------------

    def _upload(self, req: Request) -> Response:
        body = req.json if req.body else None
        payload = body.get("base64_data") if isinstance(body, dict) else None
        if not isinstance(payload, str):
            return Response(400, {"success": False, "code": 400, "msg": "base64_data is required"})
        try:  # raw base64 or a data URL (the SDK documents both)
            data = base64.b64decode(payload.split(",", 1)[-1], validate=True)
        except (ValueError, binascii.Error):
            return Response(400, {"success": False, "code": 400, "msg": "base64_data is not valid base64"})
        image = open_image(data)
        if image is None or image.format not in ("JPEG", "PNG", "GIF", "WEBP"):
            return Response(400, {"success": False, "code": 400, "msg": "unsupported file type"})
        url = self.store_file(data)
        if self.upload_shape == "url":
            return Response(200, {"success": True, "code": 200, "msg": "success", "url": url})
        key = self.upload_shape.split(".", 1)[1]
        return Response(200, {"success": True, "code": 200, "msg": "success", "data": {
            "file_id": url.rsplit("/", 1)[1], key: url, "file_size": len(data),
            "mime_type": Image.MIME[image.format], "expires_at": "2026-11-24T00:00:00Z",
        }})


def _error(status: int, type_: str, message: str, param: str | None = None) -> Response:
    """evolink's HTTP error envelope (§2.6): the int status repeated as ``code``."""
    return Response(status, {"error": {"code": status, "message": message, "type": type_, "param": param}})
