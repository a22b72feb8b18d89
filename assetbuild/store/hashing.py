"""File contents by sha256, with an mtime+size memo so unchanged files are never re-read
(doit's ``check_modified``): the memo only saves re-hashing, it never decides freshness.
Reference images' facts (format, size, whether they decode) are remembered with their hash."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from .files import kind_of, write_atomic
from .imageinfo import SUPPORTED_FORMATS, ImageFacts, examine

_RACY_S = 2.0  # a file modified this recently may change again within the same mtime tick


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# One encoder for every fingerprint: json.dumps with arguments builds a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(inputs: dict[str, Any]) -> str:
    """The sha256 of an asset's fingerprint inputs (plan/fingerprint.py makes them) as
    canonical JSON: the one definition, so a record read off the shared remote can be checked
    against the inputs it carries. A reference (and an overlay's image) counts by its sha256,
    not its name. Raises KeyError, TypeError or ValueError on inputs of the wrong shape."""
    canonical = dict(inputs)
    canonical["references"] = [r["sha256"] for r in inputs["references"]]
    if "steps" in canonical:  # an overlay's image counts by its bytes (in references), not its name
        canonical["steps"] = [{k: v for k, v in step.items() if k != "image"} for step in inputs["steps"]]
    text = _CANONICAL.encode(canonical)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FileHasher:
    """sha256 of files under ``root``, memoised by (mtime_ns, size) in a JSON file of this
    project's own in ``memo_dir`` (named after the project's root: projects that share a
    cache folder never share hashes). For reference files the memo also keeps the image's
    header facts, found when the file is (re)hashed, so an unchanged reference is checked
    without being opened.

    Only regular files are opened (a FIFO where a file should be would block forever); a
    folder, FIFO or socket in a file's place is a UserError. Thread-safe. ``save()`` writes
    the memo back (atomically) if anything changed.
    """

    def __init__(self, root: Path, memo_dir: Path | None):
        self.root = root
        self._prefix = os.path.join(os.fspath(root), "")  # str paths: os.stat(str) is cheaper than Path.stat
        self.memo_path = None
        if memo_dir is not None:
            project = hashlib.sha256(os.path.realpath(root).encode("utf-8", "surrogatepass")).hexdigest()[:16]
            self.memo_path = memo_dir / f"{project}.json"
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
        return self._read(rel, None)[0]

    def reference(self, rel: str, max_pixels: int) -> tuple[str | None, str | None]:
        """(sha256, problem) of the reference image at ``rel``: sha256 None if it is missing;
        the problem (ending in what to do) if it is not a complete image of a supported format
        within ``max_pixels``. The planner reports it against the manifest's ``references`` key,
        at plan time rather than when a build sends it."""
        sha, facts = self._read(rel, max_pixels)
        if sha is None:
            return None, None
        assert facts is not None
        return sha, _reference_problem(facts, max_pixels)

    def _read(self, rel: str, max_pixels: int | None) -> tuple[str | None, ImageFacts | None]:
        """(sha256, facts) of ``rel``; facts only when ``max_pixels`` is given (a reference)."""
        path = self._prefix + rel
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except OSError as exc:
            raise UserError(f"{rel}: cannot read it ({exc.strerror}); fix it or remove it") from exc
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{rel} is {kind_of(st.st_mode)}, not a file; remove it")
        with self._lock:
            entry = self._fresh.get(rel) or self._load().get(rel)
            if isinstance(entry, list) and len(entry) >= 3 and entry[0] == st.st_mtime_ns and entry[1] == st.st_size:
                if max_pixels is None:
                    return entry[2], None
                facts = ImageFacts.from_json(entry[3]) if len(entry) > 3 else None
                if facts is not None and not _undecoded_within(facts, max_pixels):
                    return entry[2], facts
        try:  # O_NONBLOCK: a FIFO swapped in since the stat must not block the open
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except OSError as exc:
            raise UserError(f"{rel}: cannot read it ({exc.strerror}); fix it or remove it") from exc
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UserError(f"{rel} is {kind_of(st.st_mode)}, not a file; remove it")
            digest = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
            facts = examine(fh, max_pixels=max_pixels) if max_pixels is not None else None
        sha = digest.hexdigest()
        self._store(rel, sha, st, facts)
        with self._lock:
            self.hashed += 1
        return sha, facts

    def remember(self, rel: str, sha: str, st: os.stat_result | None = None) -> None:
        """Record a hash we already know (a file we just wrote)."""
        if st is None:
            st = os.stat(self._prefix + rel)
        self._store(rel, sha, st, None)

    def _store(self, rel: str, sha: str, st: os.stat_result, facts: ImageFacts | None) -> None:
        entry: list[Any] = [st.st_mtime_ns, st.st_size, sha]
        if facts is not None:
            entry.append(facts.to_json())
        with self._lock:
            memo = self._load()
            if time.time() - st.st_mtime < _RACY_S:
                # Too fresh to trust in a later run: an edit within the same tick would keep
                # mtime+size. This run may reuse it (plan, then build, decide each node twice).
                self._fresh[rel] = entry
                if memo.pop(rel, None) is not None:
                    self._dirty = True
                return
            self._fresh.pop(rel, None)
            if memo.get(rel) != entry:
                memo[rel] = entry
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty or self.memo_path is None or self._memo is None:
                return
            write_atomic(self.memo_path, json.dumps(self._memo, sort_keys=True).encode("utf-8"))
            self._dirty = False


def _undecoded_within(facts: ImageFacts, max_pixels: int) -> bool:
    """Facts recorded under a lower pixel limit: the image was never decoded, and now may be."""
    return (facts.complete is None and facts.format in SUPPORTED_FORMATS
            and facts.width * facts.height <= max_pixels)


def _reference_problem(facts: ImageFacts, max_pixels: int) -> str | None:
    """What is wrong with a reference image, ending in what to do; None if nothing."""
    if facts.format is None:
        return facts.problem
    if facts.format not in SUPPORTED_FORMATS:
        return f"is a {facts.format} image; use PNG, JPEG, WebP, GIF, BMP or TIFF"
    pixels = facts.width * facts.height
    if pixels > max_pixels:
        return (f"is {facts.width}x{facts.height} = {pixels:,} pixels, more than the limit of {max_pixels:,} "
                "([limits] max_reference_pixels); use a smaller image or raise the limit")
    if facts.complete is False:
        return f"is a truncated or corrupt {facts.format} image ({facts.problem}); export it again"
    return None
