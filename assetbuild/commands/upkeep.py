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
from typing import Iterable

from ..store.cache import Cache, CacheRecord
from ..store.hashing import sha256_bytes
from ..store.lockfile import LockEntry
from ..store.remote import RemoteStore


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
        data = store.get_record(entry.fingerprint)
        record = CacheRecord.from_dict(data) if data is not None else None
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
    (a later upload of the right bytes then writes it anew)."""
    seen = Verification()
    for sha in sorted(store.blobs()):
        data = store.read_blob(sha)
        if data is None:
            continue  # removed meanwhile
        seen.checked += 1
        if sha256_bytes(data) != sha:
            seen.damaged.append(sha)
            store.delete_blob(sha)
    return seen


@dataclass
class Collection:
    """What gc removed (or, with dry_run, would remove)."""

    records: list[str] = field(default_factory=list)  # fingerprints
    blobs: list[str] = field(default_factory=list)  # sha256s
    bytes: int = 0
    kept_records: int = 0
    kept_blobs: int = 0


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
    for sha, size in sorted(cache.blob_sizes().items()):
        if sha in shas:
            gone.kept_blobs += 1
            continue
        gone.blobs.append(sha)
        gone.bytes += size
        if not dry_run:
            cache.delete_blob(sha)
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
    for sha, size in sorted(store.blobs().items()):
        if sha in shas:
            gone.kept_blobs += 1
            continue
        gone.blobs.append(sha)
        gone.bytes += size
        if not dry_run:
            store.delete_blob(sha)
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
