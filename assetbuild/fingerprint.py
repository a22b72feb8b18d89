"""What counts as changed (DESIGN §2): a sha256 over canonical JSON of exactly what decides
an asset's image, and file hashing with an mtime+size memo so unchanged files are never
re-read. mtime never decides freshness; it only saves re-hashing."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .nodes import Node

RECIPE_VERSION = 1
_RACY_S = 2.0  # a file modified this recently may change again within the same mtime tick


def fingerprint_inputs(node: Node, references: list[tuple[str, str]]) -> dict[str, Any]:
    """Everything that decides ``node``'s image. ``references`` is (label, sha256) per
    reference image in order; only the hashes enter the fingerprint (renaming a file with
    the same bytes changes nothing), the labels are kept to explain changes."""
    return {
        "recipe": RECIPE_VERSION,
        "kind": "generate",
        "prompt": node.prompt,
        "model": node.model,
        "size": f"{node.width}x{node.height}",
        "count": node.count,
        "candidates": 1,
        "seed": node.seed,
        "watermark": node.watermark,
        "params": dict(node.params),
        "references": [{"ref": label, "sha256": sha} for label, sha in references],
    }


def fingerprint(inputs: dict[str, Any]) -> str:
    canonical = dict(inputs)
    canonical["references"] = [r["sha256"] for r in inputs["references"]]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileHasher:
    """sha256 of files under ``root``, memoised by (mtime_ns, size) in a JSON file.

    Thread-safe. ``save()`` writes the memo back (atomically) if anything changed.
    """

    def __init__(self, root: Path, memo_path: Path | None):
        self.root = root
        self.memo_path = memo_path
        self._memo: dict[str, list[Any]] | None = None
        self._fresh: dict[str, list[Any]] = {}  # too recent to persist; trusted within this process
        self._dirty = False
        self._lock = threading.Lock()
        self.hashed = 0  # files actually read (for tests and benchmarks)

    def _load(self) -> dict[str, list[Any]]:
        if self._memo is None:
            self._memo = {}
            if self.memo_path is not None:
                try:
                    data = json.loads(self.memo_path.read_text(encoding="utf-8"))
                    if isinstance(data, dict):
                        self._memo = data
                except (OSError, ValueError):
                    pass
        return self._memo

    def hash(self, rel: str) -> str | None:
        """sha256 of the file at ``rel`` (posix, relative to root), or None if it is missing."""
        path = self.root / rel
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        with self._lock:
            entry = self._fresh.get(rel) or self._load().get(rel)
            if entry and entry[0] == st.st_mtime_ns and entry[1] == st.st_size:
                return entry[2]
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        sha = digest.hexdigest()
        self.remember(rel, sha, st)
        with self._lock:
            self.hashed += 1
        return sha

    def remember(self, rel: str, sha: str, st: os.stat_result | None = None) -> None:
        """Record a hash we already know (a file we just wrote)."""
        if st is None:
            st = (self.root / rel).stat()
        with self._lock:
            memo = self._load()
            if time.time() - st.st_mtime < _RACY_S:
                # Too fresh to trust in a later run: an edit within the same tick would keep
                # mtime+size. This run may reuse it (plan, then build, decide each node twice).
                self._fresh[rel] = [st.st_mtime_ns, st.st_size, sha]
                if memo.pop(rel, None) is not None:
                    self._dirty = True
                return
            self._fresh.pop(rel, None)
            if memo.get(rel) != [st.st_mtime_ns, st.st_size, sha]:
                memo[rel] = [st.st_mtime_ns, st.st_size, sha]
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty or self.memo_path is None or self._memo is None:
                return
            from .files import write_atomic

            write_atomic(self.memo_path, json.dumps(self._memo, sort_keys=True).encode("utf-8"))
            self._dirty = False
