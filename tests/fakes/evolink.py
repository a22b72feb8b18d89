"""An emulator of evolink.ai's Seedream task API and its file API (providers.md §2).

It speaks the newer documented form: ``size`` an aspect ratio (or ``auto``) plus ``quality``
1K|2K|4K, from which it picks the pixels itself, as the real backend does. A task stays
``processing`` for ``polls_until_done`` polls, then completes with ``results[]`` URLs served
from a separate CDN server. The file API (``/api/v1/files/upload/base64``) is served on the
same host as the task API, which is where the provider looks for it whenever ``base_url`` is
not evolink's own.

Also home of :class:`HostEmulator`, the parts the host emulators share (Atlas Cloud uses it).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from .server import Emulator, Request, Response, make_jpeg

MODELS = {  # host model id -> (max references, reference formats, reference ratio range, qualities)
    "doubao-seedream-4.0": (10, ("JPEG", "PNG"), (1 / 3, 3), ("1K", "2K", "4K")),
    "doubao-seedream-4.5": (14, ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"), (1 / 16, 16), ("2K", "4K")),
}
SIZES = ("auto", "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
QUALITY_SIDES = {"1K": 1024, "2K": 2048, "4K": 4096}
PROMPT_PRIORITIES = {"doubao-seedream-4.0": ("standard", "fast"), "doubao-seedream-4.5": ("standard",)}
# The documented fields (§2.2) plus ``seed``, which the provider sends when asked though no
# Seedream page lists it (unconfirmed). Anything else is refused, so a misspelt field shows.
FIELDS = frozenset({"model", "prompt", "n", "size", "quality", "prompt_priority", "image_urls", "callback_url", "seed"})
MAX_OUTPUTS_WITH_REFS = 15


class HostEmulator(Emulator):
    """What the host emulators share: the API key, the billable submits they accepted,
    uploaded reference files (kept by URL, as the host would fetch them), and a separate CDN
    server for result images, as on the real hosts, so ``requests`` and ``max_in_flight``
    count API traffic only (result downloads are not under the client's concurrency limit).
    ``serve_result``, ``break_next_result`` and ``expire_results`` act on the CDN."""

    def __init__(self, *, api_key: str, clock: Any = None):
        super().__init__(clock)
        self.api_key = api_key
        self.cdn = Emulator(clock)
        self.files: dict[str, bytes] = {}  # URL -> bytes of uploaded references
        self._submits: list[Request] = []
        self._host_lock = threading.Lock()
        self.route("file", "GET", r"/files/(?P<fid>[^/]+)")(self._serve_file)

    @property
    def submits(self) -> list[Request]:
        """The generation submits accepted (each one a job the host would bill)."""
        with self._host_lock:
            return list(self._submits)

    def accept_submit(self, req: Request) -> None:
        with self._host_lock:
            self._submits.append(req)

    def authorized(self, req: Request) -> bool:
        return req.headers.get("authorization") == f"Bearer {self.api_key}"

    def store_file(self, data: bytes) -> str:
        url = f"{self.url}/files/{uuid.uuid4().hex}"
        with self._host_lock:
            self.files[url] = data
        return url

    def stored_file(self, url: str) -> bytes | None:
        with self._host_lock:
            return self.files.get(url)

    def _serve_file(self, req: Request) -> Response:
        data = self.stored_file(f"{self.url}/files/{req.match['fid']}")
        return Response(200, data) if data is not None else Response(404, b"not found", content_type="text/plain")

    # -- results live on the CDN ------------------------------------------------------------

    def serve_result(self, data: bytes, ext: str = "png") -> str:
        return self.cdn.serve_result(data, ext)

    def break_next_result(self, kind: str) -> None:
        self.cdn.break_next_result(kind)

    def expire_results(self) -> None:
        self.cdn.expire_results()

    def start(self) -> "HostEmulator":
        super().start()
        self.cdn.start()
        return self

    def stop(self) -> None:
        self.cdn.stop()
        super().stop()


def open_image(data: bytes) -> Image.Image | None:
    """The decoded image, or None when ``data`` is not one."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return image


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
    failure: tuple[str, str] | None = None  # (code, message)
    results: list[str] = field(default_factory=list)


class EvolinkEmulator(HostEmulator):
    """``fail_next_job(code, message)`` makes the next task fail with that string code;
    ``short_next_job(made)`` makes the next task deliver only ``made`` images; ``forget_tasks()``
    makes every known task 404 (expired); ``upload_shape`` picks where the file API puts the
    uploaded file's URL: ``"data.file_url"`` (the SDK's shape), ``"data.url"`` or ``"url"``."""

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(api_key=api_key, clock=clock)
        self.polls_until_done = polls_until_done
        self.upload_shape = "data.file_url"
        self.tasks: dict[str, Task] = {}
        self._next_failures: list[tuple[str, str]] = []
        self._next_short: list[int] = []
        self.route("generate", "POST", r"/v1/images/generations")(self._generate)
        self.route("task", "GET", r"/v1/tasks/(?P<id>[^/]+)")(self._task)
        self.route("upload", "POST", r"/api/v1/files/upload/base64")(self._upload)

    @property
    def base_url(self) -> str:
        return self.url

    def fail_next_job(self, code: str, message: str) -> None:
        with self._host_lock:
            self._next_failures.append((code, message))

    def short_next_job(self, made: int) -> None:
        with self._host_lock:
            self._next_short.append(made)

    def forget_tasks(self) -> None:
        with self._host_lock:
            self.tasks.clear()

    # -- task API ---------------------------------------------------------------------------

    def _generate(self, req: Request) -> Response:
        if not self.authorized(req):
            return _error(401, "authentication_error", "Invalid or expired token")
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
        with self._host_lock:
            made = min(n, MAX_OUTPUTS_WITH_REFS - refs)  # "the output count becomes 15 - refs" (§2.2)
            if self._next_short:
                made = min(made, self._next_short.pop(0))
            failure = self._next_failures.pop(0) if self._next_failures else None
            task = Task(f"task-unified-{created}-{uuid.uuid4().hex[:8]}", model, made, width, height, created,
                        failure=failure)
            self.tasks[task.id] = task
        self.accept_submit(req)
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
        if not self.authorized(req):
            return _error(401, "authentication_error", "Invalid or expired token")
        with self._host_lock:
            task = self.tasks.get(req.match["id"])
            if task is not None:
                task.polls += 1
        if task is None:
            return _error(404, "not_found_error", "Task not found or expired")
        head = {"created": task.created, "id": task.id, "model": task.model, "object": "image.generation.task",
                "type": "image"}
        if task.polls <= self.polls_until_done:
            return Response(200, {**head, "progress": 50, "status": "processing", "task_info": {"can_cancel": False}})
        if task.failure is not None:
            code, message = task.failure
            error = {"code": code, "message": message}
            return Response(200, {**head, "progress": 0, "status": "failed", "error": error})
        with self._host_lock:
            if not task.results:
                task.results = [self.serve_result(make_jpeg(task.width, task.height), "jpeg") for _ in range(task.made)]
        return Response(200, {**head, "progress": 100, "status": "completed", "results": list(task.results),
                              "task_info": {"can_cancel": False}})

    # -- file API ---------------------------------------------------------------------------

    def _upload(self, req: Request) -> Response:
        if not self.authorized(req):
            return Response(401, {"success": False, "code": 401, "msg": "Invalid API key"})
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
