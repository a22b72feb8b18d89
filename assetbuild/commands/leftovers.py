"""Files assetbuild wrote for assets that no longer exist (DESIGN §3: the lock says what was
written, and with which bytes).

A leftover file is removed only while its bytes are still exactly what assetbuild wrote
(the lock's sha256), and only after those bytes are in the cache, so a deleted or renamed
asset never loses an image that was paid for; a file edited since, or one another asset now
claims, is kept and named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from ..store.cache import Cache, CacheRecord
from ..store.hashing import FileHasher, sha256_bytes
from ..store.lockfile import LockEntry


@dataclass
class Leftover:
    asset: str  # the id it was built as
    files: list[str] = field(default_factory=list)  # removed (or, with dry_run, that would be)
    kept: list[str] = field(default_factory=list)  # "path: why"

    def to_json(self) -> dict[str, object]:
        return {"asset": self.asset, "files": self.files, "kept": self.kept}


def gone(entries: Mapping[str, LockEntry], current: Iterable[str]) -> list[str]:
    """The ids the lock holds that the manifest no longer has."""
    return sorted(set(entries) - set(current))


def sweep(root: Path, cache: Cache, hasher: FileHasher, entries: Mapping[str, LockEntry],
          claimed: set[str], *, dry_run: bool = False) -> list[Leftover]:
    """Remove each entry's output files that no current asset claims and whose bytes are still
    the recorded ones (cached first). ``entries`` are the entries of assets that are gone."""
    done: list[Leftover] = []
    seen: set[str] = set()
    for asset in sorted(entries):
        left = Leftover(asset)
        for out in entries[asset].outputs:
            if out.path in claimed or out.path in seen:
                continue
            seen.add(out.path)
            why = _why_kept(root, hasher, out.path, out.sha256)
            if why == "":
                continue  # no longer there
            if why is not None:
                left.kept.append(f"{out.path}: {why}")
                continue
            if not dry_run:
                try:
                    data = (root / out.path).read_bytes()
                    if sha256_bytes(data) != out.sha256:
                        left.kept.append(f"{out.path}: changed since it was written")
                        continue
                    cache.put_blob(data)  # paid bytes go to the cache before the file goes
                    os.unlink(root / out.path)
                    _remove_empty_parents(root, out.path)
                except OSError as exc:
                    left.kept.append(f"{out.path}: cannot remove it ({exc.strerror or exc})")
                    continue
            left.files.append(out.path)
        if left.files and not dry_run:
            _index(cache, entries[asset])
        if left.files or left.kept:
            done.append(left)
    return done


def _index(cache: Cache, entry: LockEntry) -> None:
    """The pruned asset's images as its fingerprint's result, so an asset brought back (a
    revert, the other side of a merge) restores them instead of paying again."""
    shas = tuple(o.sha256 for o in entry.outputs)
    if shas and all(cache.has_blob(sha) for sha in shas) and cache.local_result(entry.fingerprint) is None:
        cache.put_result(entry.fingerprint, CacheRecord(
            originals=shas, images=shas, provider=entry.provider, model_id=entry.model_id, built=entry.built,
            cost_usd=entry.cost_usd, request_id=entry.request_id))


def _why_kept(root: Path, hasher: FileHasher, path: str, sha: str) -> str | None:
    """None if the file may go; "" if it is not there; else why it stays."""
    full = root / path
    if full.is_symlink() or (full.exists() and not full.is_file()):
        return "not a regular file"
    on_disk = hasher.hash(path)
    if on_disk is None:
        return ""
    if on_disk != sha:
        return "changed since assetbuild wrote it (kept; delete it by hand if it is not wanted)"
    return None


def _remove_empty_parents(root: Path, path: str) -> None:
    """Folders the removed file leaves empty, up to (not including) the project root."""
    parent = (root / path).parent
    root = root.resolve()
    while parent.resolve() != root and root in parent.resolve().parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent
