"""``assetbuild.lock``: the recorded facts of the last build, one sorted TOML table per
asset so that branches which rebuild different assets merge without conflicts.

Versioned, deterministic (sorted keys, no global timestamps), written atomically, and free
of secrets and expiring URLs.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from .errors import LockfileError
from .files import write_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
    def from_toml(cls, table: Any) -> "LockEntry":
        """An entry from its TOML table; LockfileError (naming the key) if the shape is wrong."""
        get = _Reader(table)
        inputs = {
            "recipe": get.opt("recipe", int),
            "prompt": get.opt("prompt", str),
            "model": get.opt("model", str),
            "size": get.opt("size", str),
            "count": get.opt("count", int),
            "seed": get.opt("seed", int),
            "watermark": get.opt("watermark", bool),
            "params": get.opt("params", dict) or {},
            "references": [_Reader(r, f"references[{i}]").reference()
                           for i, r in enumerate(get.opt("references", list) or [])],
        }
        cost = get.opt("cost_usd", float)
        return cls(
            fingerprint=get.req("fingerprint", str),
            provider=get.opt("provider", str) or "",
            model_id=get.opt("model_id", str) or "",
            built=get.opt("built", str) or "",
            cost_usd=float(cost or 0.0),
            inputs=inputs,
            outputs=tuple(_Reader(o, f"outputs[{i}]").output()
                          for i, o in enumerate(get.opt("outputs", list) or [])),
            request_id=get.opt("request_id", str),
        )


class _Malformed(ValueError):
    """A lock value of the wrong shape, at ``key`` (within one asset's table)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
         dict: "a table"}


class _Reader:
    """Typed access to one lock table: wrong types are _Malformed, never a TypeError later."""

    def __init__(self, table: Any, prefix: str = ""):
        self.prefix = prefix
        if not isinstance(table, dict):
            raise _Malformed(prefix, f"is {_kind_of(table)}, not a table")
        self.table = table

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def opt(self, key: str, kind: type) -> Any:
        value = self.table.get(key)
        if value is None:
            return None
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            raise _Malformed(self._key(key), f"is {_kind_of(value)}, not {_KIND[kind]}")
        return value

    def req(self, key: str, kind: type) -> Any:
        value = self.opt(key, kind)
        if value is None:
            raise _Malformed(self._key(key), "is missing")
        return value

    def reference(self) -> dict[str, Any]:
        return {"ref": self.opt("ref", str), "sha256": self.opt("sha256", str)}

    def output(self) -> OutputRecord:
        path = self.req("path", str)
        if not _safe_path(path):
            raise _Malformed(self._key("path"), f"{_shown(path)} is not a path inside the project")
        width, height = self.req("width", int), self.req("height", int)
        if not (0 <= width < 1 << 31 and 0 <= height < 1 << 31):
            raise _Malformed(self._key("width"), "is not a pixel size")
        return OutputRecord(path, self.req("sha256", str), width, height)


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


_REMEDY = "resolve merge markers, or delete it and rebuild from the cache"


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


def _read_memo(memo: Path | None, stamp: list[Any]) -> dict[str, Any] | None:
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


@dataclass
class Lockfile:
    path: Path
    entries: dict[str, LockEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, memo: Path | None = None) -> "Lockfile":
        """Read the lock. ``memo`` is a JSON copy of the parsed lock kept in the cache, keyed
        by the lock's own path, mtime and size: tomllib is pure Python and dominates a no-op
        build. Any problem is a LockfileError of one line that says what to do."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc.strerror}; fix it or delete it") from exc
        if not stat.S_ISREG(st.st_mode):
            raise LockfileError(f"{path.name} is not a regular file; remove it (a build writes a new lock)")
        stamp = [os.path.realpath(path), st.st_mtime_ns, st.st_size]
        data = _read_memo(memo, stamp)
        if data is not None:
            try:
                return cls(path, _entries(data))
            except _Malformed:
                data = None  # a damaged memo: read the lock itself
        data = cls._parse(path)
        entries = _entries_or_fail(path, data)
        if memo is not None and time.time() - st.st_mtime >= 2.0:  # too fresh to trust mtime
            try:
                write_atomic(memo, json.dumps({"stamp": stamp, "lock": data}).encode("utf-8"))
            except (OSError, ValueError):
                pass
        return cls(path, entries)

    @staticmethod
    def _parse(path: Path) -> dict[str, Any]:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LockfileError(
                f"{path.name}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); {_REMEDY}"
            ) from exc
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc.strerror}; fix it or delete it") from exc
        try:
            data = tomllib.loads(text)
        except RecursionError as exc:
            raise LockfileError(f"{path.name}: unreadable (nested too deeply); {_REMEDY}") from exc
        except ValueError as exc:  # TOMLDecodeError, or an integer of more than 4,300 digits
            raise LockfileError(f"{path.name}: unreadable ({_one_line(str(exc))}); {_REMEDY}") from exc
        version = data.get("version")
        if version != LOCK_VERSION:
            raise LockfileError(
                f"{path.name}: lock version {_shown(version)} is not "
                f"{LOCK_VERSION}; upgrade assetbuild or delete the lock to rebuild it from the cache"
            )
        _entries_or_fail(path, data)  # validates the shape
        return data

    def dumps(self) -> str:
        body = tomli_w.dumps({"version": LOCK_VERSION,
                              "assets": {aid: self.entries[aid].to_toml() for aid in sorted(self.entries)}})
        return HEADER + body

    def save(self) -> None:
        write_atomic(self.path, self.dumps().encode("utf-8"))
