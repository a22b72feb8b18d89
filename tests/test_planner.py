"""The planner's one rule, node by node: each action with its reasons as data, from what the
lock, the files, the cache and the upstream hand-offs say."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetbuild.store.cache import Cache, CacheRecord
from assetbuild.plan.fingerprint import fingerprint, fingerprint_inputs
from assetbuild.store.hashing import FileHasher, sha256_bytes
from assetbuild.store.lockfile import LockEntry, Lockfile, OutputRecord
from assetbuild.spec.nodes import Node, Ref
from assetbuild.plan.planner import Action, Decision, Planner, Reason, Unsettled


def node(nid: str = "a", *, refs: tuple[Ref, ...] = (), outputs: tuple[str, ...] | None = None, count: int = 1,
         provider_type: str = "local", prompt: str = "p") -> Node:
    return Node(id=nid, asset=nid, variant=(), prompt=prompt, provider="h" if provider_type != "local" else "local",
                provider_type=provider_type, model="local", size="8x8", width=8, height=8, count=count, seed=None,
                watermark=False, params={}, references=refs,
                outputs=outputs or tuple(f"out/{nid}-{i}.png" for i in range(count)))


class World:
    """A project folder, its lock, cache and hasher, and a planner over them."""

    def __init__(self, tmp: Path):
        self.root = tmp / "root"
        self.root.mkdir()
        self.lock = Lockfile(tmp / "assetbuild.lock")
        self.cache = Cache(tmp / "cache")
        self.hasher = FileHasher(self.root, None)

    def planner(self, **kw) -> Planner:
        return Planner(self.lock, self.hasher, self.cache, price=lambda n: 0.5 if n.provider_type != "local" else 0.0, **kw)

    def write(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return sha256_bytes(data)

    def built(self, n: Node, upstream: dict | None = None, data: bytes = b"img") -> Decision:
        """As if a build had made ``n``: outputs on disk and an entry in the lock."""
        d = self.planner().decide(n, upstream or {})
        outputs = tuple(OutputRecord(p, self.write(p, data + p.encode()), 8, 8) for p in n.outputs)
        self.lock.entries[n.id] = LockEntry(d.fingerprint, "local", "local", "t", 0.0, d.inputs, outputs)
        return d


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_new_asset_generates_and_an_unchanged_one_is_up_to_date_with_its_outputs(world):
    n = node()
    first = world.planner().decide(n, {})
    assert first.action is Action.GENERATE and first.reasons == [Reason("new-asset")]
    assert first.handoff is Unsettled.PENDING
    world.built(n)
    again = world.planner().decide(n, {})
    assert again.action is Action.UP_TO_DATE and again.reasons == []
    assert again.handoff == (world.lock.entries["a"].outputs[0].sha256,)


def test_reasons_are_data_with_readable_text(world):
    world.built(node())
    d = world.planner().decide(node(prompt="q"), {})
    assert [r.code for r in d.reasons] == ["prompt-changed"] and [str(r) for r in d.reasons] == ["prompt changed"]
    assert str(Reason("size-changed", "8x8 -> 16x16")) == "size changed (8x8 -> 16x16)"
    assert str(Reason("output-modified", "out/a.png", asset="a")) == (
        "output out/a.png modified by hand (`assetbuild adopt a` keeps it, `assetbuild build --force a` overwrites it)")
    assert "`assetbuild adopt 'sneaker[color=red]'`" in str(Reason("output-modified", "x.png",
                                                                   asset="sneaker[color=red]"))


def test_a_missing_output_restores_from_the_cache_and_a_hand_edit_blocks(world):
    n = node()
    d = world.built(n)
    world.cache.put_result(d.fingerprint, CacheRecord(originals=(world.cache.put_blob(b"img" + b"out/a-0.png"),),
                                                      provider="local", model_id="local", built="t"))
    (world.root / n.outputs[0]).unlink()
    restore = world.planner().decide(n, {})
    assert restore.action is Action.RESTORE and [r.code for r in restore.reasons] == ["output-missing", "in-cache"]
    world.write(n.outputs[0], b"retouched")
    blocked = world.planner().decide(n, {})
    assert blocked.action is Action.BLOCKED and [r.code for r in blocked.reasons] == ["output-modified"]
    assert blocked.handoff is Unsettled.UNBUILT
    forced = world.planner(force=frozenset({"a"})).decide(n, {})
    assert forced.action is Action.GENERATE and forced.reasons == [Reason("forced")]


def test_upstream_hand_offs_pending_unbuilt_or_bytes(world):
    up = node("up")
    down = node("down", refs=(Ref("@up", node="up", paths=up.outputs),))
    planner = world.planner()
    assert planner.decide(down, {"up": Unsettled.PENDING}).reasons == [Reason("upstream-changed", "up")]
    assert planner.decide(down, {"up": Unsettled.UNBUILT}).reasons == [Reason("upstream-unbuilt", "up")]
    one, two = planner.decide(down, {"up": ("a" * 64,)}), planner.decide(down, {"up": ("b" * 64,)})
    assert one.fingerprint != two.fingerprint and one.action is Action.GENERATE


def test_offline_blocks_a_host_but_renders_local(world):
    planner = world.planner(offline=True)
    assert planner.decide(node(), {}).action is Action.GENERATE
    hosted = planner.decide(node("h", provider_type="modelark"), {})
    assert hosted.action is Action.BLOCKED and hosted.reasons[-1] == Reason("offline", "h")
    assert world.planner().decide(node("h", provider_type="modelark"), {}).cost_usd == 0.5


def test_a_plan_hands_each_decision_on_to_its_dependents(world):
    up, down = node("up"), node("down", refs=(Ref("@up", node="up", paths=("out/up-0.png",)),))
    world.built(up)
    decisions = world.planner().plan([up, down])
    assert [d.action for d in decisions] == [Action.UP_TO_DATE, Action.GENERATE]
    assert decisions[1].fingerprint == fingerprint(fingerprint_inputs(
        down, [("@up", world.lock.entries["up"].outputs[0].sha256)]))


def derived(nid: str = "d", steps: tuple = ({"op": "grayscale"},)) -> Node:
    return Node(id=nid, asset=nid, variant=(), prompt="", provider="derive", provider_type="derive", model="derive",
                size="", width=0, height=0, count=1, seed=None, watermark=False, params={},
                references=(Ref("@up", node="up", paths=("out/up-0.png",)),), outputs=(f"out/{nid}.png",),
                kind="derive", steps=steps)


def test_a_derived_node_derives_free_and_offline_and_says_when_its_steps_changed(world):
    up = ("a" * 64,)
    for planner in (world.planner(), world.planner(offline=True)):
        d = planner.decide(derived(), {"up": up})
        assert d.action is Action.DERIVE and d.cost_usd == 0.0 and d.reasons == [Reason("new-asset")]
        assert d.inputs["kind"] == "derive" and d.handoff is Unsettled.PENDING
    world.built(derived(), {"up": up})
    assert world.planner().decide(derived(), {"up": up}).action is Action.UP_TO_DATE
    restepped = world.planner().decide(derived(steps=({"op": "resize", "size": "4x4"},)), {"up": up})
    assert restepped.action is Action.DERIVE and restepped.reasons == [Reason("steps-changed")]
    assert str(restepped.reasons[0]) == "steps changed"
    resourced = world.planner().decide(derived(), {"up": ("b" * 64,)})
    assert resourced.reasons == [Reason("upstream-changed", "up")]
    forced = world.planner(force=frozenset({"d"})).decide(derived(), {"up": up})
    assert forced.action is Action.DERIVE and forced.reasons == [Reason("forced")]
