"""The executor: it runs the plan's decisions from a ready queue in plan order, re-decides
only nodes whose upstream handed down something else than planned, keeps to -j, and on
Ctrl-C starts nothing new, interrupts the providers and keeps what was in flight."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from assetbuild.store.cache import Cache
from assetbuild.clock import SystemClock
from assetbuild.errors import BuildInterrupted, Interrupted
from assetbuild.run.executor import Event, Executor, Outcome
from assetbuild.store.hashing import FileHasher
from assetbuild.store.lockfile import Lockfile
from assetbuild.spec.nodes import Node, Ref
from assetbuild.plan.planner import Action, Planner
from assetbuild.plan.routing import Routing
from assetbuild.plan.reasons import texts
from assetbuild.providers.local import LocalProvider


def node(nid: str, *ups: str) -> Node:
    refs = tuple(Ref(f"@{u}", node=u, paths=(f"out/{u}.png",)) for u in ups)
    return Node(id=nid, asset=nid, variant=(), prompt=f"prompt {nid}", provider="local", provider_type="local",
                model="local", size="16x16", width=16, height=16, count=1, seed=None, watermark=False, params={},
                references=refs, outputs=(f"out/{nid}.png",))


class CountingPlanner(Planner):
    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.decided: list[str] = []

    def decide(self, node: Node, upstream: Any) -> Any:
        self.decided.append(node.id)
        return super().decide(node, upstream)


class Pool:
    """A ProviderPool (plan/routing.py) over one provider."""

    def __init__(self, provider: Any):
        self.provider = provider
        self.interrupted = False

    def get(self, name: str) -> Any:
        return self.provider

    def fallback_of(self, name: str) -> None:
        return None

    def interrupt(self) -> None:
        self.interrupted = True
        self.provider.interrupt()


class Setup:
    def __init__(self, tmp: Path, provider: Any = None):
        self.root = tmp / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = Lockfile.load(tmp / "assetbuild.lock", journal=tmp / "cache" / "journal.jsonl")
        self.cache = Cache(tmp / "cache")
        self.hasher = FileHasher(self.root, None)
        self.pool = Pool(provider or LocalProvider())
        self.events: list[Event] = []

    def planner(self) -> CountingPlanner:
        return CountingPlanner(self.lock, self.hasher, self.cache, price=lambda n: 0.0)

    def run(self, nodes: list[Node], jobs: int = 4, on_event: Any = None, keep_going: bool = False) -> tuple[Any, Any]:
        planner = self.planner()
        decisions = planner.plan(nodes)
        planned = len(planner.decided)
        executor = Executor(root=self.root, planner=planner, lock=self.lock, cache=self.cache, hasher=self.hasher,
                            providers=Routing(self.pool, {}), clock=SystemClock(), jobs=jobs, keep_going=keep_going,
                            on_event=on_event or self.events.append)
        results = executor.run(decisions)
        return results, planner.decided[planned:]


def test_a_noop_run_decides_nothing_again(tmp_path):
    s = Setup(tmp_path)
    nodes = [node("a"), node("b", "a"), node("c", "b")]
    results, _ = s.run(nodes)
    assert [r.status for r in results] == [Outcome.GENERATED] * 3
    s = Setup(tmp_path)  # a new process: lock and files as the first left them
    results, redecided = s.run(nodes)
    assert [r.status for r in results] == [Outcome.UP_TO_DATE] * 3 and redecided == []


def test_only_the_dependents_of_a_regenerated_node_are_decided_again(tmp_path):
    s = Setup(tmp_path)
    nodes = [node("a"), node("b", "a"), node("c", "b"), node("x")]
    s.run(nodes)
    s = Setup(tmp_path)
    nodes[0] = Node(**{**node("a").__dict__, "prompt": "a new prompt"})
    results, redecided = s.run(nodes)
    assert [r.status for r in results] == [Outcome.GENERATED, Outcome.GENERATED, Outcome.GENERATED,
                                           Outcome.UP_TO_DATE]
    assert redecided == ["b", "c"]  # planned with unknown upstream bytes; x and a ran as planned


def test_the_lock_is_written_once_at_the_end(tmp_path):
    s = Setup(tmp_path)
    lock_file = tmp_path / "assetbuild.lock"
    seen_while_running: list[bool] = []

    def on_event(event: Event) -> None:
        if event.kind == "done":
            seen_while_running.append(lock_file.exists())

    results, _ = s.run([node(f"n{i}") for i in range(12)], jobs=3, on_event=on_event)
    assert len(results) == 12 and seen_while_running == [False] * 12  # journalled, not rewritten per asset
    assert len(Lockfile.load(lock_file).entries) == 12


class Slow:
    """A provider that counts how many of its calls overlap."""

    type = "local"
    name = "local"
    key_env = None  # it reads no key

    def __init__(self):
        self.inner = LocalProvider()
        self.now = self.most = 0
        self.mutex = threading.Lock()

    def generate(self, request: Any, jobs: Any) -> Any:
        with self.mutex:
            self.now += 1
            self.most = max(self.most, self.now)
        threading.Event().wait(0.02)
        with self.mutex:
            self.now -= 1
        return self.inner.generate(request, jobs)

    def interrupt(self) -> None:
        pass


def test_jobs_bound_the_work_in_flight_and_ready_nodes_leave_in_plan_order(tmp_path):
    slow = Slow()
    s = Setup(tmp_path, slow)
    nodes = [node(f"n{i}") for i in range(9)]
    s.run(nodes, jobs=3)
    assert slow.most == 3
    s2 = Setup(tmp_path / "two", Slow())
    s2.run([node("r"), node("m", "r"), node("z")], jobs=1)
    starts = [e.node for e in s2.events if e.kind == "start"]
    assert starts == ["r", "m", "z"]  # m (plan index 1) goes before z once r is done


class Hanging:
    """A provider whose call waits until it is interrupted, like a poll loop."""

    type = "local"
    name = "local"
    key_env = None  # it reads no key

    def __init__(self):
        self.stop = threading.Event()
        self.started = threading.Event()

    def generate(self, request: Any, jobs: Any) -> Any:
        if request.asset_id != "slow":
            return LocalProvider().generate(request, jobs)
        self.started.set()
        self.stop.wait(10)
        raise Interrupted("job j1 is still running at the host; a rerun resumes it", provider="h", submitted=True)

    def interrupt(self) -> None:
        self.stop.set()


def test_ctrl_c_starts_nothing_new_interrupts_the_wait_and_keeps_what_finished(tmp_path):
    hanging = Hanging()
    s = Setup(tmp_path, hanging)

    def on_event(event: Event) -> None:
        s.events.append(event)
        if event.kind == "done" and event.node == "fast":
            hanging.started.wait(5)
            raise KeyboardInterrupt  # Ctrl-C arrives in the main thread

    with pytest.raises(BuildInterrupted) as stopped:
        s.run([node("slow"), node("fast"), node("later"), node("after", "slow")], jobs=2, on_event=on_event)
    assert stopped.value.in_flight == ["slow"] and not stopped.value.abandoned
    assert s.pool.interrupted
    assert not any(e.kind == "start" and e.node in ("later", "after") for e in s.events)
    assert sorted(Lockfile.load(tmp_path / "assetbuild.lock").entries) == ["fast"]  # saved on the way out
    assert [e.detail for e in s.events if e.kind == "interrupted"] == ["slow"]


def test_a_failure_without_keep_going_blocks_what_was_not_started(tmp_path):
    class Failing(LocalProvider):
        def generate(self, request: Any, jobs: Any) -> Any:
            if request.asset_id == "b":
                from assetbuild.errors import ProviderUnavailable

                raise ProviderUnavailable("down", provider="h")
            return super().generate(request, jobs)

    s = Setup(tmp_path, Failing())
    results, _ = s.run([node("a"), node("b"), node("c"), node("d", "b")], jobs=1)
    assert [(r.id, r.status) for r in results] == [("a", Outcome.GENERATED), ("b", Outcome.FAILED),
                                                    ("c", Outcome.BLOCKED), ("d", Outcome.BLOCKED)]
    assert texts(results[2].reasons) == ["not started: the build stopped after b failed (-k keeps going)"]
    s = Setup(tmp_path / "k", Failing())
    results, _ = s.run([node("a"), node("b"), node("c"), node("d", "b")], jobs=1, keep_going=True)
    assert [r.status for r in results] == [Outcome.GENERATED, Outcome.FAILED, Outcome.GENERATED, Outcome.BLOCKED]
    assert texts(results[3].reasons) == ["upstream b not built"]
    assert Action.BLOCKED.value == "blocked"


def test_an_output_that_cannot_be_written_fails_that_asset_with_one_line_and_keeps_its_image(tmp_path):
    s = Setup(tmp_path)
    planner = s.planner()
    decisions = planner.plan([node("a"), node("b")])
    (s.root / "out" / "a.png").mkdir(parents=True)  # a folder appeared where the output goes, mid-build
    executor = Executor(root=s.root, planner=planner, lock=s.lock, cache=s.cache, hasher=s.hasher,
                        providers=Routing(s.pool, {}), clock=SystemClock(), jobs=1, keep_going=True, on_event=s.events.append)
    results = executor.run(decisions)
    assert [r.status for r in results] == [Outcome.FAILED, Outcome.GENERATED]
    assert results[0].error is not None and "out/a.png" in results[0].error and "rerun" in results[0].error
    assert s.cache.result(decisions[0].fingerprint) is not None  # the image is kept in the cache
