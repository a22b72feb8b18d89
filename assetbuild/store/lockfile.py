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
import math
import os
import posixpath
import re
import stat
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, KeysView, Mapping, MutableMapping

from ..errors import LockfileError, LockfileTooNew
from .files import write_atomic

LOCK_VERSION = 1
LOCK_NAME = "assetbuild.lock"  # beside assetbuild.toml; see lock_path
HEADER = "# assetbuild.lock: written by `assetbuild build`; commit it. Do not edit by hand.\n"
# The fingerprint inputs a lock entry records, in its table's order: the one list to_toml,
# from_toml and the planner's account of what changed (planner.changes) read.
INPUT_KEYS = ("recipe", "kind", "prompt", "model", "size", "count", "candidates", "seed", "watermark", "params",
              "steps", "references", "batch", "output_format")


def recorded_input(key: str, value: Any, *, chosen: bool = False) -> Any:
    """Input ``key``'s ``value`` as a lock table keeps it: None where the table leaves the key
    out (no value, no params, a generated asset's kind, one candidate unless the review loop
    ``chosen`` among images), so a generated asset's table reads as it did before derived
    assets and candidates; from_toml gives the defaults back."""
    if value is None or (key == "params" and not value) or (key == "kind" and value == "generate") \
            or (key == "candidates" and value == 1 and not chosen) or (key == "batch" and value == "sequential"):
        return None
    return value



# How a lock of each older version becomes the next one: MIGRATIONS[N] takes the parsed TOML
# of a version-N lock and returns it as version N + 1 writes it. Bumping LOCK_VERSION adds the
# step from the old version, so every lock in the wild is read (and rewritten at the next
# build) instead of refused.
Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}


def migrate(data: dict[str, Any], version: int, *, migrations: Mapping[int, Migration] = MIGRATIONS,
            current: int = LOCK_VERSION) -> dict[str, Any] | None:
    """A version-``version`` lock's data made a version-``current`` one, one step at a time;
    None if a step is missing (a lock older than any this assetbuild can read)."""
    while version < current:
        step = migrations.get(version)
        if step is None:
            return None
        data = step(data)
        version += 1
    return {**data, "version": current}


def lock_path(manifest: Path) -> Path:
    """The lock beside its manifest, with the manifest's stem: assetbuild.toml -> assetbuild.lock,
    web.toml -> web.lock. Two manifests in one folder never share (or prune) one lock."""
    return manifest.with_suffix(".lock")

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
    # The review loop (see review.py): the sha256 of every candidate image kept pickable, in
    # order (a candidates asset's batch, then each reroll's), which one is the output (1-based),
    # and the sha256 of an output adopted by hand (the output then has those bytes).
    candidate_images: tuple[str, ...] = ()
    pick: int | None = None
    adopted: str | None = None

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
            value = recorded_input(key, self.inputs.get(key), chosen=bool(self.candidate_images))
            if value is not None:
                table[key] = value
        if self.candidate_images:
            table["candidate_images"] = list(self.candidate_images)
            table["pick"] = self.pick or 1
        if self.adopted:
            table["adopted"] = self.adopted
        table["outputs"] = [
            {"path": o.path, "sha256": o.sha256, "width": o.width, "height": o.height} for o in self.outputs
        ]
        return _sorted(table)

    @classmethod
    def from_toml(cls, table: Any) -> "LockEntry":
        """An entry from its TOML table; _Malformed (naming the key) if the shape is wrong."""
        _check(table, _ENTRY_TYPES, "")
        inputs = _inputs_from_toml(table)
        outputs = _outputs_from_toml(table.get("outputs") or [])
        if table.get("fingerprint") is None:
            raise _Malformed("fingerprint", "is missing")
        candidates, pick, adopted = _choice_from_toml(table)
        return cls(
            fingerprint=table["fingerprint"],
            provider=table.get("provider") or "",
            model_id=table.get("model_id") or "",
            built=table.get("built") or "",
            cost_usd=float(table.get("cost_usd") or 0.0),
            inputs=inputs,
            outputs=outputs,
            request_id=table.get("request_id"),
            candidate_images=candidates,
            pick=pick,
            adopted=adopted,
        )


def _inputs_from_toml(table: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint inputs an entry's table records, with what a table leaves out filled in."""
    inputs = {key: table.get(key) for key in INPUT_KEYS}
    inputs["params"] = inputs["params"] or {}
    inputs["kind"] = inputs["kind"] or "generate"
    for key in ("steps", "batch", "output_format"):  # absent unless set: fingerprints made without them hold
        if inputs[key] is None:
            del inputs[key]
    if "steps" in inputs and not all(isinstance(step, dict) for step in inputs["steps"]):
        raise _Malformed("steps", "is not an array of tables")
    refs = inputs["references"] or []
    for i, ref in enumerate(refs):
        _check(ref, _REFERENCE_TYPES, f"references[{i}]")
    inputs["references"] = refs
    return inputs


def _outputs_from_toml(tables: list[Any]) -> tuple[OutputRecord, ...]:
    outputs = []
    for i, out in enumerate(tables):
        where = f"outputs[{i}]"
        _check(out, _OUTPUT_TYPES, where, required=("path", "sha256", "width", "height"))
        if not _safe_path(out["path"]):
            raise _Malformed(f"{where}.path", f"{_shown(out['path'])} is not a path inside the project")
        if not (0 <= out["width"] < 1 << 31 and 0 <= out["height"] < 1 << 31):
            raise _Malformed(f"{where}.width", "is not a pixel size")
        outputs.append(OutputRecord(out["path"], out["sha256"], out["width"], out["height"]))
    return tuple(outputs)


def _choice_from_toml(table: dict[str, Any]) -> tuple[tuple[str, ...], int | None, str | None]:
    """The review loop's record: candidate images, the pick among them, the adopted hand edit."""
    candidates = table.get("candidate_images") or []
    for i, sha in enumerate(candidates):
        if not _is_sha256(sha):
            raise _Malformed(f"candidate_images[{i}]", "is not a sha256")
    pick = table.get("pick")
    if pick is not None and not 1 <= pick <= max(1, len(candidates)):
        raise _Malformed("pick", f"is {pick}, not a candidate number (1..{max(1, len(candidates))})")
    if table.get("adopted") is not None and not _is_sha256(table["adopted"]):
        raise _Malformed("adopted", "is not a sha256")
    return tuple(candidates), (pick if candidates else None), table.get("adopted")


# The type each key of a lock table must have when present (float: a finite int or float).
_ENTRY_TYPES: dict[str, type] = {
    "fingerprint": str, "provider": str, "model_id": str, "built": str, "cost_usd": float, "request_id": str,
    "recipe": int, "kind": str, "steps": list, "prompt": str, "model": str, "size": str, "count": int,
    "candidates": int, "seed": int, "watermark": bool, "candidate_images": list, "pick": int, "adopted": str,
    "params": dict, "references": list, "outputs": list, "batch": str, "output_format": str,
}
_REFERENCE_TYPES: dict[str, type] = {"ref": str, "sha256": str}
_OUTPUT_TYPES: dict[str, type] = {"path": str, "sha256": str, "width": int, "height": int}


_FLOAT_MAX = sys.float_info.max  # a larger int cannot become a float (OverflowError)


def _check(table: Any, types: dict[str, type], where: str, required: tuple[str, ...] = ()) -> None:
    """_Malformed unless ``table`` is a table whose known keys have their types."""
    if not isinstance(table, dict):
        raise _Malformed(where, f"is {_kind_of(table)}, not a table")
    for key, value in table.items():
        kind = types.get(key)
        if kind is None or value is None:
            continue
        if type(value) is kind or (kind is float and type(value) is int):
            if kind is float and type(value) is int and abs(value) > _FLOAT_MAX:
                raise _Malformed(_join(where, key), "is an integer too large to be a number")
            if kind is float and not math.isfinite(value):
                raise _Malformed(_join(where, key), f"is {_kind_of(value)}, not a number")
            continue
        raise _Malformed(_join(where, key), f"is {_kind_of(value)}, not {_KIND[kind]}")
    for key in required:
        if table.get(key) is None:
            raise _Malformed(_join(where, key), "is missing")


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class _Malformed(ValueError):
    """A lock value of the wrong shape, at ``key`` (within one asset's table)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
         dict: "a table"}


def _kind_of(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return _KIND.get(type(value), type(value).__name__)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:55]}...{text[-2:]}"


def _safe_path(path: str) -> bool:
    """A normalised relative posix path inside the project (the lock may have been edited)."""
    return (bool(path) and path.isprintable() and not path.startswith("/") and "\\" not in path
            and posixpath.normpath(path) == path and path != ".." and not path.startswith("../"))


_REMEDY = ("resolve merge markers (`assetbuild lock resolve` does it from what is on disk), "
           "or delete it and rebuild from the cache")


def _one_line(text: str) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= 200 else text[:197] + "..."


def _entries(data: Any) -> dict[str, LockEntry]:
    """Every entry of parsed lock data; _Malformed (with the key) if any is the wrong shape."""
    if not isinstance(data, dict):
        raise _Malformed("", "is not a table")
    assets = data.get("assets", {})
    if not isinstance(assets, dict):
        raise _Malformed("assets", f"is {_kind_of(assets)}, not a table of assets")
    entries = {}
    for aid, table in assets.items():
        try:
            entries[aid] = LockEntry.from_toml(table)
        except _Malformed as exc:
            raise _Malformed(f"assets.{_dotted(aid)}{'.' + exc.key if exc.key else ''}", exc.message) from exc
    return entries


def _dotted(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() and key.isascii() else _shown(key)


def _entries_or_fail(path: Path, data: Any) -> dict[str, LockEntry]:
    try:
        return _entries(data)
    except _Malformed as exc:
        raise LockfileError(f"{path.name}: {_one_line(str(exc))}; {_REMEDY}") from exc


def read_entries(path: Path) -> dict[str, LockEntry]:
    """The entries of the lock file at ``path``, read as it is (no memo, no journal), e.g. a
    copy of an earlier commit's lock; LockfileError if it cannot be read."""
    return _entries_or_fail(path, Lockfile._parse(path)[0])


def entries_from_bytes(data: bytes, path: Path) -> dict[str, LockEntry]:
    """The entries of a lock's bytes (e.g. as a commit had it: ``git show``), named as ``path``
    in errors and read as the lock file at ``path`` would be. LockfileError if unreadable."""
    return _entries_or_fail(path, Lockfile._parse_bytes(data, path)[0])


def entries_from_text(text: str, path: Path) -> dict[str, LockEntry]:
    """The entries of lock text (e.g. one side of a conflicted lock), named as ``path`` in
    errors; an empty text is an empty lock. LockfileError if it cannot be read."""
    if not text.strip():
        return {}
    return _entries_or_fail(path, Lockfile._parse_text(text, path)[0])


MEMO_VERSION = 4  # 4: one line per entry, decoded when asked for, and a digest; 2: entries as validated rows (_memo_row), read without checking each key again; the stamp
#                   on line 1, so the memo of another state of the lock is told without parsing it; 3: every field
_ENTRY_FIELDS = tuple(f.name for f in fields(LockEntry))
_TUPLE_FIELDS = ("candidate_images",)  # besides outputs: tuples that JSON gives back as lists


def _memo_row(entry: LockEntry) -> list[Any]:
    row = [getattr(entry, name) for name in _ENTRY_FIELDS]
    row[_ENTRY_FIELDS.index("outputs")] = [[o.path, o.sha256, o.width, o.height] for o in entry.outputs]
    return row


_new = object.__new__
_set = object.__setattr__


def _from_memo_row(row: list[Any]) -> LockEntry:
    """A lock entry from its memo row, made without the frozen dataclasses' ``__init__`` (one
    ``object.__setattr__`` per field): the row holds what that ``__init__`` was given before."""
    if len(row) != len(_ENTRY_FIELDS):
        raise TypeError("a memo row of another shape")
    values = dict(zip(_ENTRY_FIELDS, row))
    if not isinstance(values["inputs"], dict):
        raise TypeError("inputs")
    records = []
    for path, sha256, width, height in values["outputs"]:
        record = _new(OutputRecord)
        _set(record, "__dict__", {"path": path, "sha256": sha256, "width": width, "height": height})
        records.append(record)
    values["outputs"] = tuple(records)
    for name in _TUPLE_FIELDS:
        values[name] = tuple(values[name])
    entry = _new(LockEntry)
    _set(entry, "__dict__", values)
    return entry


def _read_memo(memo: Path | None, stamp: list[Any]) -> "MutableMapping[str, LockEntry] | None":
    """The entries remembered for the lock file of ``stamp`` (they were validated when the
    memo was written), or None: no memo, another lock, or a damaged memo. Each entry is
    decoded when first asked for (:class:`Entries`): a plan that takes most nodes as up to
    date (run/stamp.UpToDate) reads the few it decides."""
    if memo is None:
        return None
    try:
        with open(memo, "rb") as fh:
            head = json.loads(fh.readline(8192))
            if head[:2] != [MEMO_VERSION, stamp]:
                return None
            ids_line = fh.readline()
            body = fh.read()
        if _digest(ids_line + body) != head[2]:
            return None  # damaged (or not what this assetbuild wrote): the lock itself is read
        ids = json.loads(ids_line)
        rows = body.split(b"\n")
        if not isinstance(ids, list) or len(rows) != len(ids):
            return None
        return Entries(dict(zip(ids, rows)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None


def _write_memo(memo: Path, stamp: list[Any], entries: Mapping[str, LockEntry]) -> None:
    """Line 1: the memo version, the lock's stamp and a digest of the rest; line 2: the entry
    ids; then one JSON row per entry (so one is decoded without the others)."""
    body = (json.dumps(list(entries)) + "\n" + "\n".join(
        json.dumps(_memo_row(e), separators=(",", ":")) for e in entries.values())).encode("utf-8")
    head = json.dumps([MEMO_VERSION, stamp, _digest(body)])
    try:
        write_atomic(memo, head.encode("utf-8") + b"\n" + body)
    except (OSError, ValueError):
        pass


def _digest(data: bytes) -> str:
    """A check of the memo's bytes against damage (a torn or truncated write): it is
    assetbuild's own file in the cache folder, so CRC-32 (a few ms on a 10,000-entry lock)."""
    import zlib

    return f"crc32:{zlib.crc32(data):08x}"


class Entries(MutableMapping[str, "LockEntry"]):
    """Lock entries by asset id, read from the memo: each row is decoded the first time its
    entry is asked for (the memo's digest was checked, and its rows were validated when it
    was written). Otherwise a dict."""

    __slots__ = ("_rows",)

    def __init__(self, rows: dict[str, Any]):
        self._rows = rows  # id -> a LockEntry, or its memo row (bytes) not decoded yet

    def __getitem__(self, key: str) -> LockEntry:
        value = self._rows[key]
        if value.__class__ is bytes:
            value = self._rows[key] = _from_memo_row(json.loads(value))
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._rows else default

    def __setitem__(self, key: str, value: LockEntry) -> None:
        self._rows[key] = value

    def __delitem__(self, key: str) -> None:
        del self._rows[key]

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def keys(self) -> KeysView[str]:
        return self._rows.keys()  # a set operation on it stays in C

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"Entries({len(self._rows)})"



assert _ENTRY_FIELDS[0] == "fingerprint"  # by_fingerprint reads a memo row's first field: a hex string, as it is


def by_fingerprint(entries: Mapping[str, LockEntry]) -> dict[str, list[str]]:
    """Fingerprint -> the ids of the entries built with it (from the memo's rows as they
    are, where the entries came from it)."""
    found: dict[str, list[str]] = {}
    if isinstance(entries, Entries):
        for nid, value in list(entries._rows.items()):  # a copy: workers record meanwhile
            raw = value[2:value.index(b'"', 2)] if value.__class__ is bytes else None
            fp = raw.decode("ascii") if raw is not None and b"\\" not in raw else entries[nid].fingerprint
            found.setdefault(fp, []).append(nid)
        return found
    for nid, entry in list(entries.items()):
        found.setdefault(entry.fingerprint, []).append(nid)
    return found


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
    entries: MutableMapping[str, LockEntry] = field(default_factory=dict)  # a dict, or Entries from the memo
    journal: Journal | None = None
    replayed: int = 0  # entries taken from a killed build's journal, not yet in the lock file
    migrated_from: int | None = None  # the older version the file was read as (rewritten at the next save)
    stamp: list[int] | None = None  # the lock file's mtime and size when read (None: there was none)
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _dirty: bool = False

    @classmethod
    def load(cls, path: Path, memo: Path | None = None, journal: Path | None = None, *,
             migrations: Mapping[int, Migration] = MIGRATIONS) -> "Lockfile":
        """Read the lock, then replay a killed build's ``journal`` on top of it. ``memo`` is a
        JSON copy of the parsed lock kept in the cache, keyed by the lock's own path, mtime and
        size: tomllib is pure Python and dominates a no-op build. A lock of an older version
        is migrated (``migrations``) and counts as changed, so the next save writes it at the
        current version. Any problem is a LockfileError of one line that says what to do."""
        try:
            st = path.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc.strerror}; fix it or delete it") from exc
        stamp = None if st is None else [st.st_mtime_ns, st.st_size]
        entries, version = ({}, LOCK_VERSION) if st is None else cls._read(path, st, memo, migrations)
        lock = cls(path, entries, journal=None if journal is None else Journal(journal, stamp), stamp=stamp)
        if version != LOCK_VERSION:
            lock.migrated_from = version
            lock._dirty = True
        if lock.journal is not None:
            for node_id, entry in lock.journal.replay():
                if entry is None:
                    lock.entries.pop(node_id, None)
                else:
                    lock.entries[node_id] = entry
                lock.replayed += 1
            lock._dirty = lock._dirty or lock.replayed > 0
        return lock

    @classmethod
    def _read(cls, path: Path, st: os.stat_result, memo: Path | None,
              migrations: Mapping[int, Migration]) -> tuple[dict[str, LockEntry], int]:
        """The entries, and the version the file has (an older one was migrated)."""
        if not stat.S_ISREG(st.st_mode):
            raise LockfileError(f"{path.name} is not a regular file; remove it (a build writes a new lock)")
        stamp = [os.path.realpath(path), st.st_mtime_ns, st.st_size]
        entries = _read_memo(memo, stamp)
        if entries is not None:
            return entries, LOCK_VERSION
        data, version = cls._parse(path, migrations)
        entries = _entries_or_fail(path, data)
        # A migrated lock is not memoised: the memo's entries would read as current.
        if memo is not None and version == LOCK_VERSION and time.time() - st.st_mtime >= 2.0:  # else too fresh
            _write_memo(memo, stamp, entries)
        return entries, version

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
    def _parse(path: Path, migrations: Mapping[int, Migration] = MIGRATIONS) -> tuple[dict[str, Any], int]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc.strerror}; fix it or delete it") from exc
        return Lockfile._parse_bytes(data, path, migrations)

    @staticmethod
    def _parse_bytes(data: bytes, path: Path,
                     migrations: Mapping[int, Migration] = MIGRATIONS) -> tuple[dict[str, Any], int]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LockfileError(
                f"{path.name}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); {_REMEDY}"
            ) from exc
        return Lockfile._parse_text(text, path, migrations)

    @staticmethod
    def _parse_text(text: str, path: Path,
                    migrations: Mapping[int, Migration] = MIGRATIONS) -> tuple[dict[str, Any], int]:
        """The TOML of a lock as this version reads it (its entries not checked yet), and the
        version the text has (an older one is migrated)."""
        if sys.version_info >= (3, 11):  # only when the memo is stale: tomllib is slow
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib

        try:
            data = tomllib.loads(text)
        except RecursionError as exc:
            raise LockfileError(f"{path.name}: unreadable (nested too deeply); {_REMEDY}") from exc
        except ValueError as exc:  # TOMLDecodeError, or an integer of more than 4,300 digits
            if re.search(r"^<{7}( |$)", text, re.MULTILINE) and re.search(r"^>{7}( |$)", text, re.MULTILINE):
                raise LockfileError(f"{path.name}: has git conflict markers (a merge in progress): run "
                                    "`assetbuild lock resolve` first; it takes what either side built "
                                    "(from disk, or from git) instead of paying for it again") from exc
            raise LockfileError(f"{path.name}: unreadable ({_one_line(str(exc))}); {_REMEDY}") from exc
        version = data.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > LOCK_VERSION:
            raise LockfileTooNew(
                f"{path.name}: lock version {version} is newer than this assetbuild's ({LOCK_VERSION}); "
                "upgrade assetbuild (nothing was changed)"
            )
        migrated = migrate(data, version, migrations=migrations) \
            if isinstance(version, int) and not isinstance(version, bool) else None
        if migrated is None:
            raise LockfileError(
                f"{path.name}: lock version {_shown(version)} is not "
                f"{LOCK_VERSION}; upgrade assetbuild or delete the lock to rebuild it from the cache"
            )
        return migrated, version  # its shape is checked by _entries_or_fail, which every caller runs

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
