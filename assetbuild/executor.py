"""Running a plan: topological order, ``-j`` threads, keep-going, provider fallback.

For each node, once its upstream is done, the planner decides again with the real upstream
outputs. A generated image goes into the cache before any output or lock write; outputs
and the lock are written atomically, and the lock is saved as assets finish (throttled),
so an interrupted build keeps everything already done.
"""

from __future__ import annotations

import datetime as _dt
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .cache import Cache
from .clock import Clock
from .errors import AssetbuildError, ProviderError, ProviderUnavailable, UserError
from .expand import Node
from .files import write_atomic
from .fingerprint import FileHasher, sha256_bytes
from .imageinfo import ImageDecodeError, as_png, inspect_image
from .lockfile import LockEntry, Lockfile, OutputRecord
from .planner import BLOCKED, Action, Decision, Planner, ResolvedRef
from .providers.base import GenerationRequest, Provider, ReferenceImage

LOCK_SAVE_INTERVAL_S = 0.25


@dataclass
class Event:
    """Something the CLI may show: ``kind`` is start | done | fallback."""

    kind: str
    node: str
    status: str = ""
    detail: str = ""


@dataclass
class NodeResult:
    id: str
    status: str  # up-to-date | restored | generated | failed | blocked
    reasons: list[str] = field(default_factory=list)
    error: str | None = None
    cost_usd: float = 0.0
    outputs: list[str] = field(default_factory=list)  # sha256 per output
    provider: str | None = None


class ProviderPool(Protocol):
    def get(self, name: str) -> Provider: ...

    def fallback_of(self, name: str) -> str | None: ...


class Executor:
    def __init__(self, *, root: Path, planner: Planner, lock: Lockfile, cache: Cache, hasher: FileHasher,
                 providers: ProviderPool, clock: Clock, jobs: int = 4, keep_going: bool = False,
                 on_event: Callable[[Event], None] | None = None):
        self.root = root
        self.planner = planner
        self.lock = lock
        self.cache = cache
        self.hasher = hasher
        self.providers = providers
        self.clock = clock
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.on_event = on_event or (lambda event: None)
        self._lock_mutex = threading.Lock()
        self._last_save = float("-inf")
        self._unsaved = False

    # -- scheduling -------------------------------------------------------------------------

    def run(self, nodes: Sequence[Node]) -> list[NodeResult]:
        """Decide each node in the main thread as soon as its upstream is done; only restores
        and generations go to the worker threads (a no-op build starts none)."""
        by_id = {n.id: n for n in nodes}
        pending = list(by_id)
        done: dict[str, NodeResult] = {}
        stopped_by: str | None = None
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="assetbuild")
        running: dict[Future[NodeResult], str] = {}

        def finish(result: NodeResult) -> None:
            nonlocal stopped_by
            done[result.id] = result
            self.on_event(Event("done", result.id, result.status, result.error or "; ".join(result.reasons)))
            if result.status == "failed" and not self.keep_going and stopped_by is None:
                stopped_by = result.id

        try:
            while pending or running:
                progressed = True
                while progressed and stopped_by is None:
                    progressed = False
                    for nid in list(pending):
                        if len(running) >= self.jobs:
                            break
                        node = by_id[nid]
                        if not all(up in done for up in node.upstream):
                            continue
                        pending.remove(nid)
                        upstream = {up: (done[up].outputs if done[up].status not in ("failed", "blocked")
                                         else BLOCKED) for up in node.upstream}
                        decision = self._guard(node.id, lambda: self.planner.decide(node, upstream))
                        if isinstance(decision, NodeResult):
                            finish(decision)
                        elif decision.action in (Action.UP_TO_DATE, Action.BLOCKED):
                            finish(self._settled(decision))
                        else:
                            self.on_event(Event("start", nid, decision.action.value, "; ".join(decision.reasons)))
                            running[pool.submit(self._guard, nid, partial(self._work, decision))] = nid
                            continue
                        progressed = True
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    running.pop(future)
                    result = future.result()
                    assert isinstance(result, NodeResult)
                    finish(result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._save_lock(force=True)
            self.hasher.save()
        for nid in pending:
            reason = f"not started: the build stopped after {stopped_by} failed (-k keeps going)"
            done[nid] = NodeResult(nid, "blocked", [reason])
            self.on_event(Event("done", nid, "blocked", reason))
        return [done[nid] for nid in by_id]

    # -- one node ---------------------------------------------------------------------------

    @staticmethod
    def _guard(node_id: str, step: Callable[[], Any]) -> Any:
        """Run ``step``; an assetbuild error fails this node only."""
        try:
            return step()
        except AssetbuildError as exc:
            return NodeResult(node_id, "failed", error=str(exc))

    def _settled(self, d: Decision) -> NodeResult:
        if d.action is Action.UP_TO_DATE:
            return NodeResult(d.id, "up-to-date", outputs=[o.sha256 for o in self.lock.entries[d.id].outputs])
        return NodeResult(d.id, "blocked", d.reasons)

    def _work(self, d: Decision) -> NodeResult:
        if d.action is Action.RESTORE:
            restored = self._restore(d)
            if restored is not None:
                return restored
        return self._generate(d)

    def _restore(self, d: Decision) -> NodeResult | None:
        record = d.cached
        assert record is not None and d.fingerprint is not None and d.inputs is not None
        files = record.get("files") or [None] * len(record["images"])
        blobs = [self.cache.get_blob(sha) or self._file_blob(path, sha) for sha, path in zip(record["images"], files)]
        if any(b is None for b in blobs):
            return None  # a blob went missing or is corrupt: generate instead
        shas = self._write_outputs(d, [b for b in blobs if b is not None], record)
        return NodeResult(d.id, "restored", d.reasons, outputs=shas, provider=record.get("provider"))

    def _file_blob(self, path: str | None, sha: str) -> bytes | None:
        """An image still at an old output path, copied into the cache on the way."""
        if path is None:
            return None
        try:
            data = (self.root / path).read_bytes()
        except OSError:
            return None
        if sha256_bytes(data) != sha:
            return None
        self.cache.put_blob(data)
        return data

    def _generate(self, d: Decision) -> NodeResult:
        node = d.node
        if d.fingerprint is None or d.inputs is None:  # decided before upstream finished
            raise AssetbuildError(f"{node.id}: internal error: generating without a fingerprint")
        request = GenerationRequest(
            asset_id=node.id, fingerprint=d.fingerprint, prompt=node.prompt, model=node.model,
            width=node.width, height=node.height, size=node.size, count=node.count,
            references=tuple(self._reference(node, ref) for ref in d.references),
            seed=node.seed, watermark=node.watermark, params=dict(node.params),
        )
        name: str | None = node.provider
        tried: list[str] = []
        while True:
            assert name is not None
            provider = self.providers.get(name)
            tried.append(name)
            try:
                result = provider.generate(request, self.cache)
                break
            except ProviderError as exc:
                self._keep_paid_images(d.fingerprint, exc.images)
                nxt = self.providers.fallback_of(name)
                if isinstance(exc, ProviderUnavailable) and nxt and nxt not in tried:
                    self.on_event(Event("fallback", node.id, detail=f"{exc}; trying {nxt}"))
                    name = nxt
                    continue
                raise
        # Never lose what was paid for: every returned image is in the cache before anything else.
        originals = [self.cache.put_blob(img) for img in result.images]
        try:
            images = [as_png(img) for img in result.images]
        except ImageDecodeError as exc:
            raise ProviderError(f"returned an image that cannot be converted: {exc}", provider=name) from exc
        record = {
            "images": [self.cache.put_blob(img) for img in images],
            "originals": originals,
            "provider": name,
            "model_id": result.model_id,
            "request_id": result.request_id,
            "cost_usd": result.cost_usd,
            "built": self.clock.now().astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.cache.put_result(d.fingerprint, record)
        shas = self._write_outputs(d, images, record)
        return NodeResult(node.id, "generated", d.reasons, cost_usd=result.cost_usd, outputs=shas, provider=name)

    def _keep_paid_images(self, fingerprint: str, images: tuple[bytes, ...]) -> None:
        if images:
            self.cache.add_orphans(fingerprint, [self.cache.put_blob(img) for img in images])

    def _reference(self, node: Node, ref: ResolvedRef) -> ReferenceImage:
        """The bytes that will be sent, which must be the bytes the fingerprint hashed."""
        data = (self.root / ref.path).read_bytes()
        if sha256_bytes(data) != ref.sha256:
            raise UserError(f"{node.id}: reference {ref.label} ({ref.path}) changed during the build; run it again")
        try:
            info = inspect_image(data)
        except ImageDecodeError as exc:
            raise UserError(f"{node.id}: reference {ref.label} ({ref.path}) is not an image: {exc}") from exc
        return ReferenceImage(label=ref.label, data=data, media_type=info.media_type,
                              width=info.width, height=info.height)

    def _write_outputs(self, d: Decision, images: list[bytes], record: dict[str, Any]) -> list[str]:
        node = d.node
        if len(images) != len(node.outputs):
            raise ProviderError(f"made {len(images)} image(s) where {len(node.outputs)} were wanted",
                                provider=str(record.get("provider")))
        outputs = []
        for path, data in zip(node.outputs, images):
            info = inspect_image(data)
            write_atomic(self.root / path, data)
            sha = sha256_bytes(data)
            self.hasher.remember(path, sha)
            outputs.append(OutputRecord(path, sha, info.width, info.height))
        assert d.fingerprint is not None and d.inputs is not None
        entry = LockEntry(
            fingerprint=d.fingerprint, provider=str(record.get("provider")), model_id=str(record.get("model_id")),
            built=str(record.get("built")), cost_usd=float(record.get("cost_usd") or 0.0), inputs=d.inputs,
            outputs=tuple(outputs), request_id=record.get("request_id"),
        )
        with self._lock_mutex:
            self.lock.entries[node.id] = entry
            self._unsaved = True
        self._save_lock()
        return [o.sha256 for o in outputs]

    def _save_lock(self, force: bool = False) -> None:
        with self._lock_mutex:
            now = self.clock.monotonic()
            if self._unsaved and (force or now - self._last_save >= LOCK_SAVE_INTERVAL_S):
                self.lock.save()
                self._last_save = now
                self._unsaved = False
