"""What every remote provider shares: one httpx client per provider with retries, backoff,
``Retry-After``, client-side concurrency and requests-per-minute limits, error mapping,
capped and deadlined downloads, key hygiene and redaction, and waits that Ctrl-C cuts short.
httpx exceptions stop here.

The retry policy keeps the first promise (never pay twice). A request is retried only where a
second copy cannot cost anything: a GET, an upload, a submit carrying an idempotency key, or a
billable submit the host cannot have started (the connection was refused or never opened, a
429, or a status the host documents as "not started", ``unstarted_statuses``). A billable
submit whose fate is unknown (the connection dropped after it was sent, a read timeout, any
other 5xx) is not retried: it is reported as "may have been billed", with the host's request
id where one is known, and carries ``submitted=True`` so the executor never falls back to a
second host for it.
"""

from __future__ import annotations

import email.utils
import enum
import json as json_module
import os
import random
import re
import ssl
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping, NamedTuple

import httpx

from ..clock import Clock, SystemClock
from ..errors import (
    Interrupted,
    ProviderError,
    ProviderRefused,
    ProviderRequestError,
    ProviderUnavailable,
    UserError,
)
from ..store.imageinfo import ImageDecodeError, ImageInfo, inspect_image
from ..store.redaction import redact_text, secret_forms  # one redactor for hosts and stores

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # ProviderConfig.max_download_mb's default
DOWNLOAD_DEADLINE_S = 300.0  # ProviderConfig.download_deadline_s's default
MAX_MESSAGE_CHARS = 300  # of a host's words in an error message (after redaction)
WAIT_SLICE_S = 0.1  # how often a clock without ``wait`` checks for Ctrl-C while sleeping
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-fal-request-id", "x-tt-logid")
MAX_RETRY_AFTER_S = 120.0
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
USER_AGENT = "assetbuild/0.1 (+https://pypi.org/project/assetbuild/)"


class HostError(NamedTuple):
    """How a provider reads an error body: the host's code, a message, whether it is a
    content-policy refusal, and what the host's code says of a failure reported inside a
    successful answer (``transient``: True, try later; False, the request is at fault; None,
    neither). What the error means is :func:`classify_error`'s to say."""

    code: str | None
    message: str
    refused: bool = False
    transient: bool | None = None


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
    code_text = None if code is None else one_line(_text(code), 80)
    message = one_line(_text(message or "")) or page_text(text) or httpx.codes.get_reason_phrase(status)
    return HostError(code_text, message, looks_refused(f"{code_text or ''} {message}"))


class Verdict(enum.Enum):
    """What a host's error means for the request that met it (:func:`classify_error`)."""

    RETRY = "retryable"  # the host's passing trouble, which cannot have billed: sent again after a wait
    BILLING_UNCERTAIN = "billing-uncertain"  # a billable request the host may have started: resent only under a key
    UNAVAILABLE = "unavailable"  # the host's trouble, reported at once: another host may take over
    REFUSED = "refused"  # a content-policy refusal: never retried, no fallback
    AUTH = "auth"  # the key is wrong or may not do this (HTTP 401, 403)
    QUOTA = "quota"  # no credit left (HTTP 402)
    REQUEST = "request"  # anything else the request got wrong

    @property
    def error(self) -> type[ProviderError]:
        """The exception this verdict raises: auth and quota are request errors the user fixes."""
        if self is Verdict.REFUSED:
            return ProviderRefused
        if self in (Verdict.AUTH, Verdict.QUOTA, Verdict.REQUEST):
            return ProviderRequestError
        return ProviderUnavailable


Where = Literal["http", "envelope", "job"]


def classify_error(err: HostError, where: Where = "http", status: Any = None, *, billable: bool = False,
                   unstarted: frozenset[int] = frozenset()) -> Verdict:
    """What a host's error means: the one place every host's errors are classed, whatever
    parser read them. ``where`` the error arrived:

    - ``"http"``, an answer's HTTP ``status`` (400 or more). A 429 or a 5xx is the host's
      trouble and is retried, except a 5xx answering a ``billable`` request, which the host may
      have started (and billed) unless it documents the status as not started (``unstarted``):
      HttpClient resends that only under an idempotency key.
      Any other status: a refusal when the host says so, else auth (401, 403), quota (402) or
      the request's fault.
    - ``"envelope"``, an error object inside a successful answer, whose numeric code (``status``,
      if any) is read like an HTTP status: a 429, a 5xx or a 5000-series code (WaveSpeed/Atlas,
      §6.3) is the host's trouble, as is a host code that says so (``err.transient``); anything
      else is the request's fault. Never retried.
    - ``"job"``, a job that ended failed: the host's trouble unless its code puts the fault on
      the request (``err.transient is False``). Never retried.

    A refusal outranks everything but an HTTP 429 or 5xx.
    """
    if where == "http":
        if status == 429 or status >= 500:
            started = status >= 500 and status not in unstarted
            return Verdict.BILLING_UNCERTAIN if billable and started else Verdict.RETRY
        if err.refused:
            return Verdict.REFUSED
        return {401: Verdict.AUTH, 403: Verdict.AUTH, 402: Verdict.QUOTA}.get(status, Verdict.REQUEST)
    if err.refused:
        return Verdict.REFUSED
    if where == "envelope":
        trouble = isinstance(status, int) and (status == 429 or status // 100 == 5 or status // 1000 == 5)
        return Verdict.UNAVAILABLE if trouble or err.transient else Verdict.REQUEST
    return Verdict.REQUEST if err.transient is False else Verdict.UNAVAILABLE


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


class BadAnswer(ProviderUnavailable):
    """An answer from the host that a retry or a rerun will not improve: a redirect loop, a
    malformed URL, a body or an image that does not decode after re-fetching. After a job was
    paid for it ends the job (the executor forgets it), so a rerun asks anew instead of
    failing the same way forever."""


def _text(value: Any) -> str:
    """``str(value)`` for anything a host sent, even an int too long for ``str``."""
    try:
        return str(value)
    except ValueError:  # an int of more than 4300 digits
        return f"<{type(value).__name__} too long to show>"


HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
HTML_TAG = re.compile(r"<[^>]*>")


def page_text(text: str) -> str:
    """A body's words for a message: an HTML error page (a proxy's, a CDN's) by its title,
    anything else as one line."""
    head = text.lstrip()[:200].lower()
    if head.startswith(("<!doctype html", "<html")) or "<html" in head:
        title = HTML_TITLE.search(text)
        words = title.group(1) if title else HTML_TAG.sub(" ", text)
        return f"an HTML page ({one_line(words, 200)})"
    return one_line(text)


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters: whitespace (newlines in HTML
    error pages) collapsed, the rest cut with an ellipsis. Redact before calling this."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pause(clock: Clock, interrupted: threading.Event | None, seconds: float) -> bool:
    """Sleep ``seconds`` on ``clock`` unless ``interrupted`` is set first; whether it was.
    A clock with ``wait(event, seconds)`` wakes at once; another is slept in short slices."""
    if interrupted is None:
        clock.sleep(seconds)
        return False
    if interrupted.is_set():
        return True
    wait = getattr(clock, "wait", None)
    if wait is not None:
        return bool(wait(interrupted, seconds))
    remaining = seconds
    while remaining > 0:
        step = min(remaining, WAIT_SLICE_S)
        clock.sleep(step)
        remaining -= step
        if interrupted.is_set():
            return True
    return interrupted.is_set()


class RateLimiter:
    """At most ``concurrency`` requests in flight and at most ``requests_per_minute`` request
    starts in any 60-second window. Shared by every thread using one provider. A wait for the
    window ends at once on Ctrl-C (``interrupted``), raising Interrupted."""

    def __init__(self, concurrency: int, requests_per_minute: int | None, clock: Clock,
                 interrupted: threading.Event | None = None):
        self._slots = threading.BoundedSemaphore(concurrency)
        self._rpm = requests_per_minute
        self._clock = clock
        self._interrupted = interrupted
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            self._wait_for_window()
            yield

    def _wait_for_window(self) -> None:
        while True:
            if self._interrupted is not None and self._interrupted.is_set():
                raise Interrupted("interrupted before the request was sent")
            if self._rpm is None:
                return
            with self._lock:
                now = self._clock.monotonic()
                while self._starts and now - self._starts[0] >= 60.0:
                    self._starts.popleft()
                if len(self._starts) < self._rpm:
                    self._starts.append(now)
                    return
                wait_s = 60.0 - (now - self._starts[0])
            pause(self._clock, self._interrupted, max(wait_s, 0.001))


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
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        try:
            seconds = (when - clock.now()).total_seconds()
        except TypeError:  # a date without a time zone
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _describe(exc: BaseException) -> str:
    """``RemoteProtocolError: Server disconnected ...``: an httpx exception in words."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_SSL_CONTEXTS: dict[tuple[str, str], ssl.SSLContext] = {}
_SSL_LOCK = threading.Lock()


def ssl_context() -> ssl.SSLContext:
    """The TLS settings httpx would make for each client (certifi's CAs, or SSL_CERT_FILE /
    SSL_CERT_DIR when set), made once per process and shared by every client: loading the CA
    bundle takes about 25 ms a time."""
    where = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    with _SSL_LOCK:
        context = _SSL_CONTEXTS.get(where)
        if context is None:
            context = _SSL_CONTEXTS[where] = httpx.create_ssl_context()
        return context


@dataclass
class _Tries:
    """One request's attempts: what it is called in messages, whether it may be sent again,
    and whether an attempt reached the host with its fate unknown (``maybe_billed``)."""

    label: str
    idempotent: bool
    billable: bool
    maybe_billed: bool = False


class HttpClient:
    """A provider's connection to its host.

    ``request`` returns a successful response or raises a ProviderError subclass. What is
    retried (exponential backoff with full jitter, honouring ``Retry-After``) is in the
    module's docstring: anything that cannot bill twice. ``billable`` (default: a POST) marks a
    request that may make the host start a paid job; ``idempotent`` (default: not a POST) one
    the host dedupes or that costs nothing twice (an upload, an Idempotency-Key submit).
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
        interrupted: threading.Event | None = None,
        unstarted_statuses: frozenset[int] = frozenset(),
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        download_deadline_s: float = DOWNLOAD_DEADLINE_S,
    ):
        self.provider = provider
        self._secret_forms = secret_forms(secret) if secret else ()
        self._clock = clock or SystemClock()
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._error_parser = error_parser
        self._rng = rng or random.Random()
        self._interrupted = interrupted
        self._unstarted = unstarted_statuses
        self._timeout_s = timeout_s
        self.max_download_bytes = max_download_bytes
        self.download_deadline_s = download_deadline_s
        self.attempts = 0  # HTTP attempts made (for tests and --verbose)
        self.retries = 0  # attempts after a first one failed (for the fault soak's figures)
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0))
        verify = ssl_context()
        self._api = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            transport=transport,
            verify=verify,
        )
        # Result URLs live on CDNs: never send them the API key.
        self._cdn = httpx.Client(
            headers={"User-Agent": USER_AGENT}, timeout=timeout, transport=transport, follow_redirects=True,
            verify=verify,
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
        billable: bool | None = None,
    ) -> httpx.Response:
        post = method.upper() == "POST"
        billable = post if billable is None else billable
        idempotent = (not post or not billable) if idempotent is None else idempotent
        return self._send(self._api, method, url, json=json, files=files, data=data, headers=headers,
                          idempotent=idempotent, billable=billable, limited=True)

    def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """The JSON of a successful answer, read with the key already redacted from it."""
        billable = kwargs.get("billable")
        billable = method.upper() == "POST" if billable is None else billable
        return self.read_json(self.request(method, url, **kwargs), f"{method} {self._path(url)}", billable)

    def read_json(self, response: httpx.Response, label: str, submitted: bool) -> Any:
        """A successful answer's JSON with the key redacted, or BadAnswer (``submitted``: it
        answered a billable request, so the host may have made the job anyway)."""
        try:
            return json_module.loads(self.redact(response.text))
        except (ValueError, RecursionError, LookupError) as exc:  # LookupError: an unknown charset
            raise BadAnswer(f"{label} returned a body that is not JSON{self._rid(response)}",
                            provider=self.provider, submitted=submitted) from exc

    def request_object(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """``request_json`` for a reply that must be a JSON object."""
        billable = kwargs.get("billable")
        billable = method.upper() == "POST" if billable is None else billable
        body = self.request_json(method, url, **kwargs)
        if not isinstance(body, dict):
            raise BadAnswer(f"{method} {self._path(url)} returned no JSON object", provider=self.provider,
                            submitted=billable)
        return body

    def download(self, url: str) -> bytes:
        """Fetch a result (host URLs expire) within ``max_download_bytes`` and an overall
        ``download_deadline_s``; retried like a GET. A data URL is decoded in place."""
        if url.startswith("data:"):
            return _decode_data_url(url, self.provider)
        deadline = self._clock.monotonic() + self.download_deadline_s
        response = self._send(self._cdn, "GET", url, idempotent=True, billable=False, limited=False,
                              max_bytes=self.max_download_bytes, deadline=deadline, what="result download")
        return response.content

    def redact(self, text: str) -> str:
        """``text`` without the key, in any of the forms it can take (:func:`secret_forms`)."""
        return redact_text(text, self._secret_forms)

    def close(self) -> None:
        self._api.close()
        self._cdn.close()

    # -- internals --------------------------------------------------------------------------

    def _path(self, url: str) -> str:
        return one_line(self.redact(url.split("?", 1)[0]), 200)

    def _rid(self, response: httpx.Response | None) -> str:
        """`` (request id X)`` for an answer that names one, else empty."""
        if response is None:
            return ""
        for name in REQUEST_ID_HEADERS:
            value = response.headers.get(name)
            if value:
                return f" (request id {one_line(self.redact(value), 100)})"
        return ""

    def _stop_if_interrupted(self, label: str, submitted: bool) -> None:
        if self._interrupted is not None and self._interrupted.is_set():
            raise Interrupted(f"{label} not sent: interrupted", provider=self.provider, submitted=submitted)

    def _send(
        self,
        client: httpx.Client,
        method: str,
        url: str,
        *,
        idempotent: bool,
        billable: bool,
        limited: bool,
        json: Any = None,
        files: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        deadline: float | None = None,
        what: str = "",
    ) -> httpx.Response:
        tries = _Tries(what or f"{method} {self._path(url)}", idempotent=idempotent, billable=billable)
        last: ProviderError | None = None
        for attempt in range(1, self._max_attempts + 1):
            self._stop_if_interrupted(tries.label, tries.maybe_billed)
            if attempt > 1:
                self.retries += 1
            outcome = self._try_once(tries, client, method, url, limited=limited, json=json, files=files,
                                     data=data, headers=headers, max_bytes=max_bytes, deadline=deadline)
            if isinstance(outcome, httpx.Response):
                return outcome
            last, wait_s = outcome
            if attempt == self._max_attempts:
                break
            if wait_s is None:
                wait_s = self._rng.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))
            if pause(self._clock, self._interrupted, wait_s):
                self._stop_if_interrupted(tries.label, tries.maybe_billed)
        assert last is not None
        raise type(last)(
            f"{last.detail} (after {self._max_attempts} attempts)",
            provider=self.provider, code=last.code, status=last.status, submitted=billable and tries.maybe_billed,
        )

    def _try_once(self, tries: _Tries, client: httpx.Client, method: str, url: str, *, limited: bool,
                  **request: Any) -> httpx.Response | tuple[ProviderError, float | None]:
        """One attempt: the answer, or the error to retry after (and how long the host asked
        to wait); an error no retry can help is raised."""
        try:
            response = self._attempt(client, method, url, limited=limited, label=tries.label, **request)
        except httpx.HTTPError as exc:
            return self._failed_transport(tries, exc), None
        if response.status_code < 400:
            return response
        return self._failed_answer(tries, response)

    def _failed_transport(self, tries: _Tries, exc: httpx.HTTPError) -> ProviderError:
        """The error to retry after a request that got no answer, or raised if none may follow."""
        label = tries.label
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)):
            # The request never reached the host: always safe to try again.
            return ProviderUnavailable(f"{label} could not connect ({self._say(exc)})", provider=self.provider)
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.TooManyRedirects, httpx.LocalProtocolError,
                            httpx.InvalidURL)):
            # A malformed URL, a redirect loop, a request httpx cannot send: no retry helps.
            raise BadAnswer(f"{label} failed: {self._say(exc)}", provider=self.provider,
                            submitted=tries.billable and tries.maybe_billed) from exc
        if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
                            httpx.DecodingError)):
            # Sent, and no usable answer came: the host may be making (and billing) the job.
            event = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
            tries.maybe_billed = tries.maybe_billed or tries.billable
            if not tries.idempotent:
                raise ProviderUnavailable(
                    f"{label} {event} after the request was sent ({self._say(exc)}); not retried: the "
                    "job may have been billed (no request id: the host sent no answer)",
                    provider=self.provider, submitted=True,
                ) from exc
            kind = BadAnswer if isinstance(exc, httpx.DecodingError) else ProviderUnavailable
            return kind(f"{label} {event} ({self._say(exc)})", provider=self.provider)
        # any other httpx failure: reported, never a traceback
        raise BadAnswer(f"{label} failed: {self._say(exc)}", provider=self.provider,
                        submitted=tries.billable and (tries.maybe_billed or not tries.idempotent)) from exc

    def _failed_answer(self, tries: _Tries, response: httpx.Response) -> tuple[ProviderError, float | None]:
        """The error to retry after an HTTP error answer (and the Retry-After wait of a 429),
        or raised if none may follow."""
        status = response.status_code
        err = self._parse_error(response)
        message = f"{tries.label} returned HTTP {status}: {err.message}"
        verdict = classify_error(err, "http", status, billable=tries.billable, unstarted=self._unstarted)
        if verdict is Verdict.BILLING_UNCERTAIN:
            tries.maybe_billed = True
            if not tries.idempotent:
                raise ProviderUnavailable(
                    f"{message}; not retried: the host may have started the job, which may have been "
                    f"billed{self._rid(response) or ' (no request id given)'}",
                    provider=self.provider, code=err.code, status=status, submitted=True)
        elif verdict is not Verdict.RETRY:
            raise verdict.error(message, provider=self.provider, code=err.code, status=status,
                                submitted=tries.billable and tries.maybe_billed)
        wait_s = None
        if status == 429:
            wait_s = parse_retry_after(response.headers.get("Retry-After"), self._clock)
        else:
            message += self._rid(response)
        return ProviderUnavailable(message, provider=self.provider, code=err.code, status=status), wait_s

    def _say(self, exc: BaseException) -> str:
        return one_line(self.redact(_describe(exc)), 200)

    def _attempt(self, client: httpx.Client, method: str, url: str, *, limited: bool, max_bytes: int | None,
                 deadline: float | None, label: str, **kwargs: Any) -> httpx.Response:
        self.attempts += 1
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if deadline is not None:
            left_s = deadline - self._clock.monotonic()
            if left_s <= 0:
                raise self._past_deadline(label)
            kwargs["timeout"] = httpx.Timeout(min(self._timeout_s, left_s), connect=min(self._timeout_s, 30.0))
        if limited:
            with self._limiter.slot():
                return self._read(client, method, url, max_bytes, deadline, label, **kwargs)
        return self._read(client, method, url, max_bytes, deadline, label, **kwargs)

    def _past_deadline(self, label: str) -> ProviderUnavailable:
        return ProviderUnavailable(f"{label} took longer than {self.download_deadline_s:g} s "
                                   "(download_deadline_s); a rerun fetches it again", provider=self.provider)

    def _read(self, client: httpx.Client, method: str, url: str, max_bytes: int | None, deadline: float | None,
              label: str, **kwargs: Any) -> httpx.Response:
        with client.stream(method, url, **kwargs) as response:
            if max_bytes is not None and response.status_code < 400:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ProviderRequestError(
                        f"{label} is {int(declared)} bytes, over the {max_bytes}-byte cap (max_download_mb)",
                        provider=self.provider)
                chunks: list[bytes] = []
                total = 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise ProviderRequestError(
                            f"{label} exceeded the {max_bytes}-byte cap (max_download_mb)", provider=self.provider)
                    if deadline is not None and self._clock.monotonic() > deadline:
                        raise self._past_deadline(label)
                    chunks.append(chunk)
                response._content = b"".join(chunks)  # httpx has no public setter for a streamed body
            else:
                response.read()
        return response

    def _parse_error(self, response: httpx.Response) -> HostError:
        """The host's error, read from its body with the key redacted first (so no cut can
        leave part of it)."""
        try:
            text = self.redact(response.text)
        except (LookupError, ValueError):
            text = ""
        try:
            body = json_module.loads(text)
        except (ValueError, RecursionError):
            body = None
        err = self._error_parser(response.status_code, body, text)
        return err._replace(message=one_line(self.redact(err.message)),
                            code=None if err.code is None else one_line(self.redact(err.code), 80))


def _decode_data_url(url: str, provider: str) -> bytes:
    import base64
    import binascii

    try:
        header, payload = url.split(",", 1)
        if ";base64" not in header:
            raise ValueError("not base64")
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise BadAnswer("returned a malformed data URL", provider=provider) from exc


def check_image(data: bytes, provider: str) -> ImageInfo:
    """What ``data`` is, or BadAnswer unless it decodes fully."""
    try:
        return inspect_image(data, verify=True)
    except ImageDecodeError as exc:
        raise BadAnswer(f"returned an image that does not decode ({_what_bytes(data)})", provider=provider) from exc


def _what_bytes(data: bytes) -> str:
    """What a result that is not an image looks like, for the message."""
    if not data:
        return "an empty body"
    head = data[:200].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return f"an HTML page of {len(data)} bytes"
    if head.startswith((b"{", b"[")):
        return f"JSON of {len(data)} bytes"
    if head.startswith(b"<"):
        return f"XML of {len(data)} bytes"
    return f"{len(data)} bytes, cut short or not an image"


def size_warning(info: ImageInfo, width: int, height: int) -> str | None:
    """The warning for an image of another size than asked: it is kept (it was paid for)."""
    if (info.width, info.height) == (width, height):
        return None
    return f"asked {width}x{height}, got {info.width}x{info.height}"


RATIO_TOLERANCE = 0.03  # |log(got ratio / asked ratio)|: a host's rounding to multiples of 16 stays within


def size_report(width: int, height: int, got: list[tuple[int, int]], exact: bool = True) -> str | None:
    """ONE warning for a request's images that differ from what was asked (they are kept: they
    were paid for): their size where the host was asked for exact pixels, else their aspect
    ratio (hosts that take a tier and a ratio and pick the pixels). None when all match."""
    import math

    def off(size: tuple[int, int]) -> bool:
        if exact:
            return size != (width, height)
        return abs(math.log((size[0] / size[1]) / (width / height))) > RATIO_TOLERANCE

    odd: dict[tuple[int, int], list[int]] = {}
    for number, size in enumerate(got, start=1):
        if off(size):
            odd.setdefault(size, []).append(number)
    if not odd:
        return None
    asked = f"{width}x{height}" if exact else f"{width}x{height} (aspect ratio {width / height:.3g})"
    if len(got) == 1:
        (w, h), = odd
        return f"asked {asked}, got {w}x{h}" + ("" if exact else f" (aspect ratio {w / h:.3g})")
    parts = [f"{w}x{h} (image{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))})"
             for (w, h), numbers in odd.items()]
    return f"asked {asked}, got {', '.join(parts)}"


def decode_b64_image(payload: str, provider: str) -> bytes:
    """Bytes from a naked base64 string (Ark b64_json, WaveSpeed/Atlas base64 output)."""
    import base64
    import binascii

    try:
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise BadAnswer("returned malformed base64 image data", provider=provider) from exc


def require_key(env: Mapping[str, str], var: str, provider: str) -> str:
    """The API key from the environment, stripped of surrounding whitespace (a newline pasted
    with it), or a UserError naming the variable: unset, or holding a character an HTTP header
    cannot carry (the character itself is not shown: it is part of a secret)."""
    key = env.get(var, "").strip()
    if not key:
        raise UserError(f"provider {provider}: set the environment variable {var} to your API key")
    for position, char in enumerate(key, 1):
        if not " " <= char <= "~":
            kind = "a control character" if char.isascii() else "a non-ASCII character"
            raise UserError(f"provider {provider}: the environment variable {var} contains a character HTTP "
                            f"headers cannot carry ({kind} at position {position}); set it to the key alone")
    return key


__all__ = [
    "BadAnswer",
    "HostError",
    "HttpClient",
    "RateLimiter",
    "Verdict",
    "Where",
    "check_image",
    "classify_error",
    "decode_b64_image",
    "default_error_parser",
    "host_error",
    "looks_refused",
    "one_line",
    "parse_retry_after",
    "pause",
    "redact_text",
    "require_key",
    "secret_forms",
    "size_report",
    "size_warning",
]
