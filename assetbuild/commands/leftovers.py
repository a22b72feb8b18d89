"""Files assetbuild wrote for assets that no longer exist (DESIGN §3: the lock says what was
written, and with which bytes).

A leftover file is removed only as the one deletion rule allows (store/files.DeletionRule:
under output_dir, no symlink on the way, claimed or read by no manifest in the folder, bytes
the local cache index says assetbuild wrote there, still the lock's sha256), and only after
those bytes are in the cache, so a deleted or renamed asset never loses an image that was
paid for; every other file a lock names is kept and named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from ..spec.nodes import Node
from ..store.cache import Cache, CacheRecord
from ..store.files import DeletionRule
from ..store.lockfile import LockEntry, lock_path

if TYPE_CHECKING:
    from .workspace import Workspace


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


def sweep(rule: DeletionRule, cache: Cache, entries: Mapping[str, LockEntry], *,
          dry_run: bool = False) -> list[Leftover]:
    """Remove each entry's output files that the deletion rule lets go (their bytes cached
    first); name every other one with why it stays. ``entries`` are the entries of assets
    that are gone (a lock's word for what was written: candidates, never proof)."""
    done: list[Leftover] = []
    seen: set[str] = set()
    for asset in sorted(entries):
        left = Leftover(asset)
        for out in entries[asset].outputs:
            if out.path in seen or rule.kept.get(out.path, "").startswith(CURRENT):
                continue  # an output of an asset the manifest has: in use, not a leftover
            seen.add(out.path)
            why = rule.why_kept(out.path, out.sha256) if dry_run else \
                rule.remove(out.path, out.sha256, cache.put_blob)  # paid bytes go to the cache first
            if why == "":
                continue  # no longer there
            if why is not None:
                left.kept.append(f"{out.path}: {why}")
                continue
            if not dry_run:
                _remove_empty_parents(rule.root, rule.output_dir, out.path)
            left.files.append(out.path)
        if left.files and not dry_run:
            _index(cache, entries[asset])
        if left.files or left.kept:
            done.append(left)
    return done


CURRENT = "an output of "  # how ``claims`` words what an asset of the loaded manifest writes


def claims(nodes: Iterable[Node], manifest: Path) -> dict[str, str]:
    """Path -> why the deletion rule keeps it, for what one manifest claims (its outputs) or
    reads (references, ``from`` images, overlay images), and the manifest and its lock."""
    found: dict[str, str] = {}
    for node in nodes:
        for path in node.outputs:
            found.setdefault(path, f"{CURRENT}{node.id}")
    for node in nodes:
        for ref in node.references:
            if ref.path is not None:
                found.setdefault(ref.path, f"{manifest.name} reads it ({node.id}: {ref.label})")
    found.setdefault(manifest.name, "the manifest")
    found.setdefault(lock_path(manifest).name, "the lock")
    return found


def sibling_claims(manifest: Path) -> dict[str, str]:
    """What the other manifests in ``manifest``'s folder claim or read, and what their locks
    record (path -> why kept). One that cannot be loaded claims everything ("*"): what it
    would keep is unknown, so nothing is removed until it is fixed. A .toml that is not a
    manifest (no [assets] or [project] table, e.g. pyproject.toml) claims nothing."""
    from ..errors import AssetbuildError
    from ..spec.blueprint import Blueprint
    from ..store.lockfile import Lockfile

    found: dict[str, str] = {}
    here = manifest.resolve()
    for other in sorted(manifest.parent.glob("*.toml")):
        if other.resolve() == here or not other.is_file():
            continue
        try:
            text = other.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = "[assets"
        if "[assets" not in text and "[project" not in text:
            continue
        try:
            nodes = Blueprint.load(other, memo_dir=None).nodes.values()
        except AssetbuildError:
            found.setdefault("*", f"{other.name} cannot be loaded, so what it claims is unknown; "
                                  "fix it and run again")
            nodes = ()
        for path, why in claims(nodes, other).items():
            found.setdefault(path, f"{other.name}: {why}")
        try:
            entries = Lockfile.load(lock_path(other)).entries
        except AssetbuildError:
            entries = {}
        for nid, entry in entries.items():
            for out in entry.outputs:
                found.setdefault(out.path, f"{lock_path(other).name} records it for {nid}")
    return found


@dataclass
class Cleaned:
    """What ``clean`` pruned (or, with dry_run, would prune), and a note per commit whose lock
    could not be read."""

    pruned: list[Leftover]
    notes: list[str] = field(default_factory=list)


def clean(project: Workspace, *, dry_run: bool = False, git_revs: int = 0) -> Cleaned:
    """Remove orphaned outputs: files assetbuild wrote (per the lock, and with ``git_revs``
    per the lock of each of the last N commits) for assets the manifest no longer has,
    while their bytes are unchanged; drop those assets from the lock."""
    with project.exclusive():
        from ..store.gitlocks import entries_in_history  # here: only clean --git-revs reads history

        history, notes = entries_in_history(project.manifest_path.parent, project.lock.path.name, git_revs)
        done = project.leftovers(dry_run=dry_run, extra=history)
        if not dry_run:
            project.lock.prune(p.asset for p in done)
            project.lock.save_if_changed()
    return Cleaned(done, notes)


def _index(cache: Cache, entry: LockEntry) -> None:
    """The pruned asset's images as its fingerprint's result, so an asset brought back (a
    revert, the other side of a merge) restores them instead of paying again. Only when the
    entry's inputs hash to its fingerprint (a lock cannot make one image another asset's
    result), and in the local cache only: a lock's word is never shared with the team."""
    from ..plan.fingerprint import fingerprint

    shas = tuple(o.sha256 for o in entry.outputs)
    try:
        proven = fingerprint(dict(entry.inputs)) == entry.fingerprint
    except (KeyError, TypeError, ValueError, AttributeError):
        proven = False
    if proven and shas and all(cache.has_blob(sha) for sha in shas) and cache.local_result(entry.fingerprint) is None:
        cache.index_result(entry.fingerprint, CacheRecord(
            originals=shas, images=shas, provider=entry.provider, model_id=entry.model_id, built=entry.built,
            cost_usd=entry.cost_usd, request_id=entry.request_id))


def _remove_empty_parents(root: Path, output_dir: str, path: str) -> None:
    """Folders the removed file leaves empty, up to (not including) output_dir."""
    parts = path.split("/")[:-1]
    stop = 0 if output_dir == "." else len(output_dir.split("/"))
    while len(parts) > stop:
        try:
            os.rmdir(root.joinpath(*parts))  # an empty folder only, and never through a link
        except OSError:
            return
        parts.pop()
