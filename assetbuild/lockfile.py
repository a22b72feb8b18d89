"""``assetbuild.lock``: the recorded facts of the last build, one sorted TOML table per
asset so that branches which rebuild different assets merge without conflicts.

Versioned, deterministic (sorted keys, no global timestamps), written atomically, and free
of secrets and expiring URLs. While a build runs, each finished asset is appended to a
journal in the cache folder (O(1) per asset, whatever the size of the lock); the sorted lock
is written once at the end (and on an interrupt), and a killed build's journal is replayed
on top of the lock it started from.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import LockfileError
from .files import write_atomic

LOCK_VERSION = 1
HEADER = "# assetbuild.lock: written by `assetbuild build`; commit it. Do not edit by hand.\n"
INPUT_KEYS = ("recipe", "prompt", "model", "size", "count", "seed", "watermark", "params", "references")


@dataclass(frozen=True)
class OutputRecord:
    path: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class LockEntry:
    fingerprint: str
    provider: str
    model_id: str
    built: str  # ISO-8601 UTC
    cost_usd: float
    inputs: dict[str, Any]  # the fingerprint inputs (see fingerprint.fingerprint_inputs)
    outputs: tuple[OutputRecord, ...]
    request_id: str | None = None

    def to_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "provider": self.provider,
            "model_id": self.model_id,
            "built": self.built,
            "cost_usd": round(self.cost_usd, 6),
        }
        if self.request_id:
            table["request_id"] = self.request_id
        for key in INPUT_KEYS:
            value = self.inputs.get(key)
            if value is None or (key == "params" and not value):
                continue
            table[key] = value
        table["outputs"] = [
            {"path": o.path, "sha256": o.sha256, "width": o.width, "height": o.height} for o in self.outputs
        ]
        return _sorted(table)

    @classmethod
    def from_toml(cls, table: dict[str, Any]) -> "LockEntry":
        inputs = {key: table.get(key) for key in INPUT_KEYS}
        inputs["params"] = inputs["params"] or {}
        inputs["references"] = inputs["references"] or []
        return cls(
            fingerprint=table["fingerprint"],
            provider=table.get("provider", ""),
            model_id=table.get("model_id", ""),
            built=table.get("built", ""),
            cost_usd=float(table.get("cost_usd", 0.0)),
            inputs=inputs,
            outputs=tuple(OutputRecord(o["path"], o["sha256"], int(o["width"]), int(o["height"]))
                          for o in table.get("outputs", [])),
            request_id=table.get("request_id"),
        )


def _read_memo(memo: Path | None, stamp: list[int]) -> dict[str, Any] | None:
    if memo is None:
        return None
    try:
        cached = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("stamp") != stamp:
        return None
    return cached.get("lock")


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class Journal:
    """A build's progress: one JSON line per recorded (or pruned) asset, appended to a file in
    the cache folder. Its first line names the lock it continues (the lock's mtime and size),
    so it is replayed only on top of that very lock."""

    def __init__(self, path: Path, stamp: list[int] | None):
        self.path = path
        self.stamp = stamp
        self._file: Any = None

    def replay(self) -> list[tuple[str, LockEntry | None]]:
        """What a killed build recorded after the lock was last written (None: pruned), or
        nothing if the journal belongs to another state of the lock."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return []
        try:
            if not lines or json.loads(lines[0]).get("stamp") != self.stamp:
                return []
        except (ValueError, AttributeError):
            return []
        changes: list[tuple[str, LockEntry | None]] = []
        for line in lines[1:]:
            try:
                item = json.loads(line)
                changes.append((item["id"], None if item.get("entry") is None else LockEntry.from_toml(item["entry"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                break  # a line torn by a kill ends the journal
        return changes

    def append(self, node_id: str, entry: LockEntry | None) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.replay()
            self._file = open(self.path, "w" if fresh else "a", encoding="utf-8")
            if fresh:
                self._file.write(json.dumps({"stamp": self.stamp}) + "\n")
        self._file.write(json.dumps({"id": node_id, "entry": None if entry is None else entry.to_toml()}) + "\n")
        self._file.flush()  # the OS has it: a SIGKILL loses nothing (images are in the cache anyway)

    def remove(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclass
class Lockfile:
    path: Path
    entries: dict[str, LockEntry] = field(default_factory=dict)
    journal: Journal | None = None
    replayed: int = 0  # entries taken from a killed build's journal, not yet in the lock file
    stamp: list[int] | None = None  # the lock file's mtime and size when read (None: there was none)
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _dirty: bool = False

    @classmethod
    def load(cls, path: Path, memo: Path | None = None, journal: Path | None = None) -> "Lockfile":
        """Read the lock, then replay a killed build's ``journal`` on top of it. ``memo`` is a
        JSON copy of the parsed lock kept in the cache, keyed by the lock's mtime and size:
        tomllib is pure Python and dominates a no-op build."""
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc}") from exc
        stamp = None if st is None else [st.st_mtime_ns, st.st_size]
        entries: dict[str, LockEntry] = {}
        if st is not None:
            data = _read_memo(memo, stamp or [])
            if data is None:
                data = cls._parse(path)
                if memo is not None and time.time() - st.st_mtime >= 2.0:  # too fresh to trust mtime
                    try:
                        write_atomic(memo, json.dumps({"stamp": stamp, "lock": data}).encode("utf-8"))
                    except OSError:
                        pass
            entries = {aid: LockEntry.from_toml(t) for aid, t in data.get("assets", {}).items()}
        lock = cls(path, entries, journal=None if journal is None else Journal(journal, stamp), stamp=stamp)
        if lock.journal is not None:
            for node_id, entry in lock.journal.replay():
                if entry is None:
                    lock.entries.pop(node_id, None)
                else:
                    lock.entries[node_id] = entry
                lock.replayed += 1
            lock._dirty = lock.replayed > 0
        return lock

    def is_current(self) -> bool:
        """Whether the lock file is still the one read (no other process wrote it since)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return self.stamp is None
        except OSError:
            return False
        return self.stamp == [st.st_mtime_ns, st.st_size] and not self._dirty

    def record(self, node_id: str, entry: LockEntry) -> None:
        """What a build made of one asset: kept in memory and appended to the journal."""
        with self._mutex:
            self.entries[node_id] = entry
            self._dirty = True
            if self.journal is not None:
                self.journal.append(node_id, entry)

    def prune(self, node_ids: Iterable[str]) -> None:
        with self._mutex:
            for node_id in node_ids:
                if self.entries.pop(node_id, None) is not None:
                    self._dirty = True
                    if self.journal is not None:
                        self.journal.append(node_id, None)

    def save_if_changed(self) -> None:
        """Write the whole sorted lock if anything was recorded, then drop the journal."""
        with self._mutex:
            if self._dirty:
                self._write()

    @staticmethod
    def _parse(path: Path) -> dict[str, Any]:
        if sys.version_info >= (3, 11):  # only when the memo is stale: tomllib is slow
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc}") from exc
        try:
            data = tomllib.loads(text)
            version = data.get("version")
            if version != LOCK_VERSION:
                raise LockfileError(
                    f"{path.name}: lock version {version!r} is not {LOCK_VERSION}; upgrade assetbuild "
                    "or delete the lock to rebuild it from the cache"
                )
            for table in data.get("assets", {}).values():
                LockEntry.from_toml(table)  # validates the shape
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise LockfileError(
                f"{path.name}: unreadable ({exc}); resolve merge markers, or delete it and rebuild from the cache"
            ) from exc
        return data

    def dumps(self) -> str:
        import tomli_w  # only when writing: a no-op build never does

        body = tomli_w.dumps({"version": LOCK_VERSION,
                              "assets": {aid: self.entries[aid].to_toml() for aid in sorted(self.entries)}})
        return HEADER + body

    def save(self) -> None:
        with self._mutex:
            self._write()

    def _write(self) -> None:
        write_atomic(self.path, self.dumps().encode("utf-8"))
        self._dirty = False
        self.replayed = 0
        if self.journal is not None:
            self.journal.remove()
            self.journal.stamp = None  # what follows continues the lock just written
            try:
                st = self.path.stat()
                self.journal.stamp = [st.st_mtime_ns, st.st_size]
            except OSError:
                pass
