"""Leases in the shared remote cache: many machines, one bill.

Before a billable request for a fingerprint, a runner takes the lease
``leases/<fingerprint>.json`` under the remote URL with a **conditional create**; a runner
that finds a live lease does not pay, it waits for the holder's record and restores it.

What a lease says (JSON)::

    {"v": 1, "fingerprint": ..., "asset": "hero", "token": <uuid of this holding>,
     "holder": {"host": "ci-7", "pid": 4242, "started": "2026-12-06T05:31:59Z"},
     "expires": <unix seconds>, "ttl_s": 120,
     "job": {"key": <the provider's job key>, "id": <the host's job id>} | null}

The holder renews it (every ``ttl_s / 4``) while its job runs, records the host's job id
once the host has given one, and deletes it once the record is uploaded or the job failed.
A lease whose ``expires`` has passed belongs to a runner that died: another takes it over
with a **conditional overwrite** on the lease's ETag and, where the host can resume a job by
its id (the asynchronous hosts), resumes the dead holder's job instead of paying again.

The conditional writes, per remote:

* **S3** (and compatible stores): ``PutObject`` with ``If-None-Match: *`` to create and with
  ``If-Match: <etag>`` to renew or take over; ``DeleteObject`` with ``If-Match`` to release.
  A store that ignores the headers would let two runners both "create" a lease, so the first
  use probes it (create twice, overwrite with a wrong ETag: both must be refused); a store
  that fails the probe turns leases off for the run with one warning.
* **file://**: every change of a lease happens under an exclusive ``flock`` of a sidecar
  ``<fingerprint>.lock`` (the kernel drops it when its process dies, so a kill never leaves
  it held); a lease is written to a temp file and renamed into place, so a reader never sees
  half of one; a create links the temp file to the lease's name (``link`` fails if the name
  exists: an exclusive create, like ``O_EXCL``, of a whole file). The ETag is the sha256 of
  the lease's bytes (each holding has its own token and time, so no two versions share one).
  Without ``fcntl`` (Windows) leases are off.

Two runners never both hold a lease: a create succeeds for one of them, and an overwrite
only for the one whose ETag is still current. What is not guaranteed: clocks that disagree
by more than the TTL (a runner whose clock runs ahead sees live leases as expired), and a
holder stalled longer than the TTL (its lease is taken over; it learns so at its next
renewal, and the two may both pay where the host cannot resume the job).

Leases are read as hostile data (the remote is shared): a malformed lease counts as
expired, and a job id is used only if it looks like one and the provider's own job key
matches the lease's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, TypeVar

from ..clock import Clock
from ..errors import Interrupted, RemoteError
from .remote import RemoteStore

DEFAULT_TTL_S = 120.0
MIN_TTL_S = 5.0  # [cache] lease_ttl_s, checked by spec/models.py
MAX_TTL_S = 86_400.0
RENEWALS_PER_TTL = 4  # renewed every ttl/4: three renewals may fail before a live lease expires
POLL_START_S = 0.2  # a waiter's first look again; then x1.5 up to POLL_MAX_S
POLL_BACKOFF = 1.5
POLL_MAX_S = 3.0
FOLDER = "leases"
MAX_LEASE_BYTES = 4096
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")  # goes into a URL path at the host: no '/'
T = TypeVar("T")


@dataclass(frozen=True)
class LeaseSettings:
    """``[cache] leases`` (default on whenever there is a remote) and ``[cache] lease_ttl_s``."""

    enabled: bool = True
    ttl_s: float = DEFAULT_TTL_S


def lease_settings(table: Mapping[str, Any]) -> LeaseSettings:
    """The settings of the manifest's ``[cache]`` table (validated when it was read)."""
    enabled = table.get("leases")
    ttl = table.get("lease_ttl_s")
    return LeaseSettings(True if enabled is None else bool(enabled), float(ttl) if ttl else DEFAULT_TTL_S)


class Refused(Exception):
    """The remote does not honour conditional writes: leases are off for the run."""


# -- what a lease says --------------------------------------------------------------------------

@dataclass(frozen=True)
class Lease:
    """A lease as read from the remote (untrusted), with the ETag it was read at."""

    etag: str
    token: str
    expires: float  # unix seconds; 0 for a malformed lease (expired)
    holder: str  # "host pid N" for messages
    job_key: str | None = None
    job_id: str | None = None


def read_lease(data: bytes, etag: str) -> Lease:
    """The lease in ``data``; anything malformed reads as an expired lease with no job."""
    try:
        body = json.loads(data) if len(data) <= MAX_LEASE_BYTES else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Lease(etag, "", 0.0, "?")
    holder = body.get("holder") if isinstance(body.get("holder"), dict) else {}
    expires = body.get("expires")
    job = body.get("job") if isinstance(body.get("job"), dict) else {}
    key, job_id = job.get("key"), job.get("id")
    ok_job = isinstance(key, str) and len(key) <= 1000 and isinstance(job_id, str) and JOB_ID.fullmatch(job_id)
    return Lease(
        etag=etag, token=str(body.get("token") or ""),
        expires=float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else 0.0,
        holder=f"{str(holder.get('host') or '?')[:64]} pid {str(holder.get('pid') or '?')[:12]}",
        job_key=key if ok_job else None, job_id=job_id if ok_job else None,
    )


@dataclass
class Held:
    """A lease this runner holds. ``inherited``: the job of a dead holder it took over
    (key, id), for the provider to resume. ``lost``: another runner took it over (this one
    stalled past the TTL)."""

    fingerprint: str
    asset: str
    token: str
    etag: str
    body: dict[str, Any]
    inherited: tuple[str, str] | None = None
    lost: bool = False
    mutex: threading.Lock = field(default_factory=threading.Lock)


# -- the conditional writes, per remote ---------------------------------------------------------

class Backend(Protocol):
    def create(self, name: str, data: bytes) -> str | None: ...  # the new ETag, or None: it exists

    def read(self, name: str) -> tuple[bytes, str] | None: ...  # (bytes, ETag), or None: absent

    def replace(self, name: str, data: bytes, etag: str) -> str | None: ...  # None: not at that ETag

    def delete(self, name: str, etag: str) -> bool: ...  # whether it was deleted at that ETag

    def probe(self) -> None: ...  # raises Refused if conditional writes are not honoured


def _conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is S3's "a precondition did not hold"
    (412) or "a conditional write raced another" (409)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code") or "")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return True
        if isinstance(seen, FileExistsError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class S3Backend:
    """Conditional PutObject/DeleteObject through the remote's s3fs filesystem."""

    def __init__(self, store: RemoteStore):
        self._store = store

    def _where(self, name: str) -> tuple[Any, str, str]:
        fs = self._store._filesystem()
        bucket, key, _ = fs.split_path(self._store._key(FOLDER, name))
        return fs, bucket, key

    def _run(self, what: str, op: Callable[[Any, str, str], Any], name: str) -> Any:
        """One request, with the remote's deadline; a refused precondition is returned as
        the string "conflict", a missing key as None, anything else is a RemoteError."""
        from fsspec.asyn import sync

        def call(fs: Any, **kw: Any) -> Any:
            _, bucket, key = self._where(name)

            async def go() -> Any:
                try:
                    return await op(fs, bucket, key)
                except FileNotFoundError:
                    return None
                except Exception as exc:
                    if _conflict(exc):
                        return "conflict"
                    raise

            return sync(fs.loop, go, **kw)

        return self._store._call(f"{what} lease {name[:12]}", call)

    def create(self, name: str, data: bytes) -> str | None:
        async def op(fs: Any, bucket: str, key: str) -> Any:
            return await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")

        done = self._run("creating", op, name)
        return None if done == "conflict" or done is None else str(done.get("ETag") or "")

    def read(self, name: str) -> tuple[bytes, str] | None:
        async def op(fs: Any, bucket: str, key: str) -> Any:
            answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
            etag = str(answer.get("ETag") or "")
            if int(answer.get("ContentLength") or 0) > MAX_LEASE_BYTES:  # not a lease: reads as expired
                answer["Body"].close()
                return b"", etag
            async with answer["Body"] as body:
                return await body.read(), etag

        done = self._run("reading", op, name)
        return None if done in (None, "conflict") else done

    def replace(self, name: str, data: bytes, etag: str) -> str | None:
        async def op(fs: Any, bucket: str, key: str) -> Any:
            return await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=etag)

        done = self._run("renewing", op, name)
        return None if done == "conflict" or done is None else str(done.get("ETag") or "")

    def delete(self, name: str, etag: str) -> bool:
        async def op(fs: Any, bucket: str, key: str) -> Any:
            return await fs._call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)

        try:
            return self._run("releasing", op, name) not in (None, "conflict")
        except RemoteError:  # a store without conditional deletes: delete it if it is still this one
            found = self.read(name)
            if found is None or found[1] != etag:
                return False
            self._store._delete(f"releasing lease {name[:12]}", self._store._key(FOLDER, name))
            return True

    def probe(self) -> None:
        name = f".probe-{uuid.uuid4().hex}"
        first = self.create(name, b"{}")
        try:
            if first is None:
                raise Refused("a conditional create of a new key was refused")
            if self.create(name, b"{}") is not None:
                raise Refused("PutObject with If-None-Match: * overwrote an existing key")
            if self.replace(name, b"{}", '"0123456789abcdef0123456789abcdef"') is not None:
                raise Refused("PutObject with If-Match and a wrong ETag overwrote the key")
        finally:
            try:
                self._store._delete("deleting lease probe", self._store._key(FOLDER, name))
            except RemoteError:
                pass


class FileBackend:
    """Leases in a folder, changed under ``flock`` (see the module docstring)."""

    def __init__(self, store: RemoteStore):
        self._folder = store._key(FOLDER)
        self._url = store.url

    def _path(self, name: str) -> str:
        return os.path.join(self._folder, name)

    def _locked(self, name: str, step: Callable[[], T]) -> T:
        import fcntl

        try:
            os.makedirs(self._folder, exist_ok=True)
            fd = os.open(self._path(name) + ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RemoteError(f"remote cache {self._url}: cannot open lease {name[:12]} ({exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return step()
        except OSError as exc:
            raise RemoteError(f"remote cache {self._url}: lease {name[:12]} failed ({exc})") from exc
        finally:
            os.close(fd)  # closing drops the flock

    def _temp(self, name: str, data: bytes) -> str:
        temp = self._path(f".{name}.{uuid.uuid4().hex}.tmp")
        with open(temp, "wb") as fh:
            fh.write(data)
        return temp

    def _current(self, name: str) -> tuple[bytes, str] | None:
        try:
            with open(self._path(name), "rb") as fh:
                data = fh.read(MAX_LEASE_BYTES + 1)
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def create(self, name: str, data: bytes) -> str | None:
        def step() -> str | None:
            temp = self._temp(name, data)
            try:
                os.link(temp, self._path(name))  # fails if the lease exists
            except FileExistsError:
                return None
            finally:
                os.unlink(temp)
            return hashlib.sha256(data).hexdigest()

        return self._locked(name, step)

    def read(self, name: str) -> tuple[bytes, str] | None:
        try:
            return self._current(name)
        except OSError as exc:
            raise RemoteError(f"remote cache {self._url}: cannot read lease {name[:12]} ({exc})") from exc

    def replace(self, name: str, data: bytes, etag: str) -> str | None:
        def step() -> str | None:
            now = self._current(name)
            if now is None or now[1] != etag:
                return None
            os.replace(self._temp(name, data), self._path(name))
            return hashlib.sha256(data).hexdigest()

        return self._locked(name, step)

    def delete(self, name: str, etag: str) -> bool:
        def step() -> bool:
            now = self._current(name)
            if now is None or now[1] != etag:
                return False
            os.unlink(self._path(name))
            return True

        return self._locked(name, step)

    def probe(self) -> None:
        try:
            import fcntl  # noqa: F401
        except ImportError:
            raise Refused("this system has no flock (fcntl)") from None


def backend_for(store: RemoteStore) -> Backend:
    return FileBackend(store) if store.url.startswith("file://") else S3Backend(store)


# -- the policy ---------------------------------------------------------------------------------

def this_holder(clock: Clock) -> dict[str, Any]:
    return {"host": socket.gethostname()[:64], "pid": os.getpid(),
            "started": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")}


class Leases:
    """The leases of one build. ``is_off``: whether the remote has been turned off (its first
    failure); ``warn`` reports, once, why leases went off. ``backend`` is the seam (by default
    the remote's own kind)."""

    def __init__(self, store: RemoteStore, settings: LeaseSettings, clock: Clock, warn: Callable[[str], None], *,
                 is_off: Callable[[], bool] = lambda: False, backend: Backend | None = None):
        self.settings = settings
        self.clock = clock
        self._store = store
        self._warn = warn
        self._is_off = is_off
        self._backend = backend or backend_for(store)
        self._holder = this_holder(clock)
        self._mutex = threading.Lock()
        self._checked = False
        self.failure: str | None = None if settings.enabled else "off ([cache] leases = false)"
        self._held: dict[str, Held] = {}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.interrupted = threading.Event()
        self.counts = {"created": 0, "taken_over": 0, "waited": 0, "released": 0, "lost": 0}

    @property
    def off(self) -> bool:
        return self.failure is not None or self._is_off()

    @property
    def ttl_s(self) -> float:
        return self.settings.ttl_s

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _turn_off(self, why: str) -> None:
        with self._mutex:
            first = self.failure is None
            if first:
                self.failure = why
        if first:
            self._warn(f"leases off: {why}; two machines building this at once may both pay for an asset")

    def _ready(self) -> bool:
        """Whether leases can be used: on, and the remote honours conditional writes (probed
        once, on first use)."""
        if self.off:
            return False
        with self._mutex:
            if self._checked:
                return self.failure is None
            self._checked = True
            try:
                self._backend.probe()
                return True
            except Refused as exc:
                problem = f"remote cache {self._store.url} does not honour conditional writes ({exc})"
            except RemoteError as exc:
                problem = str(exc)
        self._turn_off(problem)
        return False

    def _body(self, fingerprint: str, asset: str, token: str, job: tuple[str, str] | None,
              expires: float | None = None) -> dict[str, Any]:
        return {"v": 1, "fingerprint": fingerprint, "asset": asset, "token": token, "holder": self._holder,
                "expires": round(self._now() + self.ttl_s if expires is None else expires, 3),
                "ttl_s": self.ttl_s, "job": None if job is None else {"key": job[0], "id": job[1]}}

    @staticmethod
    def _bytes(body: dict[str, Any]) -> bytes:
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def _try(self, step: Callable[[], T], default: T) -> T:
        """A lease operation; a remote failure turns leases off (one warning) and answers
        ``default``."""
        try:
            return step()
        except RemoteError as exc:
            self._turn_off(str(exc))
            return default

    def _take(self, fingerprint: str, asset: str) -> Held | Lease | None:
        """One attempt: the lease held (created, or taken over from a dead holder), or the
        live lease of another runner, or None if leases went off."""
        name = f"{fingerprint}.json"
        token = uuid.uuid4().hex
        body = self._body(fingerprint, asset, token, None)
        etag = self._backend.create(name, self._bytes(body))
        if etag is not None:
            self.counts["created"] += 1
            return self._hold(Held(fingerprint, asset, token, etag, body))
        found = self._backend.read(name)
        if found is None:
            return self._take(fingerprint, asset)  # released meanwhile: try to create it again
        lease = read_lease(*found)
        if self._live(lease):
            return lease
        inherited = (lease.job_key, lease.job_id) if lease.job_key and lease.job_id else None
        body = self._body(fingerprint, asset, token, inherited)
        etag = self._backend.replace(name, self._bytes(body), lease.etag)
        if etag is None:  # another runner renewed or took it first
            found = self._backend.read(name)
            return read_lease(*found) if found is not None else self._take(fingerprint, asset)
        self.counts["taken_over"] += 1
        return self._hold(Held(fingerprint, asset, token, etag, body, inherited=inherited))

    def _look(self, fingerprint: str, asset: str) -> Held | Lease | None:
        """A waiter's look again: the lease as it is (one read), taken only once it is gone or
        expired."""
        found = self._backend.read(f"{fingerprint}.json")
        if found is not None and self._live(lease := read_lease(*found)):
            return lease
        return self._take(fingerprint, asset)

    def _live(self, lease: Lease) -> bool:
        """Whether a lease's holder may still be at work: it has not expired. An expiry further
        off than any TTL allows is no holder's (the remote is shared: it may be hostile) and
        reads as expired, so it cannot hold builds back for ever."""
        now = self._now()
        return now < lease.expires <= now + MAX_TTL_S

    def hold(self, fingerprint: str, asset: str, ready: Callable[[], T | None],
             on_wait: Callable[[str], None]) -> Held | T | None:
        """The lease on ``fingerprint`` before paying for it; or, when another runner holds it,
        what ``ready()`` finds once that runner's record is on the remote (waited for with
        backoff, taking the lease over if its holder dies). None: go on without a lease
        (leases are off, or the remote failed). ``ready`` is asked again after the lease is
        taken, so a result uploaded between the plan and now is restored, not paid again."""
        delay = POLL_START_S
        waited = False
        while True:
            if not self._ready():
                return None
            taken = self._try(lambda: self._look(fingerprint, asset) if waited else self._take(fingerprint, asset),
                              None)
            if taken is None:
                return None
            if isinstance(taken, Held):
                found = ready()
                if found is not None:
                    self.release(taken)
                    return found
                return taken
            if not waited:
                waited = True
                self.counts["waited"] += 1
                on_wait(taken.holder)
            found = ready()
            if found is not None:
                return found
            if self.clock.wait(self.interrupted, delay):
                raise Interrupted(f"stopped waiting for another machine's result of {asset}")
            delay = min(delay * POLL_BACKOFF, POLL_MAX_S)

    # -- holding ------------------------------------------------------------------------------

    def _hold(self, held: Held) -> Held:
        with self._mutex:
            self._held[held.token] = held
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_all, name="assetbuild-leases", daemon=True)
                self._renewer.start()
        return held

    def _write(self, held: Held, body: dict[str, Any]) -> None:
        """Overwrite a held lease at its ETag; a lease another runner took is marked lost. A
        write that fails is not retried here, nor does it turn leases off: the next renewal
        tries again, and the TTL outlasts three missed renewals."""
        with held.mutex:
            if held.lost:
                return
            try:
                etag = self._backend.replace(f"{held.fingerprint}.json", self._bytes(body), held.etag)
            except RemoteError:
                return
            if etag is None:
                held.lost = True
                self.counts["lost"] += 1
                self._warn(f"the lease on {held.asset} was taken over by another runner (this one stalled "
                           f"longer than lease_ttl_s = {self.ttl_s:g} s); it may pay for {held.asset} again")
                return
            held.etag, held.body = etag, body

    def attach_job(self, held: Held, key: str, job_id: str) -> None:
        """Say in the lease which host job pays for it, so a runner that takes it over after
        this one dies resumes that job."""
        if JOB_ID.fullmatch(job_id) is None or self.off:
            return
        if held.body.get("job") == {"key": key, "id": job_id}:
            return
        self._write(held, self._body(held.fingerprint, held.asset, held.token, (key, job_id)))

    def renew(self, held: Held) -> None:
        job = held.body.get("job")
        self._write(held, self._body(held.fingerprint, held.asset, held.token,
                                     (job["key"], job["id"]) if job else None))

    def _renew_all(self) -> None:
        while not self._stop.is_set():
            if self._stop.wait(self.ttl_s / RENEWALS_PER_TTL):  # real time: the lease's own clock
                return
            with self._mutex:
                held = list(self._held.values())
            for lease in held:
                if not self.off:
                    self.renew(lease)

    def _forget(self, held: Held) -> None:
        with self._mutex:
            self._held.pop(held.token, None)

    def release(self, held: Held) -> None:
        """Delete a held lease: its record is uploaded, or its job failed."""
        self._forget(held)
        with held.mutex:
            if held.lost or self.failure is not None:
                return
            try:
                if self._backend.delete(f"{held.fingerprint}.json", held.etag):
                    self.counts["released"] += 1
            except RemoteError:
                pass  # it expires: a waiter finds the record before that, and a later runner takes it over

    def abandon(self, held: Held) -> None:
        """Leave a held lease whose host job still runs (Ctrl-C, a poll deadline) expired at
        once, with the job in it: the next runner takes it over and resumes the job."""
        self._forget(held)
        job = held.body.get("job")
        if not job:
            self.release(held)
            return
        self._write(held, self._body(held.fingerprint, held.asset, held.token, (job["key"], job["id"]),
                                     expires=self._now()))

    def interrupt(self) -> None:
        self.interrupted.set()

    def close(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
