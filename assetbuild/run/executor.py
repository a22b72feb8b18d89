"""Running a plan: a ready queue in build order (ninja's ``Plan``), ``-j`` threads,
keep-going, provider fallback, and Ctrl-C.

Restores, derivations and generations run in the worker threads. Each decision of the plan
is run as it was planned, unless an upstream node handed down
something else than the plan assumed (its bytes were not known yet: it was regenerated), and
only then is the node decided again. A generated image goes into the cache before any output
or lock write (:meth:`Executor._secure`), and so does a derived one
(:meth:`Executor._derive`); outputs are written atomically, each finished asset
is journalled, and the sorted lock is written once at the end, so an interrupted build keeps
everything already done.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import threading
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ..store.cache import Cache, CacheRecord
from ..clock import Clock
from ..errors import AssetbuildError, BuildInterrupted, ProviderError, ProviderUnavailable, UserError
from ..spec.nodes import Node
from ..store.files import write_atomic
from ..store.hashing import FileHasher, sha256_bytes
from ..store.lockfile import LockEntry, Lockfile, OutputRecord
from ..plan.routing import calls_host
from ..plan.planner import Action, Decision, Handoff, Planner, ResolvedRef, Unsettled
from ..plan.reasons import Reason, ReasonCode, texts
from ..plan.choice import fresh_choice, reroll_request

if TYPE_CHECKING:  # imported when work starts: a no-op build needs neither threads nor providers
    from concurrent.futures import Future, ThreadPoolExecutor

    from ..store.leases import Held, Leases

    from ..plan.routing import Routing
    from ..providers.base import GenerationRequest, GenerationResult, JobStore, Provider, ReferenceImage


T = TypeVar("T")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FINISHERS = 2  # threads converting and writing generated images (CPU work: about one per core)
Finish = Callable[[], "NodeResult"]  # what is left of a generation once its original is secured


class _Pools:
    """The worker threads (``jobs``) and the finisher threads, each started on first use: a
    no-op plan settles in the calling thread and starts none."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._workers: ThreadPoolExecutor | None = None
        self._finisher: ThreadPoolExecutor | None = None

    def workers(self) -> ThreadPoolExecutor:
        if self._workers is None:
            from concurrent.futures import ThreadPoolExecutor

            self._workers = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="assetbuild")
        return self._workers

    def finisher(self) -> ThreadPoolExecutor:
        if self._finisher is None:
            from concurrent.futures import ThreadPoolExecutor

            self._finisher = ThreadPoolExecutor(max_workers=min(FINISHERS, self.jobs),
                                                thread_name_prefix="assetbuild-finish")
        return self._finisher

    @staticmethod
    def wait_any(futures: list[Future[T]]) -> set[Future[T]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        return wait(futures, return_when=FIRST_COMPLETED)[0]

    def shutdown(self, *, wait: bool) -> None:
        for pool in (self._workers, self._finisher):
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=True)


class Outcome(str, Enum):
    """What became of one node in a build."""

    UP_TO_DATE = "up-to-date"
    RESTORED = "restored"
    GENERATED = "generated"
    DERIVED = "derived"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass
class Event:
    """Something the CLI may show: ``kind`` is start | phase | done | fallback | warning |
    interrupted. A ``done`` event carries what the node cost; a ``phase`` event says where a
    host's job stands (``status``: submitted, polling, downloading)."""

    kind: str
    node: str
    status: str = ""
    detail: str = ""
    cost_usd: float = 0.0


@dataclass
class NodeResult:
    id: str
    status: Outcome
    reasons: list[Reason] = field(default_factory=list)  # as data (codes, details); texts() reads them
    error: str | None = None
    cost_usd: float = 0.0
    outputs: list[str] = field(default_factory=list)  # sha256 per output
    provider: str | None = None

    @property
    def handoff(self) -> Handoff:
        """What this node hands its dependents now that it is settled."""
        if self.status is Outcome.BLOCKED and self.outputs:  # it keeps an output (adopted by hand)
            return tuple(self.outputs)
        if self.status in (Outcome.FAILED, Outcome.BLOCKED):
            return Unsettled.UNBUILT
        return tuple(self.outputs)


class Budget:
    """The most a build may spend (max_cost / --max-cost). The plan's estimate was checked
    against it before anything was sent; work the plan did not count (a damaged cached image
    to generate again) must fit in what is left."""

    def __init__(self, limit_usd: float | None = None, planned_usd: float = 0.0):
        self.limit_usd = limit_usd
        self.committed_usd = planned_usd
        self._mutex = threading.Lock()

    def allows(self, cost_usd: float) -> bool:
        """Whether ``cost_usd`` more fits; if it does, it is counted as committed."""
        with self._mutex:
            if self.limit_usd is not None and self.committed_usd + cost_usd > self.limit_usd + 1e-9:
                return False
            self.committed_usd += cost_usd
            return True


class _Schedule:
    """One run's ready queue (ninja's ``Plan``): which nodes wait for how many upstream nodes,
    which are ready (a heap: they leave in plan order), on a worker, being finished, or done."""

    def __init__(self, decisions: Sequence[Decision], keep_going: bool, on_event: Callable[[Event], None]):
        self.planned = {d.id: d for d in decisions}
        self.keep_going = keep_going
        self.on_event = on_event
        self.dependents: dict[str, list[str]] = {nid: [] for nid in self.planned}
        self.upstream: dict[str, list[str]] = {}  # worked out once per node: Node.upstream is not cached
        self.waiting: dict[str, int] = {}
        for d in decisions:
            ups = self.upstream[d.id] = [up for up in d.node.upstream if up in self.planned]
            self.waiting[d.id] = len(ups)
            for up in ups:
                self.dependents[up].append(d.id)
        self.order = list(self.planned)
        self.index = {nid: i for i, nid in enumerate(self.order)}
        self.ready = [self.index[nid] for nid in self.order if self.waiting[nid] == 0]
        self.done: dict[str, NodeResult] = {}
        self.running: dict[Future[NodeResult | Finish], str] = {}  # on a worker
        self.finishing: dict[Future[NodeResult | Finish], str] = {}  # converted and written by a finisher
        self.stopped_by: str | None = None

    def busy(self) -> bool:
        return bool(self.running or self.finishing)

    def more(self) -> bool:
        return bool(self.ready and self.stopped_by is None) or self.busy()

    def can_start(self, jobs: int) -> bool:
        return (bool(self.ready) and self.stopped_by is None
                and len(self.running) < jobs and len(self.finishing) < jobs)

    def pop_ready(self) -> str:
        return self.order[heapq.heappop(self.ready)]

    def in_flight(self) -> list[str]:
        return sorted([*self.running.values(), *self.finishing.values()])

    def settle(self, result: NodeResult) -> None:
        self.done[result.id] = result
        self.on_event(Event("done", result.id, result.status.value, result.error or "; ".join(texts(result.reasons)),
                            result.cost_usd))
        if result.status is Outcome.FAILED and not self.keep_going and self.stopped_by is None:
            self.stopped_by = result.id
        for nid in self.dependents[result.id]:
            self.waiting[nid] -= 1
            if self.waiting[nid] == 0:
                heapq.heappush(self.ready, self.index[nid])

    def collect(self, pools: _Pools, guard: Callable[[str, Finish], NodeResult]) -> None:
        """Wait for a worker or a finisher, and take what it brings."""
        finished = pools.wait_any([*self.running, *self.finishing])
        for future in finished:
            nid = self.running.pop(future, None) or self.finishing.pop(future)
            outcome = future.result()
            if isinstance(outcome, NodeResult):
                self.settle(outcome)
            else:
                self.finishing[pools.finisher().submit(guard, nid, outcome)] = nid

    def results(self) -> list[NodeResult]:
        """One result per planned node; a node never started was stopped by the first failure."""
        for nid in self.planned:
            if nid not in self.done:
                reason = Reason(ReasonCode.STOPPED, self.stopped_by or "?")
                self.done[nid] = NodeResult(nid, Outcome.BLOCKED, [reason])
                self.on_event(Event("done", nid, Outcome.BLOCKED.value, str(reason)))
        return [self.done[nid] for nid in self.planned]


class Executor:
    def __init__(self, *, root: Path, planner: Planner, lock: Lockfile, cache: Cache, hasher: FileHasher,
                 providers: Routing, clock: Clock, jobs: int = 4, keep_going: bool = False,
                 budget: Budget | None = None, on_event: Callable[[Event], None] | None = None,
                 leases: Leases | None = None):
        self.root = root
        self.planner = planner
        self.lock = lock
        self.cache = cache
        self.hasher = hasher
        self.providers = providers
        self.clock = clock
        self.jobs = max(1, jobs)
        self.keep_going = keep_going
        self.budget = budget or Budget()
        self.on_event = on_event or (lambda event: None)
        self.leases = leases  # with a shared remote: one machine pays for a fingerprint (store/leases.py)

    # -- scheduling -------------------------------------------------------------------------

    def run(self, decisions: Sequence[Decision]) -> list[NodeResult]:
        """Run the plan's decisions: a node is ready once every upstream node in the plan is
        settled; ready nodes are taken in plan order; up-to-date and blocked ones settle in
        the main thread, restores, derivations and generations go to the ``jobs`` worker
        threads. A generated image that must be converted to PNG is converted and written by a
        small finisher pool once its original is secured in the cache, so the worker is free
        at once for the next request instead of the conversions holding up the requests."""
        queue = _Schedule(decisions, self.keep_going, self.on_event)
        pools = _Pools(self.jobs)
        abandoned = False
        try:
            while queue.more():
                self._start_ready(queue, pools)
                if queue.busy():
                    queue.collect(pools, self._guard)
        except KeyboardInterrupt:
            # The first Ctrl-C: start nothing new, stop every wait, let what is in flight end
            # (each within its own request timeout), keep what it brings. A second one: go.
            in_flight = queue.in_flight()
            self.on_event(Event("interrupted", "", detail=", ".join(in_flight)))
            self.providers.interrupt()
            if self.leases is not None:
                self.leases.interrupt()
            try:
                while queue.busy():
                    queue.collect(pools, self._guard)
            except KeyboardInterrupt:
                abandoned = True
            raise BuildInterrupted(in_flight, abandoned=abandoned) from None
        finally:
            pools.shutdown(wait=not abandoned)
            self.lock.save_if_changed()
            self.hasher.save()
        return queue.results()

    def _start_ready(self, queue: _Schedule, pools: _Pools) -> None:
        """Take ready nodes in plan order: settle the ones with nothing to run, hand the others
        to the workers. At most ``jobs`` on the workers and ``jobs`` waiting for a finisher (each
        holds its images): a build outpacing its conversions waits for them."""
        while queue.can_start(self.jobs):
            nid = queue.pop_ready()
            d = self._guard(nid, lambda: self._current(queue.planned[nid], queue.upstream[nid], queue.planned,
                                                       queue.done))
            if isinstance(d, NodeResult):
                queue.settle(d)
            elif d.action in (Action.UP_TO_DATE, Action.BLOCKED):
                queue.settle(self._settled(d))
            else:
                self.on_event(Event("start", nid, d.action.value, "; ".join(map(str, d.reasons))))
                queue.running[pools.workers().submit(self._guard, nid, lambda d=d: self._work(d))] = nid

    def _current(self, d: Decision, upstream: list[str], planned: dict[str, Decision],
                 done: dict[str, NodeResult]) -> Decision:
        """The decision to run: the planned one, unless an upstream node handed down something
        else than the plan assumed (new bytes: it was regenerated; nothing: it failed); only
        then is the node decided again, with what it really got."""
        handed = {up: done[up].handoff for up in upstream if up in done}
        if all(handed[up] == planned[up].handoff for up in handed):
            return d
        return self.planner.decide(d.node, handed)

    # -- one node ---------------------------------------------------------------------------

    @staticmethod
    def _guard(node_id: str, step: Callable[[], T]) -> T | NodeResult:
        """Run ``step``; an assetbuild error fails this node only."""
        try:
            return step()
        except AssetbuildError as exc:
            return NodeResult(node_id, Outcome.FAILED, error=str(exc))

    def _settled(self, d: Decision) -> NodeResult:
        if d.action is Action.UP_TO_DATE:
            assert d.outputs is not None
            self._relabel(d)
            return NodeResult(d.id, Outcome.UP_TO_DATE, outputs=list(d.outputs))
        return NodeResult(d.id, Outcome.BLOCKED, list(d.reasons),
                          outputs=list(d.outputs or ()))

    def _relabel(self, d: Decision) -> None:
        """An up-to-date node whose references were renamed (same bytes, so the same
        fingerprint) gets the new names in its lock entry, so the lock never names an asset
        that no longer exists."""
        entry = self.lock.entries.get(d.id)
        if entry is None or d.inputs is None or entry.inputs.get("references") == d.inputs["references"]:
            return
        self.lock.record(d.id, replace(entry, inputs={**entry.inputs, "references": d.inputs["references"]}))

    def _work(self, d: Decision) -> NodeResult | Finish:
        if d.action is Action.RESTORE:
            restored = self._restore(d)
            if restored is not None:
                return restored
            d = self._after_damaged_restore(d)
            if d.action is Action.BLOCKED:
                return NodeResult(d.id, Outcome.BLOCKED, list(d.reasons))
        if d.action is Action.DERIVE:
            return self._derive(d)
        return self._generate(d)

    def _restore(self, d: Decision) -> NodeResult | None:
        """Write the cached images back; None if they turn out damaged or gone."""
        assert d.cached is not None and d.fingerprint is not None and d.inputs is not None
        record = replace(d.cached, inputs=d.inputs)  # what it shares proves its fingerprint
        images = None
        if record.images is not None:
            files = record.files or (None,) * len(record.images)
            blobs = [self.cache.get_blob(sha) or self._file_blob(path, sha) for sha, path in zip(record.images, files)]
            if all(b is not None for b in blobs):
                images = [b for b in blobs if b is not None]
                if record.files:  # images copied off another entry's files: index them as this fingerprint's result
                    self.cache.put_result(d.fingerprint, replace(record, files=()))
        if images is None:  # the PNGs are gone or damaged: convert the originals again
            from ..store.imageinfo import ImageDecodeError, as_png

            originals = [self.cache.get_blob(sha) for sha in record.originals]
            if any(b is None for b in originals):
                return None
            try:
                images = [as_png(b) for b in originals if b is not None]
            except ImageDecodeError:
                return None
            record = record.with_images([self.cache.put_blob(img) for img in images])
            if not record.files:
                self.cache.put_result(d.fingerprint, record)
        shas = self._write_outputs(d, images, record)
        return NodeResult(d.id, Outcome.RESTORED, list(d.reasons), outputs=shas, provider=record.provider)

    def _after_damaged_restore(self, d: Decision) -> Decision:
        """A restore whose cached images were damaged becomes a generation only where one is
        allowed: not --offline, and within what is left of the budget."""
        assert d.fingerprint is not None
        if not d.cached or not d.cached.files:
            self.cache.drop_result(d.fingerprint)
        redone = self.planner.generation(d.node, d.reasons + [Reason(ReasonCode.CACHE_DAMAGED)], d.fingerprint,
                                         d.inputs, d.references)
        if redone.action is Action.GENERATE and not self.budget.allows(redone.cost_usd):
            over = Reason(ReasonCode.OVER_BUDGET, f"{redone.cost_usd:.2f}")
            return Decision(d.node, Action.BLOCKED, redone.reasons + [over],
                            fingerprint=d.fingerprint, inputs=d.inputs, references=d.references)
        return redone

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

    def _generate(self, d: Decision) -> NodeResult | Finish:
        from ..providers.base import GenerationRequest

        node = d.node
        if d.fingerprint is None or d.inputs is None:  # decided before upstream finished
            raise AssetbuildError(f"{node.id}: internal error: generating without a fingerprint")
        key, seed = reroll_request(d.fingerprint, d.keep) if d.reroll else (d.fingerprint, node.seed)
        request = GenerationRequest(
            asset_id=node.id, fingerprint=key, prompt=node.prompt, model=node.model,
            width=node.width, height=node.height, size=node.size, count=node.images_per_request,
            references=tuple(self._reference(node, ref) for ref in d.references),
            seed=seed, watermark=node.watermark, params=dict(node.params), output_format=node.output_format,
        )
        held = None
        if self.leases is not None and not d.reroll and calls_host(node) \
                and not any(r.code == "forced" for r in d.reasons):
            claim = self._claim(d)
            if isinstance(claim, NodeResult):
                return claim
            held = claim
        rerolling = d.reroll and calls_host(node)
        if rerolling:  # a kill after the submit leaves a paid job: the next plain build resumes it
            self.cache.note_reroll(d.fingerprint, {"asset": node.id, "key": key})
        try:
            result, name = self._requests(d, request, held)
            record = self._secure(d.fingerprint, result, name, d.inputs)
            for part in _parts(request, node.batch):  # the whole is indexed now: its parts are not needed
                self.cache.drop_result(part)
        except ProviderError as exc:
            if exc.billed is not None:  # paid, and nothing to show: not paid for again unless asked
                self.cache.note_billed(d.fingerprint, {"asset": node.id, "provider": exc.provider,
                                                       "request_id": exc.billed, "error": str(exc)[:300]})
            if rerolling and not (exc.submitted and exc.job_key is None):
                self.cache.drop_reroll(d.fingerprint)  # the job ended (or was never sent): nothing to resume
            if held is not None:  # a job the host still runs stays named in the lease, for the next runner
                assert self.leases is not None
                (self.leases.abandon if exc.submitted and exc.job_key is None else self.leases.release)(held)
            raise
        except BaseException:
            if held is not None:
                assert self.leases is not None
                self.leases.release(held)
            raise
        if held is not None:  # the record is on the remote now: waiters restore it
            assert self.leases is not None
            self.leases.release(held)
        self.cache.drop_billed(d.fingerprint)  # made at last (--retry-failed)
        if rerolling:
            self.cache.drop_reroll(d.fingerprint)
        fingerprint = d.fingerprint

        def finish() -> NodeResult:
            from ..store.imageinfo import ImageDecodeError, as_png

            try:
                images = [as_png(img) for img in result.images]
            except ImageDecodeError as exc:
                raise ProviderError(f"returned an image that cannot be converted: {exc}", provider=name) from exc
            converted = record.with_images([self.cache.put_blob(img) for img in images])
            self.cache.put_result(fingerprint, converted)
            shas = self._write_outputs(d, images, converted)
            return NodeResult(node.id, Outcome.GENERATED, list(d.reasons), cost_usd=result.cost_usd, outputs=shas,
                              provider=name)

        if all(img[:8] == PNG_SIGNATURE for img in result.images):
            return finish()  # nothing to convert: written here, without a hop to a finisher
        return finish  # the original is secured: a finisher converts and writes it

    def _claim(self, d: Decision) -> Held | NodeResult | None:
        """The lease on ``d``'s fingerprint before paying for it, or the result another machine
        paid for, restored (it held the lease; this runner waited for its record)."""
        assert self.leases is not None and d.fingerprint is not None
        fingerprint = d.fingerprint
        claim = self.leases.hold(
            fingerprint, d.id, ready=lambda: self.cache.result(fingerprint),
            on_wait=lambda holder: self.on_event(Event("phase", d.id, "waiting",
                                                       f"another machine is generating it ({holder})")))
        if isinstance(claim, CacheRecord):
            restored = self._restore(replace(d, action=Action.RESTORE, cached=claim))
            if restored is not None:
                return restored
            return None  # what it left is damaged: pay for it here
        return claim

    def _requests(self, d: Decision, request: GenerationRequest,
                  held: Held | None) -> tuple[GenerationResult, str]:
        """The node's images: one request, or with ``batch = "separate"`` one single-image request
        per image, each its own job (keyed by the fingerprint and its number) and its own cache
        entry, indexed before the next is sent, so a rerun after a kill or a failure pays only
        for the images still missing. A given seed becomes seed + i for image i (the same seed
        would make the same image N times on hosts that honour it)."""
        from ..providers.base import GenerationResult

        parts = _parts(request, d.node.batch)
        if not parts:
            return self._request(d, request, held)
        images: list[bytes] = []
        warnings: list[str] = []
        ids: list[str] = []
        cost, model_id, name = 0.0, "", d.node.provider
        for number, part_key in enumerate(parts, start=1):
            cached = self.cache.local_result(part_key)
            blobs = [self.cache.get_blob(sha) for sha in cached.originals] if cached is not None else []
            if cached is not None and len(blobs) == 1 and blobs[0] is not None:  # paid for by an earlier run
                images.append(blobs[0])
                ids.append(cached.request_id or "")
                cost, model_id, name = cost + cached.cost_usd, cached.model_id, cached.provider
                continue
            seed = None if request.seed is None else (request.seed + number - 1) % 2_147_483_648
            result, name = self._request(d, replace(request, fingerprint=part_key, count=1, seed=seed), held)
            self.cache.index_result(part_key, CacheRecord(
                originals=tuple(self.cache.put_blob(img) for img in result.images[:1]), provider=name,
                model_id=result.model_id, request_id=result.request_id, cost_usd=result.cost_usd, built=self._now()))
            if result.job_key is not None:
                self.cache.jobs.delete(result.job_key)
            images.extend(result.images[:1])
            ids.append(result.request_id or "")
            warnings.extend(f"image {number}: {w}" for w in result.warnings)
            cost, model_id = cost + result.cost_usd, result.model_id
        return GenerationResult(images=tuple(images), model_id=model_id, request_id=",".join(filter(None, ids)) or None,
                                cost_usd=cost, warnings=("; ".join(warnings),) if warnings else ()), name

    def _request(self, d: Decision, request: GenerationRequest, held: Held | None) -> tuple[GenerationResult, str]:
        """The provider's result for ``request`` and the provider that made it: the node's, or
        its fallback where the first cannot have accepted the job."""
        from ..providers.base import phases_to

        node = d.node
        assert d.fingerprint is not None
        name: str | None = node.provider
        tried: list[str] = []
        while True:
            assert name is not None
            provider = self.providers.get(name)
            tried.append(name)
            variable = self.providers.missing(name)
            nxt = self.providers.next_after(name, tried)
            if variable and nxt:  # a keyless host is skipped, never tried
                self.on_event(Event("fallback", node.id, detail=f"provider {name}: {variable} is not set; trying {nxt}"))
                name = nxt
                continue
            jobs = self.cache.jobs if held is None else _LeasedJobs(self.cache.jobs, held, self.leases, provider)
            try:
                with phases_to(lambda phase: self.on_event(Event("phase", node.id, phase))):
                    result = provider.generate(request, jobs)
                break
            except ProviderError as exc:
                self._secure_partial(d.fingerprint, exc)
                # Fall back only if the host cannot have accepted the job: else two hosts bill for one asset.
                if isinstance(exc, ProviderUnavailable) and not exc.submitted and nxt:
                    self.on_event(Event("fallback", node.id, detail=f"{exc}; trying {nxt}"))
                    name = nxt
                    continue
                raise
        for warning in result.warnings:
            self.on_event(Event("warning", node.id, detail=f"{name}: {warning}"))
        return result, name

    def _derive(self, d: Decision) -> NodeResult:
        """Apply a derived node's steps to its source (and overlay) images. The result is
        cached like a generated one, then written, then journalled: never a provider call."""
        node = d.node
        if d.fingerprint is None or d.inputs is None:  # decided before upstream finished
            raise AssetbuildError(f"{node.id}: internal error: deriving without a fingerprint")
        from .transforms import ENGINE, derive  # Pillow loads only when a derive runs
        from ..process import big_blocks_returned

        big_blocks_returned()

        images = [self._read_reference(node, ref) for ref in d.references]
        made = derive(images[0], node.steps, images[1:])  # a DeriveError fails this node only
        sha = self.cache.put_blob(made.data)
        record = CacheRecord(originals=(sha,), images=(sha,), provider="derive", model_id=ENGINE,
                             built=self._now(), inputs=d.inputs)
        self.cache.put_result(d.fingerprint, record)
        shas = self._write_outputs(d, [made.data], record)
        return NodeResult(node.id, Outcome.DERIVED, list(d.reasons), outputs=shas, provider="derive")

    def _now(self) -> str:
        return self.clock.now().astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _secure(self, fingerprint: str, result: GenerationResult, provider: str,
                inputs: dict[str, Any] | None) -> CacheRecord:
        """The ordering rule, in one place: what a provider returned is in the cache index (the
        host's original bytes, before any conversion) before its saved job is forgotten, and
        both before any output or lock write. A kill at any point resumes or restores."""
        record = CacheRecord(
            originals=tuple(self.cache.put_blob(img) for img in result.images),
            provider=provider, model_id=result.model_id, request_id=result.request_id, cost_usd=result.cost_usd,
            built=self._now(), inputs=inputs,
        )
        self.cache.put_result(fingerprint, record)
        if result.job_key is not None:
            self.cache.jobs.delete(result.job_key)
        return record

    def _secure_partial(self, fingerprint: str, exc: ProviderError) -> None:
        """The same rule for a request that failed: images it did return (a partial batch) are
        kept in the cache before its saved job is forgotten."""
        if exc.images:
            self.cache.add_orphans(fingerprint, [self.cache.put_blob(img) for img in exc.images])
        if exc.job_key is not None:
            self.cache.jobs.delete(exc.job_key)

    def _read_reference(self, node: Node, ref: ResolvedRef) -> bytes:
        """A reference's bytes, which must be the bytes the fingerprint hashed."""
        try:
            data = (self.root / ref.path).read_bytes()
        except OSError as exc:
            raise UserError(f"{node.id}: reference {ref.label} ({ref.path}) cannot be read ({exc.strerror}); "
                            "run the build again") from exc
        if sha256_bytes(data) != ref.sha256:
            raise UserError(f"{node.id}: reference {ref.label} ({ref.path}) changed during the build; run it again")
        return data

    def _reference(self, node: Node, ref: ResolvedRef) -> ReferenceImage:
        """The bytes that will be sent, which must be the bytes the fingerprint hashed."""
        from ..store.imageinfo import ImageDecodeError, inspect_image
        from ..providers.base import ReferenceImage

        data = self._read_reference(node, ref)
        try:
            info = inspect_image(data)
        except ImageDecodeError as exc:
            raise UserError(f"{node.id}: reference {ref.label} ({ref.path}) is not an image: {exc}") from exc
        return ReferenceImage(label=ref.label, data=data, media_type=info.media_type,
                              width=info.width, height=info.height)

    def _write_outputs(self, d: Decision, images: list[bytes], record: CacheRecord) -> list[str]:
        node = d.node
        choice = d.choice
        if choice is None:  # made or restored a batch: the review's choice follows from it (choice.py)
            choice, index = fresh_choice(node, d.keep, record.images or ())
            if index is not None:
                images = images[index:index + 1]
        if len(images) != len(node.outputs):
            raise ProviderError(f"made {len(images)} image(s) where {len(node.outputs)} were wanted",
                                provider=record.provider)
        from ..store.imageinfo import inspect_image  # only now: a no-op build never loads Pillow

        outputs = []
        for path, data in zip(node.outputs, images):
            info = inspect_image(data)
            try:
                write_atomic(self.root / path, data)
            except OSError as exc:  # a folder in its way, a full disk: the image is cached already
                raise AssetbuildError(f"{node.id}: cannot write {path} ({exc.strerror or exc}); fix that and rerun: "
                                      "the image is in the cache, so it costs nothing again") from exc
            sha = sha256_bytes(data)
            self.hasher.remember(path, sha)
            self.cache.mark_written(self.root / path, sha)
            outputs.append(OutputRecord(path, sha, info.width, info.height))
        assert d.fingerprint is not None and d.inputs is not None
        entry = LockEntry(
            fingerprint=d.fingerprint, provider=record.provider, model_id=record.model_id, built=record.built,
            cost_usd=record.cost_usd, inputs=d.inputs, outputs=tuple(outputs), request_id=record.request_id,
            candidate_images=choice.candidate_images, pick=choice.pick, adopted=choice.adopted,
        )
        self.lock.record(node.id, entry)
        return [o.sha256 for o in outputs]


class _LeasedJobs:
    """The job store a provider sees while this runner holds a fingerprint's lease: the local
    one, plus the lease. A job the host accepts is named in the lease (so a runner that takes
    the lease over after a kill resumes it), and a dead holder's job the lease named is
    resumed here when the provider can resume a job by its id and the job key is its own."""

    def __init__(self, jobs: JobStore, held: Held, leases: Leases | None, provider: Provider):
        self._jobs = jobs
        self._held = held
        self._leases = leases
        self._provider = provider

    def _resume(self, job_id: str) -> dict | None:
        resume = getattr(self._provider, "resume_job", None)
        return resume(job_id) if resume is not None else None

    def get(self, key: str) -> dict | None:
        job = self._jobs.get(key)
        # Offered once: a resumed job the host no longer knows is submitted anew, not offered again.
        inherited, self._held.inherited = self._held.inherited, None
        if job is None and inherited is not None and inherited[0] == key:
            job = self._resume(inherited[1])
            if job is not None:
                self._jobs.put(key, job)
        return job

    def put(self, key: str, value: dict) -> None:
        self._jobs.put(key, value)
        job_id = value.get("id")
        if self._leases is not None and isinstance(job_id, str) and not value.get("ended") \
                and self._resume(job_id) is not None:
            self._leases.attach_job(self._held, key, job_id)

    def delete(self, key: str) -> None:
        self._jobs.delete(key)


def _parts(request: GenerationRequest, batch: str) -> list[str]:
    """The keys of a ``batch = "separate"`` request's single-image parts (none for one request)."""
    if request.count == 1 or batch != "separate":
        return []
    return [f"{request.fingerprint}/{number}" for number in range(1, request.count + 1)]
