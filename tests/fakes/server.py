"""The base of every host emulator: a real threaded HTTP server on 127.0.0.1.

An emulator subclass registers routes with :meth:`Emulator.route`; each handler takes a
:class:`Request` and returns a :class:`Response`. The base gives it

* a log of every request (``requests``), with the fake-or-real clock time it arrived,
* the most API requests ever in flight at once (``max_in_flight``; result downloads, which go
  to a CDN outside the API's limits on the real hosts, are not counted),
* switchable faults queued per route name (``fail_next``): a status with body and headers
  (429 + Retry-After, 500, ...; the body may be a function of the request, to echo it), latency,
  a hang past the client's timeout, a connection dropped after the request was handled (and
  billed) with no answer (``drop``), or a body trickled out slowly (``trickle_s``),
* seeded random faults on every route (``chaos``, for the fault soak),
* result images it serves itself (``serve_result``, route ``result``) with download faults:
  expired (HTTP 403), truncated bytes, a body that is not an image, or an over-sized body.

:class:`HostEmulator` adds what the asynchronous hosts' emulators share: the uniform
interface, the key check, billed submits, jobs that run for ``polls_until_done`` polls, job
faults and short batches, and uploaded reference files served back by URL.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import email.parser
import email.policy
import functools
import io
import json
import re
import ssl
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar

from PIL import Image, UnidentifiedImageError


STATED_COUNT = re.compile(r"\b(\d{1,2})\s+(?:different\s+|distinct\s+|separate\s+)?(?:images|pictures|panels)\b",
                          re.I)


RESULT_FAULTS = ("expired", "truncated", "not_image", "huge", "redirect_loop")


def stated_count(prompt: str) -> int | None:
    """The number of images a prompt asks for ("Generate 3 different images."), if it says one."""
    match = STATED_COUNT.search(prompt)
    return int(match.group(1)) if match else None


def make_png(width: int, height: int, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_jpeg(width: int, height: int, color: tuple[int, int, int] = (40, 80, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="JPEG", quality=70)
    return buf.getvalue()


@functools.lru_cache(maxsize=64)
def result_image(width: int, height: int, fmt: str = "jpeg") -> bytes:
    """A generated image as a host returns it: PNG or JPEG."""
    return make_png(width, height) if fmt == "png" else make_jpeg(width, height)


def open_image(data: bytes) -> Image.Image | None:
    """The decoded image, or None when ``data`` is not one."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return image


DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+;base64,(?P<b64>.+)", re.S)


def data_url_bytes(url: str) -> bytes | None:
    """The bytes of a ``data:image/<fmt>;base64,...`` URL, or None when it is not one."""
    match = DATA_URL.fullmatch(url)
    if match is None:
        return None
    try:
        return base64.b64decode(match["b64"], validate=True)
    except (ValueError, binascii.Error):
        return None


def is_int(value: Any, lo: float = float("-inf"), hi: float = float("inf")) -> bool:
    """An integer (not a bool) within [lo, hi], as JSON-schema validators judge it."""
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def timestamp() -> str:
    """Now, as the hosts write it (ISO 8601, UTC)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # clock time of arrival
    route: str = ""
    match: dict[str, str] = field(default_factory=dict)
    took_s: float | None = None  # real seconds from arrival to the answer made (None: none made)

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def multipart(self) -> dict[str, tuple[str | None, bytes]]:
        """Form fields of a multipart/form-data body: name -> (filename, bytes)."""
        ctype = self.headers.get("content-type", "")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + self.body
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return fields


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    trickle_s: float = 0.0  # send the body one byte at a time, this long apart
    drop: bool = False  # close the connection without answering

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body), self.content_type or "application/octet-stream"
        if self.body is None:
            return b"", self.content_type or "application/json"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


Handler = Callable[[Request], Response]


@dataclass
class Fault:
    status: int | None = None  # respond with this status instead of handling
    body: Any = None  # or a function of the Request (to echo what it carried)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long first (latency; or past the client timeout)
    then_handle: bool = False  # after the delay, handle normally (pure latency)
    drop: bool = False  # handle normally (a submit is billed), then close the connection unanswered
    trickle_s: float = 0.0  # handle normally, then send the body a byte at a time, this far apart


@dataclass
class Chaos:
    """Seeded random faults on every request (the fault soak): on API routes ``p500`` HTTP 500,
    ``p429`` 429 with ``Retry-After``, ``pdrop`` the request handled (billed) and the connection
    dropped unanswered, ``ptimeout`` no answer for ``delay_s`` and then a 504 (never handled, so
    never billed); on result downloads the same, plus ``pcorrupt`` a truncated image. ``counts``
    says how many of each were injected, per route."""

    seed: int = 0
    p500: float = 0.10
    p429: float = 0.05
    pdrop: float = 0.02
    ptimeout: float = 0.02
    pcorrupt: float = 0.01
    delay_s: float = 1.0
    retry_after: str = "2"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def roll(self, route: str) -> str | None:
        """The fault for the next request to ``route``, or None."""
        with self._lock:
            x = self._rng.random()
            kinds = [("500", self.p500), ("429", self.p429), ("drop", self.pdrop), ("timeout", self.ptimeout)]
            if route == "result":
                kinds.append(("corrupt", self.pcorrupt))
            for kind, p in kinds:
                if x < p:
                    self.counts.setdefault(route, {}).setdefault(kind, 0)
                    self.counts[route][kind] += 1
                    return kind
                x -= p
            return None

    def fault(self, kind: str | None) -> Fault | None:
        if kind == "500":
            return Fault(500, {"error": {"code": "InternalServiceError", "message": "chaos 500"}})
        if kind == "429":
            return Fault(429, {"error": {"code": "RateLimitExceeded", "message": "chaos 429"}},
                         {"Retry-After": self.retry_after})
        if kind == "drop":
            return Fault(drop=True)
        if kind == "timeout":
            return Fault(504, {"error": "chaos gateway timeout"}, delay_s=self.delay_s)
        return None


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of 16 new connections (a build at
    # concurrency 16) overflows it, and each dropped SYN is retried only after a second,
    # which a real host never makes a client wait.
    request_queue_size = 128


class Emulator:
    """Subclass, then ``self.route("name", "POST", r"/v1/things/(?P<id>[^/]+)")(handler)``."""

    def __init__(self, clock: Any = None):
        self.clock = clock
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_s = 0.0  # every request takes at least this long (to observe concurrency)
        self._routes: list[tuple[str, str, re.Pattern[str], Callable[[Request], Response]]] = []
        self._faults: dict[str, list[Fault]] = {}
        self._results: dict[str, bytes] = {}
        self._result_faults: dict[str, str] = {}
        self._next_result_fault: list[str] = []
        self.wrong_size: tuple[int, int] | None = None  # results come at this size, whatever was asked
        self.chaos: Chaos | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scheme = "http"
        self.route("result", "GET", r"/_results/(?P<rid>[^/]+)")(self._serve_result)

    # -- configuration ----------------------------------------------------------------------

    def route(self, name: str, method: str, pattern: str) -> Callable[[Callable[[Request], Response]], Callable]:
        def register(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
            self._routes.append((name, method.upper(), re.compile(pattern + r"\Z"), handler))
            return handler

        return register

    def fail_next(self, route: str, *, status: int | None = None, body: Any = None,
                  headers: dict[str, str] | None = None, delay_s: float = 0.0, then_handle: bool = False,
                  drop: bool = False, trickle_s: float = 0.0, times: int = 1) -> None:
        """Queue ``times`` faults for the next requests to ``route``."""
        with self._lock:
            for _ in range(times):
                self._faults.setdefault(route, []).append(
                    Fault(status, body, dict(headers or {}), delay_s, then_handle, drop, trickle_s)
                )

    def clear_faults(self) -> None:
        """Forget every queued fault (a broken host mended)."""
        with self._lock:
            self._faults.clear()
            self._result_faults.clear()
            self._next_result_fault.clear()

    def break_next_result(self, kind: str) -> None:
        """The next result served is broken: 'expired' (403), 'truncated', 'not_image', 'huge',
        'redirect_loop' (a 302 to itself, every time it is fetched)."""
        assert kind in RESULT_FAULTS
        with self._lock:
            self._next_result_fault.append(kind)

    def break_results(self, kind: str | None) -> None:
        """Every result served from now on is broken the same way (None: none is)."""
        assert kind is None or kind in RESULT_FAULTS
        with self._lock:
            self._every_result_fault = kind

    def serve_result(self, data: bytes, ext: str = "png") -> str:
        """Store ``data`` and return the URL this server serves it at."""
        rid = f"{uuid.uuid4().hex}.{ext}"
        with self._lock:
            self._results[rid] = data
            if self._next_result_fault:
                self._result_faults[rid] = self._next_result_fault.pop(0)
            elif getattr(self, "_every_result_fault", None):
                self._result_faults[rid] = self._every_result_fault
        return f"{self.url}/_results/{rid}"

    def expire_results(self) -> None:
        with self._lock:
            for rid in self._results:
                self._result_faults[rid] = "expired"

    def calls(self, route: str) -> list[Request]:
        return [r for r in self.requests if r.route == route]

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def start(self, ssl_context: ssl.SSLContext | None = None) -> "Emulator":
        """Serve on a free port of 127.0.0.1; over TLS with ``ssl_context`` (a server context
        holding the test's certificate), for clients that speak only https."""
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms a request

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                emulator._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if ssl_context is not None:  # the handshake happens on the handler's thread, at its first read
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True,
                                                          do_handshake_on_connect=False)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- dispatch ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.monotonic() if self.clock is not None else time.monotonic()

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path, _, query = h.path.partition("?")
        req = Request(h.command, path, query, {k.lower(): v for k, v in h.headers.items()}, body, self._now())
        arrived = time.monotonic()
        handler = None
        for name, method, pattern, fn in self._routes:
            m = pattern.match(path)
            if m and method == h.command:
                req.route, req.match, handler = name, m.groupdict(), fn
                break
        counted = req.route != "result"  # result downloads go to a CDN, outside the API's limits
        with self._lock:
            self.requests.append(req)
            if counted:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            queue = self._faults.get(req.route) or []
            fault = queue.pop(0) if queue else None
            chaos = self.chaos.roll(req.route) if self.chaos is not None and fault is None else None
        corrupt = chaos == "corrupt"
        if chaos is not None and self.chaos is not None:
            fault = self.chaos.fault(chaos)
        try:
            if self.hold_s:
                time.sleep(self.hold_s)
            if fault and fault.delay_s:
                time.sleep(fault.delay_s)
            if fault and not (fault.then_handle or fault.drop or fault.trickle_s):
                body = fault.body(req) if callable(fault.body) else fault.body
                headers = {k: v for k, v in fault.headers.items() if k.lower() != "content-type"}
                ctype = next((v for k, v in fault.headers.items() if k.lower() == "content-type"), None)
                resp = Response(fault.status or 500, body, headers, content_type=ctype)
            elif handler is None:
                resp = Response(404, {"error": f"no route for {h.command} {path}"})
            else:
                resp = handler(req)
                if fault is not None:
                    resp.drop, resp.trickle_s = fault.drop, fault.trickle_s
                if corrupt and isinstance(resp.body, bytes) and resp.status == 200:
                    resp.body = resp.body[: max(len(resp.body) // 2, 1)]
        except Exception as exc:  # an emulator bug must show as a 500, not a hang
            resp = Response(500, {"error": f"emulator error: {exc!r}"})
        finally:
            if counted:
                with self._lock:
                    self.in_flight -= 1
        req.took_s = time.monotonic() - arrived
        if resp.drop:  # handled (and billed), but the client never hears back
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        data, ctype = resp.encode()
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            if resp.trickle_s:
                for i in range(len(data)):
                    h.wfile.write(data[i:i + 1])
                    h.wfile.flush()
                    time.sleep(resp.trickle_s)
            else:
                h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            h.close_connection = True

    def _serve_result(self, req: Request) -> Response:
        rid = req.match["rid"]
        with self._lock:
            data = self._results.get(rid)
            fault = self._result_faults.get(rid)
        if data is None or fault == "expired":
            return Response(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                            content_type="application/xml")
        ctype = "image/jpeg" if rid.endswith((".jpg", ".jpeg")) else "image/png"
        if fault == "redirect_loop":
            return Response(302, b"", headers={"Location": f"{self.url}/_results/{rid}"}, content_type="text/plain")
        if fault == "truncated":
            return Response(200, data[: max(len(data) // 2, 1)], content_type=ctype)
        if fault == "not_image":
            return Response(200, b"<html>Service temporarily unavailable</html>", content_type="text/html")
        if fault == "huge":
            return Response(200, b"\0" * (65 * 1024 * 1024), content_type=ctype)
        return Response(200, data, content_type=ctype)


@dataclass(frozen=True)
class JobFault:
    """How a job ends instead of succeeding: the host's code and message."""

    code: Any  # a string code, or Atlas's numeric error_code (or None)
    message: str
    status: int | None = None  # an HTTP status, for hosts that report failures that way (fal)


class HostEmulator(Emulator):
    """An asynchronous host: the uniform constructor, ``base_url`` and ``submits`` (the
    billable generation submits); API routes (``api_route``) behind the key check
    (``authorized`` by the class's ``auth_header`` / ``auth_scheme``, answered by ``denied``);
    jobs that run for ``polls_until_done`` polls (``tick``); queued job faults
    (``fail_next_job``); fewer images than asked (``batch_limit`` for every job,
    ``short_next_job`` for the next one); uploaded reference files, kept and served back by
    URL (``store_file``); and result images of a given size (``result_url``). Result images
    are served by the base, under route ``result`` (not counted in ``max_in_flight``)."""

    auth_header: ClassVar[str] = "authorization"
    auth_scheme: ClassVar[str] = "Bearer {key}"

    def __init__(self, *, api_key: str = "test-key", clock: Any = None, polls_until_done: int = 1):
        super().__init__(clock)
        self.api_key = api_key
        self.polls_until_done = polls_until_done
        self.batch_limit: int | None = None  # every job makes at most this many images
        self.files: dict[str, bytes] = {}  # URL -> bytes of uploaded references
        self.state_lock = threading.RLock()
        self._submits: list[Request] = []
        self._job_faults: list[JobFault | None] = []
        self._short: list[int] = []
        self.route("file", "GET", r"/files/(?P<fid>[^/]+)")(self._serve_file)

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def submits(self) -> list[Request]:
        """The billable generation submits received (idempotent replays are not billed)."""
        with self.state_lock:
            return list(self._submits)

    def bill(self, req: Request) -> None:
        with self.state_lock:
            self._submits.append(req)

    def authorized(self, req: Request) -> bool:
        return req.headers.get(self.auth_header) == self.auth_scheme.format(key=self.api_key)

    def denied(self, req: Request) -> Response | None:
        """The answer to a request the API turns away (the host's 401), or None to handle it."""
        return None if self.authorized(req) else Response(401, {"error": "invalid API key"})

    def api_route(self, name: str, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """:meth:`route` for the host's API: the handler sees only requests ``denied`` lets through."""
        def register(handler: Handler) -> Handler:
            self.route(name, method, pattern)(lambda req: self.denied(req) or handler(req))
            return handler

        return register

    # -- jobs -------------------------------------------------------------------------------

    def fail_next_job(self, code: Any, message: str | None = None, *, after: int = 0,
                      status: int | None = None) -> None:
        """The job created after ``after`` more successful ones fails with ``code``."""
        with self.state_lock:
            self._job_faults.extend([None] * after)
            self._job_faults.append(JobFault(code, message or str(code), status))

    def take_job_fault(self) -> JobFault | None:
        with self.state_lock:
            return self._job_faults.pop(0) if self._job_faults else None

    def short_next_job(self, made: int) -> None:
        """The next job to make its images makes at most ``made``."""
        with self.state_lock:
            self._short.append(made)

    # The model takes a batch's size from the prompt (providers.md §7.10): a batch whose prompt
    # states no count makes one image, whatever the batch field asks. On for the hosts whose docs
    # say so (evolink, Atlas) or whose batch is Seedream's sequential mode (Replicate).
    counts_from_prompt = False

    def images_made(self, asked: int, prompt: Any = None) -> int:
        """How many of ``asked`` images a job makes (``batch_limit``, ``short_next_job``, and the
        count the prompt states where ``counts_from_prompt``)."""
        with self.state_lock:
            made = asked if self.batch_limit is None else min(asked, self.batch_limit)
            if self.counts_from_prompt and made > 1 and isinstance(prompt, str):
                made = min(made, stated_count(prompt) or 1)
            return min(made, self._short.pop(0)) if self._short else made

    def tick(self, job: Any) -> bool:
        """Count one more poll of ``job`` (anything with ``polls``): whether it still runs."""
        with self.state_lock:
            job.polls += 1
            return job.polls <= self.polls_until_done

    def result_url(self, width: int, height: int, fmt: str = "jpeg") -> str:
        width, height = self.wrong_size or (width, height)
        return self.serve_result(result_image(width, height, fmt), "png" if fmt == "png" else "jpg")

    @property
    def billed(self) -> int:
        """Jobs the host billed (the fault soak's count; the same as ``submits`` here)."""
        return len(self.submits)

    @property
    def billed_requests(self) -> list[Request]:
        return self.submits

    # -- uploaded references ----------------------------------------------------------------

    def store_file(self, data: bytes) -> str:
        url = f"{self.url}/files/{uuid.uuid4().hex}"
        with self.state_lock:
            self.files[url] = data
        return url

    def stored_file(self, url: str) -> bytes | None:
        with self.state_lock:
            return self.files.get(url)

    def _serve_file(self, req: Request) -> Response:
        data = self.stored_file(f"{self.url}/files/{req.match['fid']}")
        return Response(200, data) if data is not None else Response(404, b"not found", content_type="text/plain")
