"""The local cache in ``.assetbuild/``: a content-addressed blob store (every image a
provider returns, by sha256) and a diskcache index from fingerprint to result, plus the
in-flight job store and the file-hash memo. diskcache exceptions stop here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import CacheError
from .files import write_atomic
from .fingerprint import sha256_bytes

CACHE_DIR_ENV = "ASSETBUILD_CACHE_DIR"


def cache_dir(root: Path, env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    override = env.get(CACHE_DIR_ENV)
    return Path(override).expanduser().resolve() if override else root / ".assetbuild"


class Cache:
    """Blobs in ``blobs/ab/abcdef...``; the index (diskcache) opened only when needed, so a
    no-op build never touches SQLite."""

    def __init__(self, directory: Path):
        self.dir = directory
        self._index: Any = None

    @property
    def memo_path(self) -> Path:
        """The folder of file-hash memos: one file per project (FileHasher names it after the
        project's root), so projects sharing ASSETBUILD_CACHE_DIR never share hashes."""
        return self.dir / "hashes"

    # -- blobs ------------------------------------------------------------------------------

    def _blob_path(self, sha: str) -> Path:
        return self.dir / "blobs" / sha[:2] / sha

    def put_blob(self, data: bytes) -> str:
        sha = sha256_bytes(data)
        path = self._blob_path(sha)
        if not path.exists():
            try:
                write_atomic(path, data)
            except OSError as exc:
                raise CacheError(f"cannot write to the cache at {self.dir}: {exc}") from exc
        return sha

    def get_blob(self, sha: str) -> bytes | None:
        """The blob, or None if it is missing or corrupt (its bytes no longer hash to ``sha``)."""
        try:
            data = self._blob_path(sha).read_bytes()
        except OSError:
            return None
        return data if sha256_bytes(data) == sha else None

    def has_blob(self, sha: str) -> bool:
        return self._blob_path(sha).is_file()

    # -- index ------------------------------------------------------------------------------

    @property
    def index(self) -> Any:
        if self._index is None:
            import diskcache

            try:
                self._index = diskcache.Cache(str(self.dir / "index"))
            except Exception as exc:  # diskcache/sqlite raise many kinds
                raise CacheError(f"cannot open the cache index at {self.dir}: {exc}") from exc
        return self._index

    def _get(self, key: str) -> Any:
        if self._index is None and not (self.dir / "index").exists():
            return None
        try:
            return self.index.get(key)
        except Exception as exc:
            raise CacheError(f"cannot read the cache index: {exc}") from exc

    def _set(self, key: str, value: Any) -> None:
        try:
            self.index.set(key, value)
        except Exception as exc:
            raise CacheError(f"cannot write the cache index: {exc}") from exc

    def result(self, fingerprint: str) -> dict[str, Any] | None:
        """The cached result for a fingerprint if all its image blobs are present."""
        record = self._get(f"fp:{fingerprint}")
        if record is None or not all(self.has_blob(sha) for sha in record["images"]):
            return None
        return record

    def put_result(self, fingerprint: str, record: dict[str, Any]) -> None:
        self._set(f"fp:{fingerprint}", record)

    def add_orphans(self, fingerprint: str, shas: list[str]) -> None:
        """Images returned for a request that failed as a whole (a partial batch): kept, listed."""
        key = f"orphans:{fingerprint}"
        self._set(key, sorted(set(self._get(key) or []) | set(shas)))

    # -- JobStore ---------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        return self._get(f"job:{key}")

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._set(f"job:{key}", value)

    def delete(self, key: str) -> None:
        try:
            self.index.delete(f"job:{key}")
        except Exception as exc:
            raise CacheError(f"cannot write the cache index: {exc}") from exc

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
