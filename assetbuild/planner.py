"""Deciding what to do with each node, and why (doit's up-to-date check with reasons).

``Planner.decide`` is the one place that rule lives: ``plan`` calls it with the upstream
outputs a build would produce, the executor calls it again with the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from .cache import Cache
from .expand import Node
from .fingerprint import FileHasher, fingerprint, fingerprint_inputs
from .lockfile import LockEntry, Lockfile


class Action(str, Enum):
    UP_TO_DATE = "up-to-date"
    RESTORE = "restore"
    GENERATE = "generate"
    BLOCKED = "blocked"


# What an upstream node will give its dependents: output hashes, "unknown" (it will be
# regenerated, so its new bytes are not known yet) or "blocked" (it will not be built).
UNKNOWN = "unknown"
BLOCKED = "blocked"
Upstream = Mapping[str, "Sequence[str] | str"]


class ResolvedRef(NamedTuple):
    """One reference image as a build will send it."""

    label: str  # "brand/palette.png", "@hero", "@storyboard#2"
    sha256: str | None  # None: the file is missing
    path: str  # posix, relative to the project root


@dataclass
class Decision:
    node: Node
    action: Action
    reasons: list[str]
    cost_usd: float = 0.0
    fingerprint: str | None = None
    inputs: dict[str, Any] | None = None
    cached: dict[str, Any] | None = None  # the cache record a restore will use
    references: list[ResolvedRef] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.node.id


class Planner:
    def __init__(self, lock: Lockfile, hasher: FileHasher, cache: Cache, *,
                 price: Callable[[Node], float], force: frozenset[str] = frozenset(), offline: bool = False):
        self.lock = lock
        self.hasher = hasher
        self.cache = cache
        self.price = price
        self.force = force
        self.offline = offline

    # -- one node ---------------------------------------------------------------------------

    def decide(self, node: Node, upstream: Upstream) -> Decision:
        refs, pending, blocked = self._references(node, upstream)
        if blocked:
            return Decision(node, Action.BLOCKED, [f"upstream {b} not built" for b in blocked], references=refs)
        entry = self.lock.entries.get(node.id)
        if pending:
            reasons = [f"upstream {p} changed" for p in pending]
            return self._needs_work(node, reasons, None, None, self._hand_edited(node, entry, None), refs)
        missing_refs = [r.label for r in refs if r.sha256 is None]
        if missing_refs:
            return Decision(node, Action.BLOCKED, [f"reference {m} missing" for m in missing_refs], references=refs)
        inputs = fingerprint_inputs(node, [(r.label, r.sha256) for r in refs if r.sha256 is not None])
        fp = fingerprint(inputs)
        hand_edited = self._hand_edited(node, entry, fp)
        if node.id in self.force:
            return self._generate(node, ["forced (--force)"], fp, inputs, refs)
        if entry is not None and entry.fingerprint == fp:
            if hand_edited:
                return Decision(node, Action.BLOCKED, hand_edited, fingerprint=fp, inputs=inputs, references=refs)
            missing = [o.path for o in entry.outputs if self.hasher.hash(o.path) is None]
            if [o.path for o in entry.outputs] == list(node.outputs):
                if not missing:
                    return Decision(node, Action.UP_TO_DATE, [], fingerprint=fp, inputs=inputs, references=refs)
                return self._needs_work(node, [f"output {p} missing" for p in missing], fp, inputs, [], refs)
            reasons = ["output paths changed"]
            if self.cache.result(fp) is None and all(self.hasher.hash(o.path) == o.sha256 for o in entry.outputs):
                # The images are still at their old paths: copy them, never pay for a rename.
                return Decision(node, Action.RESTORE, reasons + ["from the old output paths"], fingerprint=fp,
                                inputs=inputs, cached=_record_of(entry), references=refs)
            return self._needs_work(node, reasons, fp, inputs, [], refs)
        reasons = changes(entry, inputs) if entry is not None else ["new asset"]
        return self._needs_work(node, reasons, fp, inputs, hand_edited, refs)

    def _needs_work(self, node: Node, reasons: list[str], fp: str | None, inputs: dict[str, Any] | None,
                    hand_edited: list[str], refs: list[ResolvedRef]) -> Decision:
        if hand_edited and node.id not in self.force:
            return Decision(node, Action.BLOCKED, reasons + hand_edited,
                            fingerprint=fp, inputs=inputs, references=refs)
        if fp is not None:
            record = self.cache.result(fp)
            if record is not None:
                return Decision(node, Action.RESTORE, reasons + ["in the cache"], fingerprint=fp, inputs=inputs,
                                cached=record, references=refs)
        return self._generate(node, reasons, fp, inputs, refs)

    def _generate(self, node: Node, reasons: list[str], fp: str | None, inputs: dict[str, Any] | None,
                  refs: list[ResolvedRef]) -> Decision:
        if self.offline and node.provider_type != "local":
            return Decision(node, Action.BLOCKED, reasons + [f"needs generation by {node.provider} (--offline)"],
                            fingerprint=fp, inputs=inputs, references=refs)
        return Decision(node, Action.GENERATE, reasons, cost_usd=self.price(node), fingerprint=fp, inputs=inputs,
                        references=refs)

    def _references(self, node: Node, upstream: Upstream) -> tuple[list[ResolvedRef], list[str], list[str]]:
        """The node's reference images with their hashes, and the upstream nodes that are
        still to be rebuilt (``pending``) or will not be (``blocked``)."""
        refs: list[ResolvedRef] = []
        pending: list[str] = []
        blocked: list[str] = []
        for ref in node.references:
            if ref.path is not None:
                refs.append(ResolvedRef(ref.label, self.hasher.reference(ref), ref.path))
                continue
            assert ref.node is not None
            shas = upstream.get(ref.node, BLOCKED)
            if shas == BLOCKED or shas == UNKNOWN:
                waiting = blocked if shas == BLOCKED else pending
                if ref.node not in waiting:
                    waiting.append(ref.node)
                continue
            chosen = list(shas) if ref.index is None else [shas[ref.index]]
            for i, (sha, path) in enumerate(zip(chosen, ref.paths)):
                refs.append(ResolvedRef(ref.label if len(chosen) == 1 else f"{ref.label}#{i + 1}", sha, path))
        return refs, pending, blocked

    def _hand_edited(self, node: Node, entry: LockEntry | None, fp: str | None) -> list[str]:
        """Reasons for outputs on disk whose bytes are not what assetbuild wrote there."""
        if entry is not None:
            expected = {o.path: o.sha256 for o in entry.outputs}
        else:
            record = self.cache.result(fp) if fp is not None else None
            expected = dict(zip(node.outputs, record["images"])) if record else {}
        found = []
        for path in node.outputs:
            sha = self.hasher.hash(path)
            if sha is None or expected.get(path) == sha:
                continue
            how = "modified by hand" if path in expected else "exists but was not written by assetbuild"
            found.append(f"output {path} {how} (--force overwrites it)")
        return found

    # -- a whole plan -----------------------------------------------------------------------

    def plan(self, nodes: Sequence[Node]) -> list[Decision]:
        """Decisions in build order, simulating what each upstream will provide."""
        produced: dict[str, Sequence[str] | str] = {}
        decisions = []
        for node in nodes:
            d = self.decide(node, produced)
            decisions.append(d)
            produced[node.id] = outputs_of(d, self.lock)
        return decisions


def _record_of(entry: LockEntry) -> dict[str, Any]:
    """A cache-record-shaped view of a lock entry whose images are still on disk."""
    return {
        "images": [o.sha256 for o in entry.outputs],
        "files": [o.path for o in entry.outputs],
        "provider": entry.provider,
        "model_id": entry.model_id,
        "request_id": entry.request_id,
        "cost_usd": entry.cost_usd,
        "built": entry.built,
    }


def outputs_of(d: Decision, lock: Lockfile) -> Sequence[str] | str:
    """What a decision will hand its dependents, before it runs."""
    if d.action is Action.UP_TO_DATE:
        return [o.sha256 for o in lock.entries[d.id].outputs]
    if d.action is Action.RESTORE:
        assert d.cached is not None
        return list(d.cached["images"])
    if d.action is Action.GENERATE:
        return UNKNOWN
    return BLOCKED


def changes(entry: LockEntry, inputs: dict[str, Any]) -> list[str]:
    """Why ``inputs`` differ from what the lock recorded, in words."""
    old = entry.inputs
    reasons = []
    for key in ("prompt", "model", "size", "count", "seed", "watermark", "params"):
        if old.get(key) != inputs.get(key):
            if key in ("model", "size", "count"):
                reasons.append(f"{key} changed ({old.get(key)} -> {inputs.get(key)})")
            else:
                reasons.append(f"{key} changed")
    old_refs = [(r.get("ref"), r.get("sha256")) for r in old.get("references") or []]
    new_refs = [(r["ref"], r["sha256"]) for r in inputs["references"]]
    if [label for label, _ in old_refs] != [label for label, _ in new_refs]:
        if [sha for _, sha in old_refs] != [sha for _, sha in new_refs]:
            reasons.append("references changed")
    else:
        for (label, sha), (_, old_sha) in zip(new_refs, old_refs):
            if sha != old_sha:
                reasons.append(f"upstream {label[1:].split('#')[0]} changed" if label.startswith("@")
                               else f"reference {label} changed")
    if not reasons:
        reasons.append("recipe changed" if old.get("recipe") != inputs["recipe"] else "fingerprint changed")
    return list(dict.fromkeys(reasons))
