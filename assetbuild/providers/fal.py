"""fal.ai: Seedream through fal's queue (providers.md §5).

``POST {base_url}/fal-ai/bytedance/seedream/v4/{text-to-image|edit}`` (4.5: ``.../v4.5/...``)
answers ``{request_id, status_url, response_url}``; ``status_url`` is polled through
``IN_QUEUE`` → ``IN_PROGRESS`` → ``COMPLETED``, then ``response_url`` gives
``{images: [{url, width, height, content_type}], seed}``. A request that failed surfaces as an
error on that result call (§5.1). The queue URLs live under the app's first two path segments
(``fal-ai/bytedance/requests/{id}``), not under the full model path (§7.6): the URLs submit
returns are used (fal always returns them; its own client requires them), and built from those
two segments on ``base_url`` when they name another host, as they do behind a proxy (fal names
its own queue host), so the key goes only where it was configured to go.

What is sent (§5.2): ``prompt``; ``image_size`` as exact ``{width, height}``; ``num_images =
count`` with ``max_images = 1`` (``num_images`` runs separate generations of exactly one image
each, so exactly ``count`` images come back; ``max_images > 1`` would let the model decide how
many); ``seed`` when given; references as data URIs in ``image_urls`` on the ``edit`` endpoint.
fal takes at most 10 references and silently keeps the *last* 10 of more (§5.2), which would
change the picture without a word, so validate() refuses more than 10 instead.

Only ``COMPLETED`` ends a request on the status URL; any other status, documented (``IN_QUEUE``,
``IN_PROGRESS``) or not, is taken as still running (§7.11). An answer of the result call with an
HTTP status is the request's failure; one that failed in transit keeps the request for a rerun.

fal has no watermark option; its price is $0.03 (4.0, [doc]) and $0.04 (4.5, [3p]) per image.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError, UserError
from ._http import HostError, default_error_parser, host_error
from ._remote import Job, JobState, RemoteProvider, dig
from .base import GenerationRequest

T2I_PIXELS = (960 * 960, 4096 * 4096)  # text-to-image: total pixels (§5.2)
EDIT_SIDE = (1024, 4096)  # edit: each side (§5.2)
DONE = "COMPLETED"


def parse_fal_error(status: int, body: Any, text: str) -> HostError:
    """``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` (§5.2): the first item's
    ``type`` is the code; ``content_policy_violation`` is a refusal."""
    detail = body.get("detail") if isinstance(body, dict) else None
    items = [d for d in detail if isinstance(d, dict)] if isinstance(detail, list) else []
    if not items:
        return default_error_parser(status, body, text)
    return host_error(status, items[0].get("type") or None, "; ".join(_describe(item) for item in items), text)


def _describe(item: dict[str, Any]) -> str:
    loc = [str(part) for part in item.get("loc") or [] if part != "body"]
    msg = str(item.get("msg") or item.get("type") or "error")
    return f"{'.'.join(loc)}: {msg}" if loc else msg


class FalProvider(RemoteProvider):
    type = "fal"
    default_base_url = "https://queue.fal.run"
    default_key_env = "FAL_KEY"
    # The endpoints (/text-to-image, /edit), prices, the 10-reference and 6-image limits: the
    # models table. ``model_id`` is the app path ("/text-to-image" or "/edit" is appended per
    # request), which is also what a config override names.
    modeled_keys = ("prompt", "image_size", "num_images", "max_images", "image_urls", "seed")
    # supports_watermark stays False: §5.2 has no watermark input.
    error_parser = staticmethod(parse_fal_error)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Key {key}"}

    def validate(self, request: GenerationRequest) -> None:
        super().validate(request)
        w, h = request.width, request.height
        offer = self.offer(request.model)
        if offer is not None and offer.pixels is not None:  # 5.0 Lite: one total-pixel range, both endpoints
            lo, hi = offer.pixels
            if not lo <= w * h <= hi:
                raise UserError(f"{self.where(request)} makes {lo:,} to {hi:,} pixels with {request.model}; "
                                f"{w}x{h} is {w * h:,}")
            return
        if request.references:
            lo, hi = EDIT_SIDE
            if not (lo <= w <= hi and lo <= h <= hi):
                raise UserError(f"{self.where(request)} edits (with references) at {lo} to {hi} px a side; "
                                f"{w}x{h} is outside that")
        else:
            lo, hi = T2I_PIXELS
            if not lo <= w * h <= hi:
                raise UserError(f"{self.where(request)} makes 960x960 to 4096x4096 pixels in total; "
                                f"{w}x{h} is outside that")

    def model_id(self, model: str) -> str:
        app = super().model_id(model)
        return app if model in self.config.model_ids else app.rsplit("/", 1)[0]

    def endpoint(self, request: GenerationRequest) -> str:
        return f"{self.model_id(request.model)}/{'edit' if request.references else 'text-to-image'}"

    result_model_id = endpoint

    def request_body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "image_size": {"width": request.width, "height": request.height},
            "num_images": request.count,
            "max_images": 1,
        }
        if request.references:
            body["image_urls"] = [ref.data_url() for ref in request.references]
        if request.seed is not None:
            body["seed"] = request.seed
        return self.finish_body(body, request)

    def submit(self, request: GenerationRequest, ended: Job | None) -> Job:
        endpoint = self.endpoint(request)
        reply = self.http.request_object("POST", f"/{endpoint}", json=self.request_body(request))
        request_id = self.found(reply.get("request_id"), f"POST /{endpoint} returned no request_id", submitted=True)
        app = "/".join(endpoint.split("/")[:2])  # "fal-ai/bytedance" (§5.1)
        fallback = f"{self.base_url}/{app}/requests/{request_id}"
        return {
            "id": request_id,
            "status_url": self._queue_url(reply.get("status_url"), f"{fallback}/status"),
            "response_url": self._queue_url(reply.get("response_url"), fallback),
        }

    def _queue_url(self, given: Any, fallback: str) -> str:
        """The URL fal returned, if it is on the configured host (the key is sent to it)."""
        if isinstance(given, str) and given.startswith(f"{self.base_url}/"):
            return given
        return fallback

    def wait(self, job: Job) -> JobState:
        """``status_url`` polled to the end, then the result: its image URLs, or the error the
        result call gave (a failed request, §5.1)."""
        self.poll(lambda: self._status(job["status_url"]), job_id=job["id"])
        try:
            output = self.http.request_json("GET", job["response_url"])
        except ProviderError as exc:
            if exc.status is None or exc.status == 404:
                raise  # in transit (kept for a rerun), or unknown: a resumed one is submitted anew
            return JobState(error=exc)
        images = dig(output, "images")
        urls = [dig(item, "url") for item in images if isinstance(item, dict)] if isinstance(images, list) else []
        return JobState(outputs=tuple(url for url in urls if isinstance(url, str) and url))

    def _status(self, status_url: str) -> JobState:
        return JobState(running=dig(self.http.request_json("GET", status_url), "status") != DONE)


__all__ = ["FalProvider", "parse_fal_error"]
