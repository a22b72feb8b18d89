"""What every remote provider shares: one httpx client per provider with retries, backoff,
``Retry-After``, client-side concurrency and requests-per-minute limits, error mapping,
capped downloads, and key redaction. httpx exceptions stop here.
"""

from __future__ import annotations

import email.utils
import random
import threading
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import httpx

from ..clock import Clock, SystemClock
from ..errors import (
    ProviderError,
    ProviderRefused,
    ProviderRequestError,
    ProviderUnavailable,
)
from ..imageinfo import ImageDecodeError, inspect_image

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
MAX_RETRY_AFTER_S = 120.0
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
USER_AGENT = "assetbuild/0.1 (+https://pypi.org/project/assetbuild/)"


class HostError(NamedTuple):
    """How a provider reads an error body: the host's code, a message, and whether it is a
    content-policy refusal."""

    code: str | None
    message: str
    refused: bool = False


ErrorParser = Callable[[int, Any, str], HostError]

REFUSAL_WORDS = ("sensitive", "content_policy", "moderation", "nsfw", "safety")


def looks_refused(text: str) -> bool:
    """Whether an error's code and message say the host refused the content (a content-policy
    refusal) rather than failed: hosts that give no refusal code are read by their words."""
    lowered = text.lower()
    return any(word in lowered for word in REFUSAL_WORDS)


def host_error(status: int, code: Any, message: Any, text: str) -> HostError:
    """The HostError for the ``code`` and ``message`` a parser read from an error body: the
    code as text, the message falling back to the body's text and then the status phrase, and
    a refusal judged by their words (:func:`looks_refused`)."""
    code_text = None if code is None else str(code)
    message = str(message or "") or text.strip()[:300] or httpx.codes.get_reason_phrase(status)
    return HostError(code_text, message, looks_refused(f"{code_text or ''} {message}"))


def default_error_parser(status: int, body: Any, text: str) -> HostError:
    """Understands the common envelopes: {"error": {"code","message"}}, {"error": "..."},
    {"detail": ...}, {"message": ...}."""
    code: Any = None
    message: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code, message = err.get("code"), err.get("message") or err.get("type")
        elif isinstance(err, str):
            message = err
        elif "detail" in body:
            detail = body["detail"]
            if isinstance(detail, list) and detail and isinstance(detail[0], dict):
                message = "; ".join(str(d.get("msg", d)) for d in detail)
            else:
                message = detail
        else:
            message = body.get("message") or body.get("msg")
    return host_error(status, code, message, text)


class RateLimiter:
    """At most ``concurrency`` requests in flight and at most ``requests_per_minute`` request
    starts in any 60-second window. Shared by every thread using one provider."""

    def __init__(self, concurrency: int, requests_per_minute: int | None, clock: Clock):
        self._slots = threading.BoundedSemaphore(concurrency)
        self._rpm = requests_per_minute
        self._clock = clock
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            self._wait_for_window()
            yield

    def _wait_for_window(self) -> None:
        if self._rpm is None:
            return
        while True:
            with self._lock:
                now = self._clock.monotonic()
                while self._starts and now - self._starts[0] >= 60.0:
                    self._starts.popleft()
                if len(self._starts) < self._rpm:
                    self._starts.append(now)
                    return
                wait_s = 60.0 - (now - self._starts[0])
            self._clock.sleep(max(wait_s, 0.001))


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - clock.now()).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class HttpClient:
    """A provider's connection to its host.

    ``request`` returns a successful response or raises a ProviderError subclass; it retries
    429, 5xx, timeouts and connection errors with exponential backoff and full jitter, honouring
    ``Retry-After``. A POST that is not idempotent (no idempotency key) is not retried after a
    read timeout, because the host may already be making (and billing) the images.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secret: str | None,
        timeout_s: float,
        max_attempts: int,
        limiter: RateLimiter,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        error_parser: ErrorParser = default_error_parser,
        rng: random.Random | None = None,
    ):
        self.provider = provider
        self._secret = secret
        self._clock = clock or SystemClock()
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._error_parser = error_parser
        self._rng = rng or random.Random()
        self.attempts = 0  # HTTP attempts made (for tests and --verbose)
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0))
        self._api = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            transport=transport,
        )
        # Result URLs live on CDNs: never send them the API key.
        self._cdn = httpx.Client(
            headers={"User-Agent": USER_AGENT}, timeout=timeout, transport=transport, follow_redirects=True
        )

    # -- public -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        files: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE")
        return self._send(self._api, method, url, json=json, files=files, data=data,
                          headers=headers, idempotent=idempotent, limited=True)

    def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderUnavailable(
                f"{method} {self._path(url)} returned a body that is not JSON", provider=self.provider
            ) from exc

    def request_object(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """``request_json`` for a reply that must be a JSON object."""
        body = self.request_json(method, url, **kwargs)
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{method} {self._path(url)} returned no JSON object", provider=self.provider)
        return body

    def download(self, url: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
        """Fetch a result image now (host URLs expire) with a size cap; retried like requests."""
        if url.startswith("data:"):
            return _decode_data_url(url, self.provider)
        response = self._send(self._cdn, "GET", url, idempotent=True, limited=False, max_bytes=max_bytes,
                              what="result download")
        return response.content

    def download_image(self, url: str, *, width: int | None = None, height: int | None = None) -> bytes:
        """Download and check the bytes decode as a whole image (of ``width``x``height`` if given)."""
        data = self.download(url)
        check_image(data, self.provider, width=width, height=height)
        return data

    def redact(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "***")
        return text

    def close(self) -> None:
        self._api.close()
        self._cdn.close()

    # -- internals --------------------------------------------------------------------------

    def _path(self, url: str) -> str:
        return self.redact(url.split("?", 1)[0])

    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        *,
        idempotent: bool,
        limited: bool,
        json: Any = None,
        files: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        what: str = "",
    ) -> httpx.Response:
        label = what or f"{method} {self._path(url)}"
        last: ProviderError | None = None
        for attempt in range(1, self._max_attempts + 1):
            wait_s: float | None = None
            try:
                response = self._attempt(client, method, url, limited=limited, json=json, files=files,
                                         data=data, headers=headers, max_bytes=max_bytes, label=label)
            except httpx.TimeoutException as exc:
                sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
                last = ProviderUnavailable(f"{label} timed out", provider=self.provider)
                if sent and not idempotent:
                    raise ProviderUnavailable(
                        f"{label} timed out after the request was sent; not retried so the job is not paid for twice",
                        provider=self.provider,
                    ) from exc
            except httpx.TransportError as exc:
                last = ProviderUnavailable(
                    f"{label} failed: {self.redact(type(exc).__name__)} ({self.redact(str(exc))[:200]})",
                    provider=self.provider,
                )
            else:
                status = response.status_code
                if status < 400:
                    return response
                err = self._parse_error(response)
                message = f"{label} returned HTTP {status}: {self.redact(err.message)}"
                if status == 429 or status >= 500:
                    last = ProviderUnavailable(message, provider=self.provider, code=err.code, status=status)
                    wait_s = parse_retry_after(response.headers.get("Retry-After"), self._clock)
                elif err.refused:
                    raise ProviderRefused(message, provider=self.provider, code=err.code, status=status)
                else:
                    raise ProviderRequestError(message, provider=self.provider, code=err.code, status=status)
            if attempt == self._max_attempts:
                break
            if wait_s is None:
                wait_s = self._rng.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
            self._clock.sleep(wait_s)
        assert last is not None
        raise ProviderUnavailable(
            f"{last.args[0].split(': ', 1)[-1]} (after {self._max_attempts} attempts)",
            provider=self.provider, code=last.code, status=last.status,
        )

    def _attempt(self, client: httpx.Client, method: str, url: str, *, limited: bool, max_bytes: int | None,
                 label: str, **kwargs: Any) -> httpx.Response:
        self.attempts += 1
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if limited:
            with self._limiter.slot():
                return self._read(client, method, url, max_bytes, label, **kwargs)
        return self._read(client, method, url, max_bytes, label, **kwargs)

    def _read(self, client: httpx.Client, method: str, url: str, max_bytes: int | None, label: str,
              **kwargs: Any) -> httpx.Response:
        with client.stream(method, url, **kwargs) as response:
            if max_bytes is not None and response.status_code < 400:
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise ProviderRequestError(
                        f"{label} is {int(declared)} bytes, over the {max_bytes}-byte cap", provider=self.provider
                    )
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise ProviderRequestError(
                            f"{label} exceeded the {max_bytes}-byte cap", provider=self.provider
                        )
                    chunks.append(chunk)
                response._content = b"".join(chunks)  # httpx has no public setter for a streamed body
            else:
                response.read()
        return response

    def _parse_error(self, response: httpx.Response) -> HostError:
        text = response.text
        try:
            body = response.json()
        except ValueError:
            body = None
        return self._error_parser(response.status_code, body, text)


def _decode_data_url(url: str, provider: str) -> bytes:
    import base64
    import binascii

    try:
        header, payload = url.split(",", 1)
        if ";base64" not in header:
            raise ValueError("not base64")
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ProviderUnavailable("returned a malformed data URL", provider=provider) from exc


def check_image(data: bytes, provider: str, *, width: int | None = None, height: int | None = None) -> None:
    """Raise ProviderUnavailable unless ``data`` decodes fully (and has the promised size)."""
    try:
        info = inspect_image(data, verify=True)
    except ImageDecodeError as exc:
        raise ProviderUnavailable(f"returned an image that does not decode: {exc}", provider=provider) from exc
    if width is not None and height is not None and (info.width, info.height) != (width, height):
        raise ProviderUnavailable(
            f"returned a {info.width}x{info.height} image where {width}x{height} was promised", provider=provider
        )


def decode_b64_image(payload: str, provider: str) -> bytes:
    """Bytes from a naked base64 string (Ark b64_json, WaveSpeed/Atlas base64 output)."""
    import base64
    import binascii

    try:
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ProviderUnavailable("returned malformed base64 image data", provider=provider) from exc


def require_key(env: Mapping[str, str], var: str, provider: str) -> str:
    """The API key from the environment, or a clear UserError naming the variable."""
    from ..errors import UserError

    key = env.get(var, "")
    if not key:
        raise UserError(f"provider {provider}: set the environment variable {var} to your API key")
    return key


__all__ = [
    "HostError",
    "HttpClient",
    "RateLimiter",
    "check_image",
    "decode_b64_image",
    "default_error_parser",
    "host_error",
    "looks_refused",
    "parse_retry_after",
    "require_key",
]
