"""An emulator of fal's queue for Seedream (providers.md §5).

``POST /fal-ai/bytedance/seedream/{v4|v4.5}/{text-to-image|edit}`` checks ``Authorization: Key
<key>`` and the documented input rules (§5.2: ``image_size`` total pixels 960²–4096² for
text-to-image and 1024–4096 a side for edit, ``num_images`` / ``max_images`` 1–6, ``image_urls``
required on edit, URLs or data URIs, more than 10 silently cut to the *last* 10, references +
outputs <= 15), answering 422 ``{"detail": [{loc, msg, type}]}``, and queues the request:
``{request_id, status_url, response_url, cancel_url}``. The queue lives under the app's first two
path segments only: ``/fal-ai/bytedance/requests/{id}/status`` goes ``IN_QUEUE`` → ``IN_PROGRESS``
for ``polls_until_done`` polls, then ``COMPLETED``; ``/fal-ai/bytedance/requests/{id}`` gives
``{images: [{url, width, height, content_type}], seed}``. The full model path has no queue
routes (the trap of §7.6). ``base_url`` is the server root, like ``https://queue.fal.run``.

Faults, besides the base's: ``fail_next_job(code, message, status=422)`` makes the next request
fail: its status reply says ``COMPLETED`` with ``error`` and ``error_type`` (where fal-client's
``Completed`` status reads them), and its result call answers that HTTP status with the
``detail`` list and an ``X-Fal-Error-Type`` header (§5.1; fal's "readiness-liveness" doc page:
"the response includes an error_type field and X-Fal-Error-Type header"). ``queue_urls`` =
``"given"`` | ``"foreign"``: the queue URLs submit returns name another host, as fal's do when
``base_url`` is a proxy (they always name queue.fal.run); that host must not be sent the key.
Submit always returns the queue URLs: fal-client reads ``status_url``, ``response_url`` and
``cancel_url`` from every submit reply as required keys.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import HostEmulator, JobFault, Request, Response, data_url_bytes, is_int

APP = "fal-ai/bytedance"
# Seedream 5.0: Lite under fal-ai/ (total pixels 2560x1440..3072x3072 on both endpoints, its page);
# Pro under bytedance/ with no fal-ai/ prefix (the report), one image per request here:
# num_images / max_images are refused (what assetbuild's table assumes, unconfirmed).
APPS = {"v4": APP, "v4.5": APP, "v5/lite": APP, "v5/pro": "bytedance/seedream"}
PIXELS = {"v5/lite": (2560 * 1440, 3072 * 3072), "v5/pro": (1280 * 720, 2048 * 2048)}
DEFAULT_SIZE = (2048, 2048)
# fal's enum sizes (pixel values are the emulator's choice; providers.md lists the names only).
SIZE_ENUMS = {"square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
              "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
              "auto": (2048, 2048), "auto_2K": (2048, 2048), "auto_4K": (4096, 4096)}
T2I_PIXELS = (960 * 960, 4096 * 4096)
EDIT_SIDE = (1024, 4096)
MAX_USED_REFS = 10
MAX_REFS_PLUS_OUTPUTS = 15


@dataclass
class FalJob:
    id: str
    version: str
    edit: bool
    input: dict[str, Any]
    size: tuple[int, int]
    fault: JobFault | None
    polls: int = 0
    status: str = "IN_QUEUE"
    output: dict[str, Any] | None = None


def _error(loc: list[Any], msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


class FalEmulator(HostEmulator):
    auth_scheme = "Key {key}"

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(api_key=api_key, clock=clock, polls_until_done=polls_until_done)
        self.queue_urls = "given"
        self.jobs: dict[str, FalJob] = {}
        self.api_route("submit", "POST",
                       r"/(?P<app>fal-ai/bytedance|bytedance)/seedream/(?P<version>v4|v4\.5|v5/lite|v5/pro)/"
                       r"(?P<kind>text-to-image|edit)")(self._submit)
        for app in dict.fromkeys(APPS.values()):
            self.api_route("status", "GET", rf"/{app}/requests/(?P<id>[^/]+)/status")(self._status)
            self.api_route("response", "GET", rf"/{app}/requests/(?P<id>[^/]+)")(self._response)

    # -- handlers ---------------------------------------------------------------------------

    def denied(self, req: Request) -> Response | None:
        return None if self.authorized(req) else Response(401, {"detail": "Invalid authorization credentials"})

    def _submit(self, req: Request) -> Response:
        try:
            body = req.json
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Response(422, {"detail": [_error([], "Input should be a valid dictionary", "dict_type")]})
        edit = req.match["kind"] == "edit"
        version = req.match["version"]
        if req.match["app"] != ("bytedance" if version == "v5/pro" else APP):
            return Response(404, {"detail": "Application not found"})
        errors, size = self._validate(body, edit, version)
        if errors:
            return Response(422, {"detail": errors})
        with self.state_lock:
            job = FalJob(uuid.uuid4().hex, req.match["version"], edit, body, size, self.take_job_fault())
            self.jobs[job.id] = job
            self.bill(req)
        return Response(200, {"request_id": job.id, "status": "IN_QUEUE", "queue_position": 0,
                              **self._queue_urls(job.id)})

    def _queue_urls(self, job_id: str) -> dict[str, str]:
        root = self.url if self.queue_urls == "given" else "http://queue.elsewhere.invalid"
        base = f"{root}/{APPS[self.jobs[job_id].version]}/requests/{job_id}"
        return {"status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"}

    def _status(self, req: Request) -> Response:
        with self.state_lock:
            job = self.jobs.get(req.match["id"])
            if job is None:
                return Response(404, {"detail": "Request not found"})
            if job.status != "COMPLETED":
                running = self.tick(job)
                job.status = "COMPLETED" if not running else "IN_QUEUE" if job.polls == 1 else "IN_PROGRESS"
            reply: dict[str, Any] = {"status": job.status, "request_id": job.id, "logs": None,
                                     "response_url": f"{self.url}/{APPS[job.version]}/requests/{job.id}"}
            if job.status == "IN_QUEUE":
                reply["queue_position"] = 0
            if job.status == "COMPLETED" and job.fault is not None:
                reply.update(error=job.fault.message, error_type=job.fault.code)
            return Response(200, reply)

    def _response(self, req: Request) -> Response:
        with self.state_lock:
            job = self.jobs.get(req.match["id"])
            if job is None:
                return Response(404, {"detail": "Request not found"})
            if job.status != "COMPLETED":
                return Response(400, {"detail": "Request is still in progress"})
            if job.fault is not None:  # a failed request surfaces here (§5.1)
                return Response(job.fault.status or 422,
                                {"detail": [_error([], job.fault.message, job.fault.code)]},
                                headers={"X-Fal-Retryable": "false", "X-Fal-Error-Type": str(job.fault.code)})
            if job.output is None:
                job.output = self._output(job)
            return Response(200, job.output)

    def _output(self, job: FalJob) -> dict[str, Any]:
        made = self.images_made(job.input.get("num_images", 1) * job.input.get("max_images", 1))
        width, height = job.size
        images = [{"url": self.result_url(width, height, "png"), "width": width, "height": height,
                   "content_type": "image/png"} for _ in range(made)]
        return {"images": images, "seed": job.input.get("seed", random.randint(0, 2**31 - 1))}

    # -- validation (§5.2) ------------------------------------------------------------------

    def _validate(self, body: dict[str, Any], edit: bool,
                  version: str = "v4") -> tuple[list[dict[str, Any]], tuple[int, int]]:
        errors: list[dict[str, Any]] = []
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            errors.append(_error(["prompt"], "Field required", "missing"))
        size = self._size(body.get("image_size", {"width": DEFAULT_SIZE[0], "height": DEFAULT_SIZE[1]}),
                          edit, errors, PIXELS.get(version))
        if version == "v5/pro":
            for name in ("num_images", "max_images"):
                if name in body:
                    errors.append(_error([name], "Extra inputs are not permitted", "extra_forbidden"))
        for name in ("num_images", "max_images"):
            if not is_int(body.get(name, 1), 1, 6):
                errors.append(_error([name], "Input should be an integer from 1 to 6"))
        if "seed" in body and not is_int(body["seed"], -(2**63), 2**63):
            errors.append(_error(["seed"], "Input should be a valid integer", "int_type"))
        for name in ("sync_mode", "enable_safety_checker"):
            if name in body and not isinstance(body[name], bool):
                errors.append(_error([name], "Input should be a valid boolean", "bool_type"))
        if body.get("enhance_prompt_mode", "standard") not in ("standard", "fast"):
            errors.append(_error(["enhance_prompt_mode"], "Input should be 'standard' or 'fast'", "enum"))
        refs = self._references(body.get("image_urls"), edit, errors)
        runs, per_run = body.get("num_images", 1), body.get("max_images", 1)
        if is_int(runs, 1, 6) and is_int(per_run, 1, 6) and refs + runs * per_run > MAX_REFS_PLUS_OUTPUTS:
            errors.append(_error(["image_urls"], "reference images + output images must be at most 15"))
        return errors, size

    @staticmethod
    def _size(value: Any, edit: bool, errors: list[dict[str, Any]],
              pixels: tuple[int, int] | None = None) -> tuple[int, int]:
        if isinstance(value, str) and value in SIZE_ENUMS:
            return SIZE_ENUMS[value]
        if not (isinstance(value, dict) and is_int(value.get("width"), 1, 16384)
                and is_int(value.get("height"), 1, 16384)):
            errors.append(_error(["image_size"], f"Input should be one of {', '.join(SIZE_ENUMS)} "
                                 "or {width, height}", "enum"))
            return DEFAULT_SIZE
        w, h = value["width"], value["height"]
        if pixels is not None:  # Seedream 5.0: one total-pixel range
            if not pixels[0] <= w * h <= pixels[1]:
                errors.append(_error(["image_size"], f"total pixels must be between {pixels[0]} and {pixels[1]}"))
            return w, h
        if edit and not (EDIT_SIDE[0] <= w <= EDIT_SIDE[1] and EDIT_SIDE[0] <= h <= EDIT_SIDE[1]):
            errors.append(_error(["image_size"], "width and height must be between 1024 and 4096"))
        if not edit and not T2I_PIXELS[0] <= w * h <= T2I_PIXELS[1]:
            errors.append(_error(["image_size"], "total pixels must be between 960x960 and 4096x4096"))
        return w, h

    @staticmethod
    def _references(urls: Any, edit: bool, errors: list[dict[str, Any]]) -> int:
        """How many references are used: more than 10 are cut to the last 10 (§5.2)."""
        if urls is None:
            if edit:
                errors.append(_error(["image_urls"], "Field required", "missing"))
            return 0
        if not isinstance(urls, list) or not urls:
            errors.append(_error(["image_urls"], "Input should be a non-empty list", "list_type"))
            return 0
        for i, url in enumerate(urls):
            if not _fetchable(url):
                errors.append(_error(["image_urls", i], "Input should be a URL or a base64 data URI",
                                     "image_load_error"))
        return min(len(urls), MAX_USED_REFS)


def _fetchable(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    return url.startswith(("http://", "https://")) or data_url_bytes(url) is not None


__all__ = ["FalEmulator"]
