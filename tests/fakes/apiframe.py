"""An emulator of Apiframe's v2 image API (providers.md §4).

``POST /v2/images/generate`` checks ``X-API-Key``, rejects any key the OpenAPI schema does not
list (``additionalProperties: false`` at every level) and out-of-range values with 400
``{"error", "details": {"<json.path>": [msgs]}}``, charges a credit (402 when ``credits`` runs
out) and answers 202 ``{jobId, status: "QUEUED"}``. An ``Idempotency-Key`` it has seen replays
the original job with its current status and charges nothing (§4.1). ``GET /v2/jobs/{id}`` is
``QUEUED`` / ``PROCESSING`` for ``polls_until_done`` polls, then ``COMPLETED`` with ``result``
in the shape ``result_shape`` names (the OpenAPI file leaves it untyped, §4.3). ``POST
/v2/uploads`` (schema not in providers.md: designed here) takes multipart field ``file`` and
answers ``{"url"}`` or ``{"data": {"url"}}`` (``upload_shape``); ``image_input`` must name
http(s) URLs, and URLs on this server must be files it holds.

Faults, besides the base's: ``fail_next_job(code, message, after=0)`` (``code`` is the
terminal status, ``FAILED`` or ``CANCELLED``: Apiframe jobs carry an error string, no code),
``credits``, ``expire_results()`` also marks finished jobs ``expired`` (§4.3), and
``forget_jobs()`` purges every job with its idempotency key.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import HostEmulator, JobFault, Request, Response, is_int, timestamp

MODELS = ("seedream-3", "seedream-3.1", "seedream-4", "seedream-4.5", "seedream-5-lite", "seedream-5-pro")
TOP_KEYS = ("model", "prompt", "seedreamParams", "webhookUrl", "webhookEvents")
PARAM_KEYS = ("image_input", "aspect_ratio", "size", "resolution", "width", "height", "guidance_scale",
              "seed", "output_format", "use_pre_llm", "enhance_prompt")
WEBHOOK_EVENTS = ("progress", "completed", "failed")
MAX_IMAGE_INPUT = 14
SIDE_RANGE = (512, 4096)  # the OpenAPI file's bounds on width / height
CUSTOM_SIDE = (1024, 4096)  # the model pages': width / height count only with size "custom"
TIER_SIDES = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}
SIZES = {"seedream-4": ("1K", "2K", "4K", "custom"), "seedream-4.5": ("2K", "4K", "custom"),
         "seedream-5-lite": ("2K", "3K"), "seedream-5-pro": ("1K", "2K")}
DEFAULT_SIDE = 2048
MAX_KEY_CHARS = 255
CREDITS_PER_JOB = 1
RESULT_SHAPES = ("string", "list", "images", "image_objects")


@dataclass
class ApiframeJob:
    id: str
    body: dict[str, Any]
    fault: JobFault | None
    created_at: str
    polls: int = 0
    status: str = "QUEUED"
    result: Any = None
    error: str | None = None
    expired: bool = False
    completed_at: str | None = None


class ApiframeEmulator(HostEmulator):
    auth_header = "x-api-key"
    auth_scheme = "{key}"

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(api_key=api_key, clock=clock, polls_until_done=polls_until_done)
        self.result_shape = "string"
        self.upload_shape = "url"  # "url" | "data.url"
        self.credits: int | None = None  # None: unlimited
        self.jobs: dict[str, ApiframeJob] = {}
        self._by_key: dict[str, str] = {}
        self.api_route("submit", "POST", r"/v2/images/generate")(self._submit)
        self.api_route("job", "GET", r"/v2/jobs/(?P<id>[^/]+)")(self._job)
        self.api_route("upload", "POST", r"/v2/uploads")(self._upload)

    def expire_results(self) -> None:
        super().expire_results()
        with self.state_lock:
            for job in self.jobs.values():
                job.expired = job.status == "COMPLETED"

    def forget_jobs(self) -> None:
        """Every known job 404s, and its Idempotency-Key no longer replays it (purged)."""
        with self.state_lock:
            self.jobs.clear()
            self._by_key.clear()

    # -- handlers ---------------------------------------------------------------------------

    def denied(self, req: Request) -> Response | None:
        return None if self.authorized(req) else Response(401, {"error": "Invalid or missing API key"})

    def _submit(self, req: Request) -> Response:
        key = req.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= MAX_KEY_CHARS:
            return Response(400, {"error": "Validation failed",
                                  "details": {"Idempotency-Key": [f"must be 1 to {MAX_KEY_CHARS} characters"]}})
        with self.state_lock:
            if key in self._by_key:  # a replay: the original job, not billed again (§4.1)
                job = self.jobs[self._by_key[key]]
                return Response(202, {"jobId": job.id, "status": job.status})
            try:
                body = req.json
            except ValueError:
                return Response(400, {"error": "Invalid JSON body"})
            details = self._validate(body)
            if details:
                return Response(400, {"error": "Validation failed", "details": details})
            if self.credits is not None:
                if self.credits < CREDITS_PER_JOB:
                    return Response(402, {"error": "Insufficient credits", "creditsRequired": CREDITS_PER_JOB,
                                          "creditsAvailable": self.credits})
                self.credits -= CREDITS_PER_JOB
            job = ApiframeJob(str(uuid.uuid4()), body, self.take_job_fault(), timestamp())
            self.jobs[job.id] = job
            if key is not None:
                self._by_key[key] = job.id
            self.bill(req)
        return Response(202, {"jobId": job.id, "status": job.status})

    def _job(self, req: Request) -> Response:
        with self.state_lock:
            job = self.jobs.get(req.match["id"])
            if job is None:
                return Response(404, {"error": "Job not found"})
            if job.status in ("QUEUED", "PROCESSING"):
                self._advance(job)
            return Response(200, self._render(job))

    def _upload(self, req: Request) -> Response:
        if not req.headers.get("content-type", "").startswith("multipart/form-data"):
            return Response(400, {"error": "Expected multipart/form-data with a file field"})
        upload = req.multipart().get("file")
        if upload is None or not upload[1]:
            return Response(400, {"error": "Validation failed", "details": {"file": ["Required"]}})
        url = self.store_file(upload[1])
        return Response(201, {"url": url} if self.upload_shape == "url" else {"data": {"url": url}})

    # -- jobs -------------------------------------------------------------------------------

    def _advance(self, job: ApiframeJob) -> None:
        if self.tick(job):
            job.status = "QUEUED" if job.polls == 1 else "PROCESSING"
            return
        job.completed_at = timestamp()
        if job.fault is not None:
            job.status = job.fault.code if job.fault.code in ("FAILED", "CANCELLED") else "FAILED"
            job.error = job.fault.message
            return
        params = job.body.get("seedreamParams") or {}
        fmt = "png" if params.get("output_format") == "png" else "jpeg"
        url = self.result_url(*result_size(params), fmt)
        job.status = "COMPLETED"
        job.result = {"string": url, "list": [url], "images": {"images": [url]},
                      "image_objects": {"images": [{"url": url}]}}[self.result_shape]

    def _render(self, job: ApiframeJob) -> dict[str, Any]:
        done = job.status not in ("QUEUED", "PROCESSING")
        return {
            "id": job.id, "status": job.status, "model": job.body.get("model"), "input": job.body,
            "progress": 100 if done else (0 if job.status == "QUEUED" else 50),
            "result": job.result, "error": job.error,
            "creditCost": CREDITS_PER_JOB if job.status == "COMPLETED" else None, "webhookStatus": None,
            "createdAt": job.created_at, "completedAt": job.completed_at, "expired": job.expired,
        }

    # -- validation (§4.2) ------------------------------------------------------------------

    def _validate(self, body: Any) -> dict[str, list[str]]:
        details: dict[str, list[str]] = defaultdict(list)
        if not isinstance(body, dict):
            details[""].append("Expected object")
            return dict(details)
        _unknown_keys(body, TOP_KEYS, "", details)
        if body.get("model") not in MODELS:
            details["model"].append(f"Invalid enum value. Expected {' | '.join(MODELS)}")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 2000:
            details["prompt"].append("Expected a string of 1 to 2000 characters")
        if "seedreamParams" in body:
            self._validate_params(body["seedreamParams"], details)
            size = body["seedreamParams"].get("size") if isinstance(body["seedreamParams"], dict) else None
            if size is not None and size not in SIZES.get(body.get("model"), ()):
                details["seedreamParams.size"].append(
                    f"Invalid size for {body.get('model')}. Expected {' | '.join(SIZES.get(body.get('model'), ()))}")
            if size == "custom" and not all(is_int(body["seedreamParams"].get(n), *CUSTOM_SIDE)
                                            for n in ("width", "height")):
                details["seedreamParams.width"].append("size custom needs width and height from 1024 to 4096")
        if "webhookUrl" in body and not _is_http_url(body["webhookUrl"]):
            details["webhookUrl"].append("Invalid url")
        events = body.get("webhookEvents", ["completed"])
        if not isinstance(events, list) or not events or any(e not in WEBHOOK_EVENTS for e in events):
            details["webhookEvents"].append(f"Expected a non-empty array of {' | '.join(WEBHOOK_EVENTS)}")
        return dict(details)

    def _validate_params(self, params: Any, details: dict[str, list[str]]) -> None:
        where = "seedreamParams"
        if not isinstance(params, dict):
            details[where].append("Expected object")
            return
        _unknown_keys(params, PARAM_KEYS, f"{where}.", details)
        for name in ("width", "height"):
            value = params.get(name, SIDE_RANGE[0])
            if not is_int(value, *SIDE_RANGE):
                details[f"{where}.{name}"].append(f"Expected an integer from {SIDE_RANGE[0]} to {SIDE_RANGE[1]}")
        for name in ("aspect_ratio", "size", "resolution"):
            if name in params and not isinstance(params[name], str):
                details[f"{where}.{name}"].append("Expected string")
        guidance = params.get("guidance_scale", 1)
        if not _is_number(guidance) or not 1 <= guidance <= 10:
            details[f"{where}.guidance_scale"].append("Expected a number from 1 to 10")
        if "seed" in params and not is_int(params["seed"]):
            details[f"{where}.seed"].append("Expected integer")
        if params.get("output_format", "jpg") not in ("jpg", "png"):
            details[f"{where}.output_format"].append("Invalid enum value. Expected 'jpg' | 'png'")
        for name in ("use_pre_llm", "enhance_prompt"):
            if name in params and not isinstance(params[name], bool):
                details[f"{where}.{name}"].append("Expected boolean")
        self._validate_image_input(params.get("image_input", []), details)

    def _validate_image_input(self, urls: Any, details: dict[str, list[str]]) -> None:
        where = "seedreamParams.image_input"
        if not isinstance(urls, list) or len(urls) > MAX_IMAGE_INPUT:
            details[where].append(f"Expected an array of at most {MAX_IMAGE_INPUT} URLs")
            return
        own = f"{self.url}/"
        for i, url in enumerate(urls):
            # A fetchable URL: data URIs are unconfirmed for this field (§7.5), so refused here.
            if not _is_http_url(url):
                details[f"{where}.{i}"].append("Invalid url")
            elif url.startswith(own) and self.stored_file(url) is None:
                details[f"{where}.{i}"].append("Image could not be fetched")


def result_size(params: dict[str, Any]) -> tuple[int, int]:
    """The pixels a job makes: ``width`` x ``height`` only with ``size: "custom"`` (the model pages:
    "only used when size is custom"), else the tier (default 2K) at ``aspect_ratio`` (default 1:1)."""
    size = params.get("size", "2K")
    if size == "custom":
        return params.get("width", DEFAULT_SIDE), params.get("height", DEFAULT_SIDE)
    side = TIER_SIDES.get(size, DEFAULT_SIDE)
    ratio = params.get("aspect_ratio", "1:1")
    rw, rh = (int(p) for p in ratio.split(":")) if isinstance(ratio, str) and ":" in ratio else (1, 1)
    scale = (rw / rh) ** 0.5
    return round(side * scale / 16) * 16, round(side / scale / 16) * 16


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unknown_keys(obj: dict[str, Any], allowed: tuple[str, ...], prefix: str, details: dict[str, list[str]]) -> None:
    extra = [key for key in obj if key not in allowed]
    if extra:
        details[prefix.rstrip(".") or "(root)"].append(
            f"Unrecognized key(s) in object: {', '.join(repr(k) for k in extra)}")


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


__all__ = ["ApiframeEmulator"]
