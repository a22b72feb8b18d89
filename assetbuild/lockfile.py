"""``assetbuild.lock``: the recorded facts of the last build, one sorted TOML table per
asset so that branches which rebuild different assets merge without conflicts.

Versioned, deterministic (sorted keys, no global timestamps), written atomically, and free
of secrets and expiring URLs.
"""

from __future__ import annotations

import json
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


@dataclass
class Lockfile:
    path: Path
    entries: dict[str, LockEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, memo: Path | None = None) -> "Lockfile":
        """Read the lock. ``memo`` is a JSON copy of the parsed lock kept in the cache, keyed
        by the lock's mtime and size: tomllib is pure Python and dominates a no-op build."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise LockfileError(f"{path.name}: cannot read: {exc}") from exc
        stamp = [st.st_mtime_ns, st.st_size]
        data = _read_memo(memo, stamp)
        if data is None:
            data = cls._parse(path)
            if memo is not None and time.time() - st.st_mtime >= 2.0:  # too fresh to trust mtime
                try:
                    write_atomic(memo, json.dumps({"stamp": stamp, "lock": data}).encode("utf-8"))
                except OSError:
                    pass
        entries = {aid: LockEntry.from_toml(t) for aid, t in data.get("assets", {}).items()}
        return cls(path, entries)

    @staticmethod
    def _parse(path: Path) -> dict[str, Any]:
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
        body = tomli_w.dumps({"version": LOCK_VERSION,
                              "assets": {aid: self.entries[aid].to_toml() for aid in sorted(self.entries)}})
        return HEADER + body

    def save(self) -> None:
        write_atomic(self.path, self.dumps().encode("utf-8"))
