"""The local cache in ``.assetbuild/``: a content-addressed blob store (every image a
provider returns, by sha256), a diskcache index from fingerprint to :class:`CacheRecord`,
the in-flight :class:`JobIndex`, and the file-hash memo. diskcache exceptions stop here.

With a shared remote (:mod:`assetbuild.store.remote`) connected, the same methods reach it too,
local first: ``result()`` of a fingerprint the local cache lacks copies the remote's record
and blobs into the local cache; ``get_blob()`` of a missing blob fetches it; ``put_result()``
indexes locally, then uploads the result. The planner and executor never see the remote."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import CacheError
from .files import write_atomic
from .hashing import sha256_bytes

if TYPE_CHECKING:
    from .remote import Remote, RemoteStore

CACHE_DIR_ENV = "ASSETBUILD_CACHE_DIR"


@dataclass(frozen=True)
class CacheRecord:
    """What one fingerprint's result left in the cache.

    ``originals`` are the bytes the provider returned (paid for), indexed before anything
    else happens to them; ``images`` are the PNGs written as outputs, known once converted
    (None until then: a restore converts the originals again). ``files`` is set only for a
    record read off a lock entry whose images are still on disk at those paths.
    """

    originals: tuple[str, ...]
    provider: str
    model_id: str
    built: str
    cost_usd: float = 0.0
    request_id: str | None = None
    images: tuple[str, ...] | None = None
    files: tuple[str, ...] = ()
    # The fingerprint inputs it was made from: a record shared through the remote proves its
    # name with them (their hash is the fingerprint it is stored under). None for old records.
    inputs: dict[str, Any] | None = None

    def with_images(self, images: list[str]) -> "CacheRecord":
        return replace(self, images=tuple(images))

    def to_dict(self) -> dict[str, Any]:
        return {"originals": list(self.originals), "images": None if self.images is None else list(self.images),
                "provider": self.provider, "model_id": self.model_id, "built": self.built,
                "cost_usd": self.cost_usd, "request_id": self.request_id,
                **({"inputs": self.inputs} if self.inputs is not None else {})}

    @classmethod
    def from_dict(cls, data: Any) -> "CacheRecord | None":
        """A record as stored; None for anything malformed (treated as not cached)."""
        try:
            images = data.get("images")
            originals = data.get("originals") or images
            inputs = data.get("inputs")
            request_id = data.get("request_id")
            return cls(originals=tuple(str(s) for s in originals), provider=str(data.get("provider") or ""),
                       model_id=str(data.get("model_id") or ""), built=str(data.get("built") or ""),
                       cost_usd=float(data.get("cost_usd") or 0.0),
                       request_id=None if request_id is None else str(request_id),
                       images=None if images is None else tuple(str(s) for s in images),
                       inputs=inputs if isinstance(inputs, dict) else None)
        except (AttributeError, TypeError, ValueError):
            return None


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


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
        self.jobs = JobIndex(self)
        self._reroll_mutex = threading.Lock()
        self.remote: Remote | None = None
        self.warnings: list[str] = []  # each remote failure's one warning, in order
        self.on_warning: Callable[[str], None] | None = None

    def connect(self, store: "RemoteStore") -> None:
        """Share results through ``store`` from now on (see the module docstring)."""
        from .remote import Remote

        self.remote = Remote(store, self._warn)

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.on_warning is not None:
            self.on_warning(text)

    @property
    def memo_path(self) -> Path:
        """The folder of file-hash memos: one file per project (FileHasher names it after the
        project's root), so projects sharing ASSETBUILD_CACHE_DIR never share hashes."""
        return self.dir / "hashes"

    # -- blobs ------------------------------------------------------------------------------

    def _blob_path(self, sha: str) -> Path:
        if not is_sha256(sha):  # a sha256 from a lock or a record may be hostile ("../../x")
            raise CacheError(f"{sha[:80]!r} is not a sha256; the lock or cache record that names it is damaged")
        return self.dir / "blobs" / sha[:2] / sha

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` by its sha256 (locally: blobs reach the remote with their record). A
        blob already there is kept only if it is intact: a corrupt one is replaced."""
        sha = sha256_bytes(data)
        path = self._blob_path(sha)
        if not path.exists() or self.local_blob(sha) is None:
            try:
                write_atomic(path, data)
            except OSError as exc:
                raise CacheError(f"cannot write to the cache at {self.dir}: {exc}") from exc
        return sha

    def get_blob(self, sha: str) -> bytes | None:
        """The blob, or None if it is missing or corrupt (its bytes no longer hash to ``sha``).
        A corrupt blob is removed, so the next ``put_blob`` of those bytes writes it anew. A
        blob missing here is fetched from the remote, if one is connected."""
        data = self.local_blob(sha)
        if data is None and self.remote is not None:
            data = self.remote.get_blob(sha)
            if data is not None:
                self.put_blob(data)
        return data

    def share_blob(self, sha: str) -> None:
        """Upload one local blob to the remote, if one is connected (an image that is not the
        result of a fingerprint: an output adopted by hand)."""
        if self.remote is not None and not self.remote.off:
            data = self.local_blob(sha)
            if data is not None:
                self.remote.put_blob(sha, data)

    def local_blob(self, sha: str) -> bytes | None:
        """``get_blob`` without the remote."""
        if not is_sha256(sha):
            return None
        path = self._blob_path(sha)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if sha256_bytes(data) == sha:
            return data
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def has_blob(self, sha: str) -> bool:
        return is_sha256(sha) and self._blob_path(sha).is_file()

    def blob_sizes(self) -> dict[str, int]:
        """Every local blob: sha256 -> bytes (temp files skipped)."""
        sizes = {}
        root = self.dir / "blobs"
        if root.is_dir():
            for folder in root.iterdir():
                if folder.is_dir():
                    for path in folder.iterdir():
                        if len(path.name) == 64 and path.is_file():
                            sizes[path.name] = path.stat().st_size
        return sizes

    def delete_blob(self, sha: str) -> None:
        if not is_sha256(sha):
            return
        try:
            self._blob_path(sha).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CacheError(f"cannot remove {self._blob_path(sha)}: {exc}") from exc

    # -- index ------------------------------------------------------------------------------

    @property
    def index(self) -> Any:
        if self._index is None:
            import diskcache

            try:
                self._index = diskcache.Cache(str(self.dir / "index"))
            except Exception as exc:  # diskcache/sqlite raise many kinds
                raise self._damaged("open", exc) from exc
        return self._index

    def _damaged(self, what: str, exc: Exception) -> CacheError:
        index = self.dir / "index"
        return CacheError(
            f"cannot {what} the cache index {index} ({type(exc).__name__}: {exc}); if it is damaged, move it "
            f"aside (mv {index} {index}.damaged) and run again: outputs recorded in the lock are kept, "
            "images only in the cache would be generated again"
        )

    def _get(self, key: str) -> Any:
        if self._index is None and not (self.dir / "index").exists():
            return None
        try:
            return self.index.get(key)
        except CacheError:
            raise
        except Exception as exc:
            raise self._damaged("read", exc) from exc

    def _keys(self, prefix: str) -> list[str]:
        if self._index is None and not (self.dir / "index").exists():
            return []
        try:
            return [k for k in self.index if isinstance(k, str) and k.startswith(prefix)]
        except CacheError:
            raise
        except Exception as exc:
            raise self._damaged("read", exc) from exc

    def _delete(self, key: str) -> None:
        try:
            self.index.delete(key)
        except CacheError:
            raise
        except Exception as exc:
            raise self._damaged("write", exc) from exc

    def _set(self, key: str, value: Any) -> None:
        try:
            self.index.set(key, value)
        except CacheError:
            raise
        except Exception as exc:
            raise self._damaged("write", exc) from exc

    def mark_written(self, path: Path, sha: str) -> None:
        """Record that assetbuild wrote the bytes ``sha`` to ``path`` (absolute): what the
        deletion rule (files.DeletionRule) asks before it removes a file."""
        self._set(f"wrote:{sha}:{path}", 1)

    def wrote(self, path: Path, sha: str) -> bool:
        """Whether this cache recorded writing the bytes ``sha`` to ``path`` (absolute)."""
        return self._get(f"wrote:{sha}:{path}") is not None

    def result(self, fingerprint: str, locked: tuple[str, ...] | None = None) -> CacheRecord | None:
        """The cached result for a fingerprint, if the blobs to restore it are present: its
        PNGs, or else the originals they are converted from. One the local cache lacks is
        copied from the remote, if one is connected and has one that proves itself (see
        remote.record_problem). ``locked`` is the sha256s the committed lock records for this
        fingerprint's outputs: the lock wins, and a remote record naming other images is
        ignored with a warning (its blobs are never fetched)."""
        found = self.local_result(fingerprint)
        if found is None and self.remote is not None and not self.remote.off:
            data = self.remote.get_record(fingerprint)
            record = CacheRecord.from_dict(data) if data is not None else None
            if record is not None and locked is not None and (
                    record.images is None or tuple(record.images[:len(locked)]) != tuple(locked)):
                self.remote.rejected(fingerprint, "it does not name the images the lock records for it; "
                                                  "the lock's images are fetched by their sha256 instead")
                record = None
            if record is not None and self._fetch_blobs(record):
                self.index_result(fingerprint, record)
                found = self.local_result(fingerprint)
        return found

    def fetch(self, shas: tuple[str, ...]) -> bool:
        """Whether every blob of ``shas`` is here, fetching any missing one from the remote (by
        its sha256: bytes that hash to another name are never kept)."""
        return all(self.has_blob(sha) or self.get_blob(sha) is not None for sha in shas)

    def local_result(self, fingerprint: str) -> CacheRecord | None:
        """``result`` without the remote."""
        record = CacheRecord.from_dict(self._get(f"fp:{fingerprint}"))
        if record is None:
            return None
        if record.images is not None and all(self.has_blob(sha) for sha in record.images):
            return record
        if all(self.has_blob(sha) for sha in record.originals):
            return replace(record, images=None) if record.images is not None else record
        return None

    def _fetch_blobs(self, record: CacheRecord) -> bool:
        """Copy the blobs a restore of ``record`` needs (its PNGs, else its originals) from the
        remote; whether they are all here now."""
        for shas in ([record.images] if record.images is not None else []) + [record.originals]:
            if all(self.has_blob(sha) or self.get_blob(sha) is not None for sha in shas):
                return True
        return False

    def put_result(self, fingerprint: str, record: CacheRecord) -> None:
        """Index a result locally, then (if connected) upload it with its blobs."""
        self.index_result(fingerprint, record)
        if self.remote is not None and not self.remote.off:
            self.remote.share(fingerprint, record.to_dict(), self.local_blob)

    def index_result(self, fingerprint: str, record: CacheRecord) -> None:
        """``put_result`` without the remote."""
        self._set(f"fp:{fingerprint}", record.to_dict())

    def records(self) -> dict[str, CacheRecord]:
        """Every local result: fingerprint -> record."""
        found = {}
        for key in self._keys("fp:"):
            record = CacheRecord.from_dict(self._get(key))
            if record is not None:
                found[key[len("fp:"):]] = record
        return found

    def orphans(self) -> dict[str, list[str]]:
        """Images of requests that failed as a whole: fingerprint -> sha256s."""
        return {key[len("orphans:"):]: list(self._get(key) or []) for key in self._keys("orphans:")}

    def drop_orphans(self, fingerprint: str) -> None:
        self._delete(f"orphans:{fingerprint}")

    def drop_result(self, fingerprint: str) -> None:
        """Forget a result whose blobs turned out damaged (the blobs were removed already)."""
        self._delete(f"fp:{fingerprint}")

    # -- jobs billed but unusable, and rerolls in flight ------------------------------------

    def note_billed(self, fingerprint: str, job: dict[str, Any]) -> None:
        """A job for ``fingerprint`` that the host billed whose images could not be fetched
        (``job``: asset, provider, request id, error): its inputs are not paid for again until
        the user says so (``build --retry-failed``)."""
        self._set(f"billed:{fingerprint}", job)

    def billed(self, fingerprint: str) -> dict[str, Any] | None:
        found = self._get(f"billed:{fingerprint}")
        return found if isinstance(found, dict) else None

    def drop_billed(self, fingerprint: str) -> None:
        if self._get(f"billed:{fingerprint}") is not None:
            self._delete(f"billed:{fingerprint}")

    # Rerolls in flight live in a small file, not the index: a plan looks for them with one
    # stat, so a no-op build still never opens SQLite.

    @property
    def _rerolls_path(self) -> Path:
        return self.dir / "rerolls.json"

    def note_reroll(self, fingerprint: str, reroll: dict[str, Any]) -> None:
        """A reroll of ``fingerprint`` about to be submitted (``reroll``: asset, request key):
        kept until it ends, so a build after a kill resumes the paid job."""
        with self._reroll_mutex:
            found = self.rerolls()
            found[fingerprint] = reroll
            self._write_rerolls(found)

    def rerolls(self) -> dict[str, dict[str, Any]]:
        """Every reroll noted and not ended: fingerprint -> what ``note_reroll`` kept."""
        import json

        try:
            data = json.loads(self._rerolls_path.read_bytes())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {fp: r for fp, r in data.items() if isinstance(r, dict) and isinstance(r.get("asset"), str)
                and isinstance(r.get("key"), str)}

    def drop_reroll(self, fingerprint: str) -> None:
        with self._reroll_mutex:
            found = self.rerolls()
            if found.pop(fingerprint, None) is not None:
                self._write_rerolls(found)

    def _write_rerolls(self, found: dict[str, dict[str, Any]]) -> None:
        import json

        try:
            if found:
                write_atomic(self._rerolls_path, json.dumps(found, sort_keys=True).encode("utf-8"))
            else:
                self._rerolls_path.unlink(missing_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot write to the cache at {self.dir}: {exc}") from exc

    def add_orphans(self, fingerprint: str, shas: list[str]) -> None:
        """Images returned for a request that failed as a whole (a partial batch): kept, listed."""
        key = f"orphans:{fingerprint}"
        self._set(key, sorted(set(self._get(key) or []) | set(shas)))

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None


class JobIndex:
    """The jobs in flight (a provider's JobStore): saved when a host accepts a job, before any
    waiting (Ark's answer, before its images are downloaded), so a killed build resumes the
    job instead of paying again; the executor forgets one only once its images are in the
    cache. Keys are the providers'."""

    def __init__(self, cache: Cache):
        self._cache = cache

    def get(self, key: str) -> dict[str, Any] | None:
        return self._cache._get(f"job:{key}")

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._cache._set(f"job:{key}", value)

    def delete(self, key: str) -> None:
        self._cache._delete(f"job:{key}")

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every job in flight: (key, job)."""
        for key in self._cache._keys("job:"):
            job = self._cache._get(key)
            if job is not None:
                yield key[len("job:"):], job
