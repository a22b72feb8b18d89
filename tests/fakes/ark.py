"""An emulator of Ark's image API (BytePlus ModelArk or Volcengine Ark), providers.md §1.

``POST /api/v3/images/generations`` is synchronous: it checks the key, the model id (per
platform), the size rules of §1.4, the reference rules of §1.3 and the batch fields, makes
JPEGs of the size it was asked for and answers with ``data[]`` (URLs it serves itself, or
``b64_json``) and ``usage``. A JSON null counts as absent (``given``), as the official SDK
needs. Errors use Ark's envelope ``{"error": {"code", "message", "param", "type"}}`` with the
statuses of §1.7.

Switchable faults, besides the base's ``fail_next`` / ``break_next_result``:

* ``fail_next_job(code, message, status=None)``: the next request fails with that Ark code
  (at the code's documented status, or ``status=200`` for an error object in an HTTP 200);
* ``partial_failure(index, code)``: image ``index`` of the next batch fails inside an HTTP 200;
  a content-filter code lets the batch go on, ``InternalServiceError`` stops it (§1.5);
* ``batch_limit``: the model decides to make at most this many images (sequential generation
  makes "up to" ``max_images``).

The model reads a batch's size from the prompt (§7.10): with ``counts_from_prompt`` (on by
default) a sequential request makes as many images as the prompt states ("Generate 3 ...",
"3 images"), up to ``max_images``, and ONE image when the prompt states no count.

Seedream 5.0 Lite (``seedream-5-0-260128``) has 2K/3K and 3,686,400 to 10,404,496 pixels and
takes ``output_format`` png | jpeg; Seedream 5.0 Pro (``seedream-5-0-pro-260628``, BytePlus only)
has 1K/2K up to 4,194,304 pixels, at most 10 references, ``output_format``, and answers 400 to
ANY ``sequential_image_generation`` (even "disabled") or ``stream`` field.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakes.server import Emulator, Request, Response, make_jpeg, make_png, open_image, stated_count

MODELS = {
    "byteplus": {"seedream-4-0-250828": "4.0", "seedream-4-5-251128": "4.5", "seedream-5-0-260128": "5.0-lite",
                 "seedream-5-0-pro-260628": "5.0-pro"},
    "volcengine": {"doubao-seedream-4-0-250828": "4.0", "doubao-seedream-4-5-251128": "4.5",
                   "doubao-seedream-5-0-260128": "5.0-lite"},
}
KEYWORD_SIZES = {
    "4.0": {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    "4.5": {"2K": (2048, 2048), "4K": (4096, 4096)},
    "5.0-lite": {"2K": (2048, 2048), "3K": (3072, 3072)},
    "5.0-pro": {"1K": (1024, 1024), "2K": (2048, 2048)},
}
PIXEL_RANGE = {"4.0": (1280 * 720, 4096 * 4096), "4.5": (2560 * 1440, 4096 * 4096),
               "5.0-lite": (2560 * 1440, 10_404_496), "5.0-pro": (1280 * 720, 2048 * 2048)}
MAX_REFS_OF = {"5.0-pro": 10}
OUTPUT_FORMATS = {"5.0-lite": ("png", "jpeg"), "5.0-pro": ("png", "jpeg")}  # 4.x: JPEG, no field
NO_SEQUENTIAL = ("5.0-pro",)  # any sequential_image_generation / stream field: 400

DEFAULT_SIZE = (2048, 2048)
REF_FORMATS = ("jpeg", "png", "webp", "bmp", "tiff", "gif")
MAX_REFS = 14
MAX_IMAGES = 15
MAX_REF_BYTES = 10 * 1024 * 1024
MAX_REF_PIXELS = 6000 * 6000
SEED_RANGE = (-1, 2147483647)
ERROR_TYPES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               429: "TooManyRequests", 500: "InternalServerError", 200: "BadRequest"}
DATA_URL = re.compile(r"data:image/(?P<fmt>[^;,]+);base64,(?P<b64>.*)", re.S)


def status_for(code: str) -> int:
    """The HTTP status Ark answers a request-level error code with (§1.7)."""
    head = code.split(".", 1)[0]
    if head == "AuthenticationError":
        return 401
    if head in ("AccountOverdueError", "AccessDenied"):
        return 403
    if (head.startswith("InvalidEndpoint") and code != "InvalidEndpoint.ClosedEndpoint") or head == "ModelNotOpen":
        return 404
    if "RateLimitExceeded" in code or head in ("QuotaExceeded", "ServerOverloaded", "RequestBurstTooFast",
                                               "SetLimitExceeded", "InflightBatchsizeExceeded"):
        return 429
    if head == "InternalServiceError":
        return 500
    return 400


@functools.lru_cache(maxsize=32)
def _jpeg(width: int, height: int, shade: int) -> bytes:
    return make_jpeg(width, height, (40 + 50 * shade, 80, 200 - 40 * shade))


class Reject(Exception):
    """A request-level error the handler answers with."""

    def __init__(self, code: str, message: str, *, param: str = "", status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.status = status_for(code) if status is None else status


@dataclass(frozen=True)
class Job:
    """What one valid request asks for."""

    model: str
    width: int
    height: int
    images: int  # how many the request allows (1, max_images, or 15 - refs by default)
    response_format: str
    prompt: str = ""
    output_format: str = "jpeg"


class ArkEmulator(Emulator):
    def __init__(self, *, api_key: str = "test-key", clock: Any = None, platform: str = "byteplus"):
        super().__init__(clock)
        if platform not in MODELS:
            raise ValueError(f"platform must be one of {', '.join(MODELS)}")
        self.api_key = api_key
        self.platform = platform
        self.models: dict[str, str] = dict(MODELS[platform])  # model id -> "4.0" | "4.5"
        self.endpoints: dict[str, str] = {}  # inference endpoint "ep-..." -> model id
        self.batch_limit: int | None = None
        self.counts_from_prompt = True  # a batch makes the number the prompt states (1 if none)
        self._job_faults: list[Reject] = []
        self._image_faults: dict[int, tuple[str, str]] = {}
        self._billed: list[Request] = []  # requests answered with images (Ark bills per image delivered, §1.5)
        self.route("generate", "POST", r"/api/v3/images/generations")(self._generate)

    # -- the uniform emulator interface -----------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.url + "/api/v3"

    @property
    def submits(self) -> list[Request]:
        """Every generation request received (each one may make and bill images)."""
        return self.calls("generate")

    @property
    def billed(self) -> int:
        """Requests the emulator made (and billed) images for."""
        return len(self.billed_requests)

    @property
    def billed_requests(self) -> list[Request]:
        with self._lock:
            return list(self._billed)

    # -- faults -----------------------------------------------------------------------------

    def fail_next_job(self, code: str, message: str | None = None, *, status: int | None = None) -> None:
        """The next generation request fails with Ark ``code`` (``status=200``: in an HTTP 200 body)."""
        with self._lock:
            self._job_faults.append(Reject(code, message or f"emulated {code}", status=status))

    def partial_failure(self, index: int, code: str = "OutputImageSensitiveContentDetected",
                        message: str | None = None) -> None:
        """Image ``index`` (from 0) of the next batch comes back as ``data[index].error``."""
        text = message or "The request failed because the output image may contain sensitive information."
        with self._lock:
            self._image_faults[index] = (code, text)

    # -- the route --------------------------------------------------------------------------

    def _generate(self, req: Request) -> Response:
        request_id = uuid.uuid4().hex
        try:
            self._check_auth(req)
            body = given(self._json_body(req))
            with self._lock:
                fault = self._job_faults.pop(0) if self._job_faults else None
            if fault is not None:
                raise fault
            job = self._validate(body)
        except Reject as err:
            return self._error(err, request_id)
        with self._lock:
            faults, self._image_faults = self._image_faults, {}
        result = self._result(job, faults)
        with self._lock:
            if result["usage"]["generated_images"] > 0:
                self._billed.append(req)
        return Response(200, result, headers={"X-Request-Id": request_id})

    def _check_auth(self, req: Request) -> None:
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            raise Reject("AuthenticationError", "The API key or AK/SK in the request is missing or invalid.")

    @staticmethod
    def _json_body(req: Request) -> dict[str, Any]:
        if not req.headers.get("content-type", "").startswith("application/json"):
            raise Reject("InvalidParameter", "Content-Type must be application/json")
        try:
            body = req.json
        except ValueError:
            raise Reject("InvalidParameter", "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Reject("InvalidParameter", "The request body must be a JSON object")
        return body

    def _error(self, err: Reject, request_id: str) -> Response:
        envelope = {"error": {"code": err.code, "message": f"{err.message} Request ID: {request_id}",
                              "param": err.param, "type": ERROR_TYPES.get(err.status, "BadRequest")}}
        return Response(err.status, envelope, headers={"X-Request-Id": request_id})

    # -- validation (§1.2 - §1.4) -----------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> Job:
        model = self._model(body)
        family = self.models[model]
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Reject("MissingParameter", "The parameter `prompt` is required", param="prompt")
        width, height = self._size(body.get("size", f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"), family)
        refs = self._references(body.get("image"), MAX_REFS_OF.get(family, MAX_REFS))
        if family in NO_SEQUENTIAL:
            for field in ("sequential_image_generation", "sequential_image_generation_options", "stream"):
                if field in body:
                    raise Reject("InvalidParameter", f"The parameter `{field}` specified in the request is not "
                                 "valid: the model does not support it", param=field)
        images = self._batch(body, refs)
        self._scalars(body, family)
        output_format = body.get("output_format", "jpeg")
        if "output_format" in body and output_format not in OUTPUT_FORMATS.get(family, ()):
            raise Reject("InvalidParameter", f"The parameter `output_format` is not supported by this model "
                         f"or is not one of {OUTPUT_FORMATS.get(family, ())}", param="output_format")
        return Job(model, width, height, images, body.get("response_format", "url"), prompt, output_format)

    def _model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Reject("MissingParameter", "The parameter `model` is required", param="model")
        model = self.endpoints.get(model, model)
        if model not in self.models:
            raise Reject("InvalidEndpointOrModel.NotFound",
                         f"The model or endpoint {model} does not exist or you do not have access to it.")
        return model

    @staticmethod
    def _size(size: Any, family: str) -> tuple[int, int]:
        if not isinstance(size, str):
            raise Reject("InvalidParameter", "The parameter `size` must be a string", param="size")
        if size in KEYWORD_SIZES[family]:
            return KEYWORD_SIZES[family][size]
        m = re.fullmatch(r"(\d+)x(\d+)", size)
        if m is None:
            raise Reject("InvalidParameter", f"The parameter `size` specified in the request is not valid: {size}",
                         param="size")
        width, height = int(m[1]), int(m[2])
        lo, hi = PIXEL_RANGE[family]
        if not (width and height and lo <= width * height <= hi and 1 / 16 <= width / height <= 16):
            raise Reject("InvalidParameter",
                         f"The parameter `size` specified in the request is not valid: {size} must have "
                         f"[{lo}, {hi}] pixels and an aspect ratio in [1/16, 16]", param="size")
        return width, height

    @staticmethod
    def _references(image: Any, max_refs: int = MAX_REFS) -> int:
        """How many reference images ``image`` holds, each checked."""
        if image is None:
            return 0
        items = image if isinstance(image, list) else [image]
        if not items or not all(isinstance(i, str) for i in items):
            raise Reject("InvalidParameter", "The parameter `image` must be a string or an array of strings",
                         param="image")
        if len(items) > max_refs:
            raise Reject("InvalidParameter", f"At most {max_refs} reference images are supported", param="image")
        for item in items:
            _check_reference(item)
        return len(items)

    @staticmethod
    def _batch(body: dict[str, Any], refs: int) -> int:
        mode = body.get("sequential_image_generation", "disabled")
        options = body.get("sequential_image_generation_options")
        if mode not in ("auto", "disabled"):
            raise Reject("InvalidParameter", "sequential_image_generation must be auto or disabled",
                         param="sequential_image_generation")
        if mode == "disabled":
            return 1
        max_images = options.get("max_images") if isinstance(options, dict) else None
        if max_images is None:  # the documented default: up to 15 images, refs included
            return MAX_IMAGES - refs
        if not isinstance(max_images, int) or isinstance(max_images, bool) or not 1 <= max_images <= MAX_IMAGES:
            raise Reject("InvalidParameter", "max_images must be an integer in [1, 15]",
                         param="sequential_image_generation_options.max_images")
        if refs + max_images > MAX_IMAGES:
            raise Reject("InvalidParameter", "reference images + max_images must not exceed 15",
                         param="sequential_image_generation_options.max_images")
        return max_images

    @staticmethod
    def _scalars(body: dict[str, Any], family: str) -> None:
        if body.get("response_format", "url") not in ("url", "b64_json"):
            raise Reject("InvalidParameter", "response_format must be url or b64_json", param="response_format")
        if not isinstance(body.get("watermark", True), bool):
            raise Reject("InvalidParameter", "watermark must be a boolean", param="watermark")
        if body.get("stream"):
            raise Reject("InvalidParameter", "stream is not emulated", param="stream")
        seed = body.get("seed", -1)
        if not isinstance(seed, int) or isinstance(seed, bool) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            raise Reject("InvalidParameter", "seed must be an integer in [-1, 2147483647]", param="seed")
        options = body.get("optimize_prompt_options")
        mode = options.get("mode", "standard") if isinstance(options, dict) else "standard"
        if mode not in (("standard", "fast") if family == "4.0" else ("standard",)):
            raise Reject("InvalidParameter", f"optimize_prompt_options.mode {mode!r} is not supported by this model",
                         param="optimize_prompt_options.mode")

    # -- the response (§1.5) ----------------------------------------------------------------

    def _result(self, job: Job, faults: dict[int, tuple[str, str]]) -> dict[str, Any]:
        wanted = job.images if self.batch_limit is None else min(job.images, self.batch_limit)
        if self.counts_from_prompt and wanted > 1:  # the model takes the number from the prompt (§7.10)
            wanted = min(wanted, stated_count(job.prompt) or 1)
        data: list[dict[str, Any]] = []
        made = 0
        for index in range(wanted):
            if index in faults:
                code, message = faults[index]
                data.append({"error": {"code": code, "message": message}})
                if code == "InternalServiceError":  # the remaining images are not generated
                    break
                continue
            data.append(self._image(job, index))
            made += 1
        tokens = round(made * job.width * job.height / 256)
        return {
            "model": job.model,
            "created": int(self.clock.now().timestamp()) if self.clock is not None else int(time.time()),
            "data": data,
            "usage": {"generated_images": made, "output_tokens": tokens, "total_tokens": tokens},
        }

    def _image(self, job: Job, index: int) -> dict[str, Any]:
        width, height = self.wrong_size or (job.width, job.height)
        if job.output_format == "png":
            data, fmt = make_png(width, height, (40 + 50 * (index % 4), 80, 120)), "png"
        else:
            data, fmt = _jpeg(width, height, index % 4), "jpeg"
        size = f"{width}x{height}"
        if job.response_format == "b64_json":
            return {"b64_json": base64.b64encode(data).decode("ascii"), "size": size}
        return {"url": self.serve_result(data, fmt), "size": size}


def given(value: Any) -> Any:
    """``value`` with every JSON null dropped from its objects, nested ones included: Ark reads a
    null as "not given". The official SDK (byteplussdkarkruntime ``images.generate``) sends every
    key it knows, with null for each one the caller did not set, and the real host accepts that."""
    if isinstance(value, dict):
        return {key: given(item) for key, item in value.items() if item is not None}
    return value


def _check_reference(item: str) -> None:
    """Check one ``image`` entry (§1.3): a URL (not fetched) or a data URL within the input limits."""
    if item.startswith(("https://", "http://")):
        return
    m = DATA_URL.fullmatch(item)
    if m is None:
        raise Reject("InvalidParameter", "image must be a URL or data:image/<format>;base64,<data>", param="image")
    fmt = m["fmt"]
    if fmt != fmt.lower() or fmt not in REF_FORMATS:
        raise Reject("InvalidParameter", f"unsupported image format {fmt!r} (use a lowercase "
                     f"{'/'.join(REF_FORMATS)})", param="image")
    try:
        data = base64.b64decode(m["b64"], validate=True)
    except (ValueError, binascii.Error):
        raise Reject("InvalidParameter", "image data is not valid base64", param="image") from None
    if len(data) > MAX_REF_BYTES:
        raise Reject("InvalidParameter", "image must be at most 10 MB", param="image")
    image = open_image(data)
    if image is None:
        raise Reject("InvalidParameter", "image cannot be decoded", param="image")
    width, height = image.size
    if min(width, height) <= 14 or width * height > MAX_REF_PIXELS or not 1 / 16 <= width / height <= 16:
        raise Reject("InvalidParameter", f"image of {width}x{height} is outside the input limits", param="image")
