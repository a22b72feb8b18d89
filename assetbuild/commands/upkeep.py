"""The cache commands, ``assetbuild cache info|push|pull|verify|gc``, over the local cache
and (where asked) a remote store. Unlike a build, these report a remote that fails
(RemoteError) instead of going on without it: the remote is what they were asked about.

What ``gc`` keeps: every result the lock names (by fingerprint) with the blobs it names
(the host's originals and the PNGs), every output sha256 the lock records, every candidate and adopted image it names, and with
``git_revs`` the same for the lock of each of the last N commits (read with
``git show REV:./assetbuild.lock``, gitlocks.py). Jobs in flight are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import CacheError, RemoteNotFound, UsageError
from ..store.cache import Cache, CacheRecord
from ..store.gitlocks import entries_in_history
from ..store.hashing import sha256_bytes
from ..store.lockfile import LockEntry
from ..store.remote import RemoteStore

if TYPE_CHECKING:
    from .workspace import Workspace


@dataclass
class Usage:
    records: int
    blobs: int
    bytes: int


def local_usage(cache: Cache) -> Usage:
    sizes = cache.blob_sizes()
    return Usage(len(cache.records()), len(sizes), sum(sizes.values()))


def remote_usage(store: RemoteStore) -> Usage:
    sizes = store.blobs()
    return Usage(len(store.records()), len(sizes), sum(sizes.values()))


@dataclass
class Transfer:
    """What push or pull moved, and what it could not."""

    records: int = 0
    blobs: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # fingerprints (pull: not on the remote)


def push(cache: Cache, store: RemoteStore) -> Transfer:
    """Upload every local result whose blobs are here, and that the remote lacks."""
    moved = Transfer()
    for fingerprint, record in sorted(cache.records().items()):
        if cache.local_result(fingerprint) is None:
            continue  # its blobs are gone: nothing to share
        shared = store.share(fingerprint, record.to_dict(), cache.local_blob)
        moved.records += shared.record
        moved.blobs += shared.blobs
        moved.bytes += shared.bytes
    return moved


def pull(cache: Cache, store: RemoteStore, entries: Iterable[LockEntry]) -> Transfer:
    """Download the results (records and the blobs a restore needs) the lock's entries name,
    where the local cache lacks them."""
    moved = Transfer()
    entries = list(entries)
    for entry in entries:  # the review's images: every candidate and a hand edit the lock adopted
        for sha in (*entry.candidate_images, *((entry.adopted,) if entry.adopted else ())):
            if not cache.has_blob(sha):
                blob = store.get_blob(sha)
                if blob is not None:
                    cache.put_blob(blob)
                    moved.blobs += 1
                    moved.bytes += len(blob)
    for entry in entries:
        if cache.local_result(entry.fingerprint) is not None:
            continue
        data, _ = store.get_proven_record(entry.fingerprint)  # one that proves nothing is as good as none
        record = CacheRecord.from_dict(data) if data is not None else None
        locked = tuple(o.sha256 for o in entry.outputs)
        if record is not None and (record.images is None or tuple(record.images[:len(locked)]) != locked):
            record = None  # the lock wins over a record naming other images
        if record is None and locked and not entry.candidate_images and not entry.adopted:
            # the lock's own images, fetched by their sha256 (each checked against it)
            record = CacheRecord(originals=locked, images=locked, provider=entry.provider, model_id=entry.model_id,
                                 built=entry.built, cost_usd=entry.cost_usd, request_id=entry.request_id)
        if record is None:
            moved.missing.append(entry.fingerprint)
            continue
        wanted = record.images if record.images is not None else record.originals
        complete = True
        for sha in wanted:
            if cache.has_blob(sha):
                continue
            blob = store.get_blob(sha)
            if blob is None:
                complete = False
                break
            cache.put_blob(blob)
            moved.blobs += 1
            moved.bytes += len(blob)
        if not complete:
            moved.missing.append(entry.fingerprint)
            continue
        cache.index_result(entry.fingerprint, record)
        moved.records += 1
    return moved


@dataclass
class Verification:
    checked: int = 0
    damaged: list[str] = field(default_factory=list)  # sha256 names whose bytes hash to something else: removed
    records: int = 0  # remote records checked
    unproven: list[tuple[str, str]] = field(default_factory=list)  # (fingerprint, why): a build ignores them


def verify_local(cache: Cache) -> Verification:
    """Hash every local blob; remove any whose bytes do not hash to its name."""
    seen = Verification()
    for sha in sorted(cache.blob_sizes()):
        seen.checked += 1
        if cache.local_blob(sha) is None:  # removes a damaged blob
            seen.damaged.append(sha)
    return seen


def verify_remote(store: RemoteStore) -> Verification:
    """Download and hash every remote blob; remove any whose bytes do not hash to its name
    (a later upload of the right bytes then writes it anew). Then check every record as a
    build would (remote.record_problem: its inputs hash to its name, signed if a key is set):
    one that fails is listed, never acted on."""
    seen = Verification()
    for sha in sorted(store.blobs()):
        data = store.read_blob(sha)
        if data is None:
            continue  # removed meanwhile
        seen.checked += 1
        if sha256_bytes(data) != sha:
            seen.damaged.append(sha)
            store.delete_blob(sha)
    for fingerprint in store.records():
        record, why = store.get_proven_record(fingerprint)
        if record is None and why is None:
            continue  # removed meanwhile
        seen.records += 1
        if why is not None:  # reported, not removed: a proven upload replaces it (share)
            seen.unproven.append((fingerprint, why))
    return seen


@dataclass
class Collection:
    """What gc removed (or, with dry_run, would remove)."""

    records: list[str] = field(default_factory=list)  # fingerprints
    blobs: list[str] = field(default_factory=list)  # sha256s
    bytes: int = 0
    kept_records: int = 0
    kept_blobs: int = 0

    def sweep_blobs(self, sizes: dict[str, int], keep: set[str], delete: Callable[[str], object] | None) -> None:
        """Count each blob of ``sizes`` as kept (named in ``keep``) or gone, and ``delete`` the gone
        ones (None: a dry run), for the local cache and the remote alike."""
        for sha, size in sorted(sizes.items()):
            if sha in keep:
                self.kept_blobs += 1
                continue
            self.blobs.append(sha)
            self.bytes += size
            if delete is not None:
                delete(sha)


def gc_local(cache: Cache, keep: list[dict[str, LockEntry]], *, dry_run: bool) -> Collection:
    fingerprints, shas = _referenced(keep)
    gone = Collection()
    for fingerprint, record in sorted(cache.records().items()):
        if fingerprint in fingerprints:
            shas.update(record.originals)
            shas.update(record.images or ())
            gone.kept_records += 1
        else:
            gone.records.append(fingerprint)
            if not dry_run:
                cache.drop_result(fingerprint)
    for fingerprint, orphans in cache.orphans().items():
        if fingerprint in fingerprints:
            shas.update(orphans)
        elif not dry_run:
            cache.drop_orphans(fingerprint)
    gone.sweep_blobs(cache.blob_sizes(), shas, None if dry_run else cache.delete_blob)
    return gone


def gc_remote(store: RemoteStore, keep: list[dict[str, LockEntry]], *, dry_run: bool) -> Collection:
    fingerprints, shas = _referenced(keep)
    gone = Collection()
    for fingerprint in store.records():
        if fingerprint in fingerprints:
            record = store.get_record(fingerprint) or {}
            shas.update(record.get("originals") or [])
            shas.update(record.get("images") or [])
            gone.kept_records += 1
        else:
            gone.records.append(fingerprint)
            if not dry_run:
                store.delete_record(fingerprint)
    gone.sweep_blobs(store.blobs(), shas, None if dry_run else store.delete_blob)
    return gone


def _referenced(locks: list[dict[str, LockEntry]]) -> tuple[set[str], set[str]]:
    fingerprints: set[str] = set()
    shas: set[str] = set()
    for entries in locks:
        for entry in entries.values():
            fingerprints.add(entry.fingerprint)
            shas.update(o.sha256 for o in entry.outputs)
            shas.update(entry.candidate_images)  # every candidate stays pickable
            if entry.adopted:
                shas.add(entry.adopted)
    return fingerprints, shas


# -- the commands, over a project -------------------------------------------------------------

def remote_store(cache: Cache) -> RemoteStore:
    """The remote cache's store; a UsageError if none is configured."""
    if cache.remote is None:
        raise UsageError("no remote cache: set [cache] remote in the manifest or ASSETBUILD_CACHE_REMOTE")
    store = cache.remote.store
    store.require()  # a bucket that does not exist is an error, never an empty cache
    return store


@dataclass
class CacheUsage:
    """``cache info``: the local cache, and the remote if one is configured (``remote_error``:
    why it could not be listed)."""

    dir: str
    local: Usage
    remote_url: str | None = None
    remote: Usage | None = None
    remote_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        remote = None if self.remote_url is None else {"url": self.remote_url,
                                                        **(vars(self.remote) if self.remote else {})}
        return {"local": {"dir": self.dir, **vars(self.local)}, "remote": remote, "remote_error": self.remote_error}


def usage(project: Workspace) -> CacheUsage:
    cache = project.cache
    info = CacheUsage(str(cache.dir), local_usage(cache))
    if cache.remote is not None:
        store = cache.remote.store
        info.remote_url = store.url
        try:
            store.require()
            info.remote = remote_usage(store)
        except RemoteNotFound:
            raise  # the remote is misnamed: one line, exit 2
        except CacheError as exc:
            info.remote_error = str(exc)
    return info


def push_to_remote(project: Workspace) -> Transfer:
    with project.exclusive():
        return push(project.cache, remote_store(project.cache))


def pull_from_remote(project: Workspace) -> Transfer:
    with project.exclusive():
        return pull(project.cache, remote_store(project.cache), list(project.lock.entries.values()))


@dataclass
class Verified:
    local: Verification
    remote: Verification | None = None  # None: not asked


def verify(project: Workspace, *, remote: bool = False) -> Verified:
    with project.exclusive():
        found = Verified(verify_local(project.cache))
        if remote:
            found.remote = verify_remote(remote_store(project.cache))
    return found


@dataclass
class Collected:
    local: Collection
    remote: Collection | None = None  # None: not asked
    notes: list[str] = field(default_factory=list)  # commits whose lock could not be read
    locks: int = 1  # the locks whose references were kept


def collect(project: Workspace, *, remote: bool = False, git_revs: int = 0, dry_run: bool = False) -> Collected:
    """Remove what neither the lock nor (with ``git_revs``) the lock of the last N commits
    references; ``dry_run`` only says what would go."""
    with project.exclusive():
        history, notes = entries_in_history(project.manifest_path.parent, project.lock.path.name, git_revs)
        keep = [dict(project.lock.entries), *history]
        store = remote_store(project.cache) if remote else None
        done = Collected(gc_local(project.cache, keep, dry_run=dry_run), None, notes, len(keep))
        if store is not None:
            done.remote = gc_remote(store, keep, dry_run=dry_run)
    return done
