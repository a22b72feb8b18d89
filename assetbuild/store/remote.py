"""The shared remote cache: ``[cache] remote = "s3://bucket/prefix"`` (or ``file:///path``),
read and written through fsspec (s3fs for S3 and S3-compatible stores).

Layout under the URL, content-addressed like the local cache::

    blobs/ab/<sha256>          an image, named by the sha256 of its bytes
    records/<fingerprint>.json  what one fingerprint's result left (a CacheRecord as JSON)

**Write-once.** A blob is written only if absent, and every writer of a name writes the same
bytes (its name is their hash), so racing writers cannot corrupt one. A record is written
after the blobs it names, so a record that can be read can be restored; it is written only
if absent, or to complete one that does not name its converted PNGs yet (same originals).
Two writers racing on one record each write a whole, valid record and one of them wins:
on S3 a single PUT is atomic (an object is seen whole or not at all, never half-written, and
S3 reads are strongly consistent), so no temp key is needed there; on ``file://`` each write
goes to a temp file renamed into place (``os.replace`` is atomic on one file system).
Conditional writes (``If-None-Match``) are not used: S3-compatible stores differ on them,
and every racing outcome above is already safe.

**Proven, not trusted.** Anyone who can write to the bucket can put anything in it, so a
record is acted on only when it proves what it claims (:func:`record_problem`): it carries
the fingerprint inputs it was made from, and they hash to the fingerprint it is stored
under (a record copied over another one's name, or replayed under another, fails); the
images it names are fetched by sha256 and kept only if their bytes hash to it. The
committed lock wins over any record (``Cache.result(locked=...)``). With a team secret in
``ASSETBUILD_REMOTE_SIGNING_KEY`` every record is signed when written (HMAC-SHA256 over
its fingerprint and body, as Turborepo signs its remote-cache artifacts) and a record that
is unsigned or wrongly signed is ignored with one warning. Blobs need no signature of
their own: each is named by its sha256, and is fetched only by a name that a proven (and,
with a key, signed) record or the lock gives, so a substituted blob fails its hash.

**Bounded.** Every S3 request has connect and read timeouts of ``timeout_s`` and is not
retried; small requests also have an overall deadline. Credentials come the standard AWS
way: env vars (``AWS_ACCESS_KEY_ID`` ...), a profile (``AWS_PROFILE``) or the platform's
own (an instance role); ``endpoint_url`` (or ``AWS_ENDPOINT_URL``) points at an
S3-compatible store. None of them is ever in the manifest or the lock.

fsspec, s3fs, botocore and aiohttp are imported only when the remote is first used (a no-op
build never is), and their exceptions stop here, re-raised as :class:`RemoteError`.
:class:`Remote` is how a build sees the store: the first failure turns it off for the rest
of the run with one warning, and the build goes on with the local cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, TypeVar
from urllib.parse import urlsplit

from ..errors import RemoteError, RemoteNotFound, UsageError
from .hashing import fingerprint_of, sha256_bytes
from .redaction import forms_of, redact_text

REMOTE_ENV = "ASSETBUILD_CACHE_REMOTE"
SIGNING_ENV = "ASSETBUILD_REMOTE_SIGNING_KEY"
CREDENTIAL_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # redacted from every error
_SHA256 = re.compile(r"[0-9a-f]{64}")
DEFAULT_TIMEOUT_S = 5.0
SCHEMES = ("s3", "file")
_TEMP = ".tmp-"
T = TypeVar("T")


def url_problem(url: str) -> str | None:
    """What is wrong with a remote URL, or None. Credentials never belong in it."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return "use s3://bucket/prefix or file:///absolute/path"
    if "@" in parts.netloc or parts.query or parts.password:
        return ("credentials and options do not belong in the URL; use the AWS environment variables "
                "or a profile (AWS_PROFILE)")
    if parts.scheme == "s3" and not parts.netloc:
        return "name a bucket: s3://bucket/prefix"
    if parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")):
        return "use an absolute path: file:///absolute/path"
    return None


def endpoint_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "use http(s)://host[:port] of an S3-compatible store"
    if "@" in parts.netloc:
        return "credentials do not belong in the manifest; use the AWS environment variables or a profile"
    return None


def record_signature(key: bytes, fingerprint: str, record: Mapping[str, Any]) -> str:
    """HMAC-SHA256 over the fingerprint a record is stored under and its body (all but
    ``sig``) as canonical JSON: moving a signed record to another name breaks it too."""
    body = json.dumps({k: v for k, v in record.items() if k != "sig"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hmac.new(key, f"{fingerprint}\n{body}".encode("utf-8"), hashlib.sha256).hexdigest()


def record_problem(fingerprint: str, record: Mapping[str, Any], key: bytes | None) -> str | None:
    """Why a record read off the remote must not be acted on, or None if it proves what it
    claims: signed with ``key`` (when a key is set), its inputs hashing to ``fingerprint``,
    and its images named by well-formed sha256s (their bytes are checked when fetched)."""
    try:
        return _record_problem(fingerprint, record, key)
    except (RecursionError, ValueError, TypeError):  # a body too odd even to hash
        return "it is malformed"


def _record_problem(fingerprint: str, record: Mapping[str, Any], key: bytes | None) -> str | None:
    if key is not None:
        sig = record.get("sig")
        if not isinstance(sig, str):
            return f"unsigned, and {SIGNING_ENV} is set"
        if not hmac.compare_digest(sig, record_signature(key, fingerprint, record)):
            return f"wrongly signed (not with this {SIGNING_ENV})"
    inputs = record.get("inputs")
    if not isinstance(inputs, dict):
        return "it carries no fingerprint inputs to prove its name (written by an older assetbuild?)"
    try:
        named = fingerprint_of(inputs)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError):
        return "its fingerprint inputs are malformed"
    if named != fingerprint:
        return f"its inputs hash to another fingerprint ({named[:12]}): a substituted record"
    for field_name in ("originals", "images"):
        shas = record.get(field_name)
        if shas is None and field_name == "images":
            continue
        if not isinstance(shas, list) or not shas or not all(isinstance(x, str) and _SHA256.fullmatch(x)
                                                             for x in shas):
            return f"its {field_name} are not a list of sha256s"
    return None


@dataclass(frozen=True)
class RemoteSpec:
    url: str  # s3://bucket/prefix or file:///path, without a trailing slash
    endpoint_url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


def remote_spec(table: Mapping[str, Any], env: Mapping[str, str]) -> RemoteSpec | None:
    """The remote a run uses: ``ASSETBUILD_CACHE_REMOTE`` if set (empty: none), else the
    manifest's ``[cache] remote`` (validated when the manifest was read)."""
    url = env[REMOTE_ENV] if REMOTE_ENV in env else table.get("remote")
    if not url:
        return None
    problem = url_problem(url)
    if problem is not None:
        raise UsageError(f"{REMOTE_ENV}={url!r}: not a remote cache URL; {problem}")
    endpoint = table.get("endpoint_url") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    return RemoteSpec(url.rstrip("/"), endpoint, float(table.get("timeout_s") or DEFAULT_TIMEOUT_S))


@dataclass
class Shared:
    """What one upload wrote."""

    record: bool = False
    blobs: int = 0
    bytes: int = 0


class RemoteStore:
    """The operations on the remote, each raising RemoteError on any failure. ``fs`` is the
    seam: an fsspec filesystem (by default made from the spec and the environment)."""

    def __init__(self, spec: RemoteSpec, env: Mapping[str, str], fs: Any = None):
        self.spec = spec
        self._env = env
        self._fs = fs
        self._mutex = threading.Lock()
        self._forms: tuple[str, ...] | None = None  # of the credentials, made on the first error
        parts = urlsplit(spec.url)
        self._root = (parts.netloc + parts.path).rstrip("/") if parts.scheme == "s3" else parts.path.rstrip("/")

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def signing_key(self) -> bytes | None:
        """The team secret records are signed with, if ``ASSETBUILD_REMOTE_SIGNING_KEY`` is set."""
        key = self._env.get(SIGNING_ENV)
        return key.encode("utf-8") if key else None

    # -- the filesystem ---------------------------------------------------------------------

    def _filesystem(self) -> Any:
        with self._mutex:
            if self._fs is None:
                self._fs = self._make()
            return self._fs

    def _make(self) -> Any:
        if self.spec.url.startswith("file://"):
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        import s3fs

        env = self._env
        kwargs: dict[str, Any] = {}
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            kwargs.update(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                          token=env.get("AWS_SESSION_TOKEN") or None)
        elif env.get("AWS_PROFILE"):
            kwargs["profile"] = env["AWS_PROFILE"]
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        t = self.spec.timeout_s
        fs = s3fs.S3FileSystem(
            endpoint_url=self.spec.endpoint_url, client_kwargs={"region_name": region} if region else {},
            config_kwargs={"connect_timeout": t, "read_timeout": t,
                           "retries": {"total_max_attempts": 1, "mode": "standard"}},
            skip_instance_cache=True, use_listings_cache=False, **kwargs,
        )
        fs.retries = 1  # s3fs retries some errors itself (5 tries by default): a down remote must fail fast
        return fs

    def _short(self, exc: BaseException) -> str:
        """An exception's text, without any credential (a store may echo the session token or
        the access key id into its error message)."""
        if self._forms is None:
            self._forms = forms_of(self._env.get(name) for name in (*CREDENTIAL_ENVS, SIGNING_ENV))
        return _short(exc, self._forms)

    def _key(self, *parts: str) -> str:
        return "/".join([self._root, *parts])

    def _call(self, what: str, fn: Callable[..., T], *args: Any, small: bool = True) -> T:
        """Run one filesystem call; anything it raises becomes a RemoteError (FileNotFoundError
        is the caller's to handle: it means absent). Small calls on an async filesystem also
        get an overall deadline, so nothing can hang a build."""
        kwargs: dict[str, Any] = {}
        try:
            fs = self._filesystem()
            if small and getattr(fs, "async_impl", False):
                kwargs["timeout"] = 2 * self.spec.timeout_s
            return fn(fs, *args, **kwargs)
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise RemoteError(f"remote cache {self.url}: access denied ({what}): {self._short(exc)}") from exc
        except ImportError as exc:
            raise RemoteError(f"remote cache {self.url}: {self._short(exc)}; reinstall assetbuild") from exc
        except Exception as exc:  # fsspec, s3fs, botocore and aiohttp raise many kinds
            kind = "timed out" if "timeout" in type(exc).__name__.lower() else "failed"
            raise RemoteError(f"remote cache {self.url}: {what} {kind} ({type(exc).__name__}: {self._short(exc)})") \
                from exc

    def _read(self, what: str, key: str, *, small: bool) -> bytes | None:
        def read(fs: Any, **kw: Any) -> bytes:
            if getattr(fs, "async_impl", False):
                # One GET (a missing key is its 404). s3fs would first ask the size (a HEAD, and a
                # LIST when the key is missing) to split reads over 50 MB: none of ours is.
                kw["max_concurrency"] = 1
            return fs.cat_file(key, **kw)

        try:
            return self._call(what, read, small=small)
        except FileNotFoundError:
            return None

    def _exists(self, what: str, key: str) -> bool:
        def look(fs: Any, **kw: Any) -> None:
            if self.spec.url.startswith("s3://"):  # one HEAD; s3fs's info adds a LIST when the key is missing
                from fsspec.asyn import sync

                bucket, name, _ = fs.split_path(key)
                sync(fs.loop, fs._call_s3, "head_object", Bucket=bucket, Key=name, **kw)
            else:
                fs.info(key, **kw)

        try:
            self._call(what, look)
            return True
        except FileNotFoundError:
            return False

    def _write(self, what: str, key: str, data: bytes, *, small: bool) -> None:
        def write(fs: Any, **kw: Any) -> None:
            if getattr(fs, "async_impl", False):
                fs.pipe_file(key, data, **kw)  # one PUT: atomic on S3
                return
            import uuid

            temp = f"{key}{_TEMP}{uuid.uuid4().hex}"
            fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)
            fs.pipe_file(temp, data)
            fs.mv(temp, key)  # a rename: atomic on one file system

        try:
            self._call(what, write, small=small)
        except FileNotFoundError as exc:
            raise RemoteError(f"remote cache {self.url}: {what} failed: {self._short(exc)}") from exc

    def _delete(self, what: str, key: str) -> None:
        try:
            self._call(what, lambda fs, **kw: fs.rm_file(key, **kw))
        except FileNotFoundError:
            pass

    def require(self) -> None:
        """Raise RemoteNotFound if the remote's bucket does not exist (a listing of a missing
        bucket would otherwise look like an empty cache), RemoteError if it cannot be asked.
        A ``file://`` folder is made by the first write: an absent one is an empty cache."""
        if not self.spec.url.startswith("s3://"):
            return
        bucket = self._root.split("/", 1)[0]
        try:
            self._call("checking the bucket", lambda fs, **kw: fs.info(bucket, **kw))
        except FileNotFoundError:
            raise RemoteNotFound(f"remote cache {self.url}: bucket {bucket!r} does not exist; check [cache] remote "
                                 f"(or {REMOTE_ENV}) and endpoint_url") from None

    # -- blobs and records ------------------------------------------------------------------

    def _blob_key(self, sha: str) -> str:
        return self._key("blobs", sha[:2], sha)

    def _record_key(self, fingerprint: str) -> str:
        return self._key("records", f"{fingerprint}.json")

    def has_blob(self, sha: str) -> bool:
        return self._exists(f"checking blob {sha[:12]}", self._blob_key(sha))

    def get_blob(self, sha: str) -> bytes | None:
        """The blob, or None if it is absent or its bytes do not hash to its name."""
        data = self._read(f"reading blob {sha[:12]}", self._blob_key(sha), small=False)
        return data if data is not None and sha256_bytes(data) == sha else None

    def read_blob(self, sha: str) -> bytes | None:
        """The blob's bytes as stored, unchecked (for verify)."""
        return self._read(f"reading blob {sha[:12]}", self._blob_key(sha), small=False)

    def put_blob(self, sha: str, data: bytes) -> bool:
        """Write a blob unless it is there already; whether it was written."""
        if self.has_blob(sha):
            return False
        self._write(f"writing blob {sha[:12]}", self._blob_key(sha), data, small=False)
        return True

    def delete_blob(self, sha: str) -> None:
        self._delete(f"deleting blob {sha[:12]}", self._blob_key(sha))

    def get_record(self, fingerprint: str) -> dict[str, Any] | None:
        """The record as stored (unchecked: see get_proven_record); None if it is absent or
        not a JSON object."""
        data = self._read(f"reading record {fingerprint[:12]}", self._record_key(fingerprint), small=True)
        return None if data is None else _record_of(data)

    def get_proven_record(self, fingerprint: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the record, None) if it proves itself (:func:`record_problem`), else (None, why);
        (None, None) if there is none."""
        data = self._read(f"reading record {fingerprint[:12]}", self._record_key(fingerprint), small=True)
        if data is None:
            return None, None
        record = _record_of(data)
        if record is None:
            return None, "it is not a JSON object"
        problem = record_problem(fingerprint, record, self.signing_key)
        return (record, None) if problem is None else (None, problem)

    def put_record(self, fingerprint: str, record: dict[str, Any]) -> None:
        key = self.signing_key
        record = {k: v for k, v in record.items() if k != "sig"}
        if key is not None:
            record["sig"] = record_signature(key, fingerprint, record)
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
        self._write(f"writing record {fingerprint[:12]}", self._record_key(fingerprint), body, small=True)

    def delete_record(self, fingerprint: str) -> None:
        self._delete(f"deleting record {fingerprint[:12]}", self._record_key(fingerprint))

    def share(self, fingerprint: str, record: dict[str, Any],
              local_blob: Callable[[str], bytes | None]) -> "Shared":
        """Upload a result: the blobs it names that the remote lacks (read with
        ``local_blob``), then the record, if the remote has none for this fingerprint or
        only one without the converted images (same originals). Says what it wrote."""
        shared = Shared()
        there = self.get_record(fingerprint)
        unsigned = self.signing_key is not None and "sig" not in there if there is not None else False
        if there is not None and (unsigned or record_problem(fingerprint, there, None) is not None) \
                and record_problem(fingerprint, record, None) is None:
            # A record whose inputs do not prove its name, or that is unsigned where records are
            # signed now, is replaced by a proven (signed) one. One signed with another key is
            # left alone: the key may be the one that is wrong.
            there = None
        ours_images = record.get("images")
        if there is not None and (there.get("images") is not None or ours_images is None
                                  or there.get("originals") != record.get("originals")):
            return shared
        for sha in dict.fromkeys([*(record.get("originals") or []), *(ours_images or [])]):
            data = local_blob(sha)
            if data is None:
                return shared  # the record would name a blob the remote may lack: keep it back
            if self.put_blob(sha, data):
                shared.blobs += 1
                shared.bytes += len(data)
        self.put_record(fingerprint, record)
        shared.record = True
        return shared

    # -- listings (the cache commands) ------------------------------------------------------

    def _walk(self, folder: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every file under ``folder``; temp files are skipped."""
        def find(fs: Any, **kw: Any) -> dict[str, Any]:
            return fs.find(self._key(folder), detail=True, **kw)

        try:
            found = self._call(f"listing {folder}", find, small=False)
        except FileNotFoundError:
            return
        for path, info in found.items():
            name = str(path).rsplit("/", 1)[-1]
            if _TEMP not in name:
                yield name, int(info.get("size") or 0)

    def blobs(self) -> dict[str, int]:
        """Every blob: sha256 -> bytes."""
        return dict(self._walk("blobs"))

    def records(self) -> list[str]:
        """The fingerprint of every record."""
        return sorted(name[: -len(".json")] for name, _ in self._walk("records") if name.endswith(".json"))


class Remote:
    """The remote as a build sees it: an operation that fails turns the remote off for the
    rest of the run and reports one warning (``warn``); the build goes on with the local
    cache. Each method then answers as if the remote had nothing."""

    def __init__(self, store: RemoteStore, warn: Callable[[str], None]):
        self.store = store
        self._warn = warn
        self._mutex = threading.Lock()
        self.failure: str | None = None
        self.ignored: dict[str, str] = {}  # fingerprint -> why its record was not acted on

    @property
    def off(self) -> bool:
        return self.failure is not None

    def _try(self, step: Callable[[], T], default: T) -> T:
        if self.failure is not None:
            return default
        try:
            return step()
        except RemoteError as exc:
            with self._mutex:
                first = self.failure is None
                if first:
                    self.failure = str(exc)
            if first:
                self._warn(f"{exc}; going on with the local cache only for the rest of this run")
            return default

    def get_record(self, fingerprint: str) -> dict[str, Any] | None:
        """The record if it proves itself; one that does not is ignored (see ``rejected``)."""
        record, problem = self._try(lambda: self.store.get_proven_record(fingerprint), (None, None))
        if problem is not None:
            self.rejected(fingerprint, problem)
        return record

    def rejected(self, fingerprint: str, why: str) -> None:
        """Note a record not acted on; the first one of a run is one warning."""
        with self._mutex:
            first = not self.ignored
            self.ignored[fingerprint] = why
        if first:
            self._warn(f"remote cache {self.store.url}: record {fingerprint[:12]} ignored: {why}; "
                       "`assetbuild cache verify --remote` lists every such record")

    def get_blob(self, sha: str) -> bytes | None:
        return self._try(lambda: self.store.get_blob(sha), None)

    def put_blob(self, sha: str, data: bytes) -> None:
        self._try(lambda: self.store.put_blob(sha, data), False)

    def share(self, fingerprint: str, record: dict[str, Any], local_blob: Callable[[str], bytes | None]) -> None:
        self._try(lambda: self.store.share(fingerprint, record, local_blob), Shared())


def _short(exc: BaseException, forms: tuple[str, ...], limit: int = 200) -> str:
    """The exception as one line of at most ``limit`` characters, redacted before the cut."""
    text = " ".join(redact_text(str(exc), forms).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _record_of(data: bytes) -> dict[str, Any] | None:
    """A record's JSON object, or None for anything else (not JSON, nested too deeply)."""
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None
