"""Deciding what to do with each node, and why (doit's up-to-date check with reasons).

``Planner.decide`` is the one place that rule lives. ``Planner.plan`` decides every node once,
in build order, from what each upstream node will hand down (:class:`Decision.handoff`); the
executor runs those decisions and decides again only a node whose upstream turned out to
hand down something else than planned (bytes not known yet when planned: it is regenerated).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import AbstractSet, Any, Callable, Mapping, NamedTuple, Sequence, Union

from ..store.cache import Cache, CacheRecord
from ..spec.nodes import Node, Selection
from .routing import calls_host
from .fingerprint import fingerprint, fingerprint_inputs
from ..store.hashing import FileHasher
from ..store.lockfile import INPUT_KEYS, LockEntry, Lockfile, by_fingerprint, recorded_input
from .choice import Choice, is_lfs_pointer, prior_images, reroll_request
from .reasons import HAND_EDIT_CODES, Reason, ReasonCode, input_changed


class Action(str, Enum):
    UP_TO_DATE = "up-to-date"
    RESTORE = "restore"
    GENERATE = "generate"
    DERIVE = "derive"  # local Pillow steps: no provider call, no cost, allowed --offline
    BLOCKED = "blocked"


class Unsettled(Enum):
    """What an upstream node hands down when it has no output bytes to give."""

    PENDING = "pending"  # it will be (re)generated: its new bytes are not known yet
    UNBUILT = "unbuilt"  # it will not be built (blocked, failed, or not started)


# What a node hands its dependents: the sha256 of each output, or why there are none yet.
Handoff = Union[tuple[str, ...], Unsettled]
Upstream = Mapping[str, "Handoff | Sequence[str]"]

# The inputs compared one by one (each has its own -changed reason); the references and the
# recipe are compared after them.
COMPARED_INPUTS = tuple(key for key in INPUT_KEYS if key not in ("recipe", "references"))


class ResolvedRef(NamedTuple):
    """One reference image as a build will send it."""

    label: str  # "brand/palette.png", "@hero", "@storyboard#2"
    sha256: str | None  # None: the file is missing
    path: str  # posix, relative to the project root


@dataclass
class Decision:
    """What to do with one node, and why. Made once, whole, by the planner (a reroll's ``reroll``
    and ``keep`` included); the executor replaces one it decides again, never edits it."""

    node: Node
    action: Action
    reasons: list[Reason]
    cost_usd: float = 0.0
    fingerprint: str | None = None
    inputs: dict[str, Any] | None = None
    cached: CacheRecord | None = None  # the cache record a restore will use
    references: list[ResolvedRef] = field(default_factory=list)
    outputs: tuple[str, ...] | None = None  # sha256 of each output, where known before running
    # The review loop (choice.py). ``choice``: what the lock entry records about candidates,
    # pick and adoption after this action, when the plan already knows it (a restore of the
    # lock's own choice); None: worked out from the images made. ``reroll``: generate anew on
    # purpose (a new request key and seed); ``keep``: earlier images that stay pickable.
    choice: Choice | None = None
    reroll: bool = False
    keep: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def handoff(self) -> Handoff:
        """What this decision will hand its dependents, before it runs (a blocked node: the
        output it keeps, an adopted hand edit, else nothing)."""
        if self.action is Action.BLOCKED:
            return self.outputs if self.outputs is not None else Unsettled.UNBUILT
        return self.outputs if self.outputs is not None else Unsettled.PENDING


class Planner:
    def __init__(self, lock: Lockfile, hasher: FileHasher, cache: Cache, *,
                 price: Callable[[Node], float], force: frozenset[str] = frozenset(), offline: bool = False,
                 elsewhere: Callable[[], Mapping[str, set[str]]] | None = None,
                 missing_key: Callable[[Node], str | None] | None = None, reroll: frozenset[str] = frozenset(),
                 built_in_git: Callable[[str], str | None] | None = None, retry_failed: bool = False,
                 resume: Mapping[str, Mapping[str, str]] | None = None):
        self.lock = lock
        # asset -> an interrupted reroll of it ({"fingerprint", "key"}) whose paid job is saved
        self.resume = resume or {}
        self.retry_failed = retry_failed  # pay again for inputs whose billed job's images never came
        # fingerprint -> the git revision (the other side of a merge in progress, or a commit
        # before it) whose lock built it; asked only for a node about to be generated
        self.built_in_git = built_in_git
        self.elsewhere = elsewhere  # path -> sha256s other locks (git's) recorded; asked only for a changed file
        self.hasher = hasher
        self.cache = cache
        self.price = price
        self.force = force
        self.offline = offline
        self._by_fingerprint: dict[str, list[str]] | None = None
        self.missing_key = missing_key  # the variable(s) to set when no provider for the node has a key
        self.reroll = reroll
        self._hand_edited_ids: set[str] = set()  # blocked until the user adopts or overwrites a hand edit

    # -- one node ---------------------------------------------------------------------------

    def decide(self, node: Node, upstream: Upstream) -> Decision:
        decision = self._decide(node, upstream)
        if decision.action is Action.BLOCKED and any(r.code in HAND_EDIT_CODES for r in decision.reasons):
            self._hand_edited_ids.add(node.id)
        return decision

    def _decide(self, node: Node, upstream: Upstream) -> Decision:
        refs, pending, unbuilt = self._references(node, upstream)
        if unbuilt:
            return Decision(node, Action.BLOCKED, [Reason(ReasonCode.UPSTREAM_HAND_EDITED, b, asset=b)
                                                   if b in self._hand_edited_ids else Reason(ReasonCode.UPSTREAM_UNBUILT, b)
                                                   for b in unbuilt], references=refs)
        entry = self.lock.entries.get(node.id)
        if pending:
            reasons = [Reason(ReasonCode.UPSTREAM_CHANGED, p) for p in pending]
            return self._needs_work(node, reasons, None, None, self._hand_edited(node, entry, None), refs, entry)
        missing_refs = [r.label for r in refs if r.sha256 is None]
        if missing_refs:
            return Decision(node, Action.BLOCKED, [Reason(ReasonCode.REFERENCE_MISSING, m) for m in missing_refs],
                            references=refs)
        return self._decide_known(node, entry, refs)

    def _decide_known(self, node: Node, entry: LockEntry | None, refs: list[ResolvedRef]) -> Decision:
        """Every reference's bytes are known: the node's fingerprint decides."""
        inputs = fingerprint_inputs(node, [(r.label, r.sha256) for r in refs if r.sha256 is not None])
        fp = fingerprint(inputs)
        on_disk = {path: self.hasher.hash(path) for path in node.outputs}
        hand_edited = self._hand_edited(node, entry, fp, on_disk)
        if node.id in self.force:
            return self.generation(node, [Reason(ReasonCode.FORCED)], fp, inputs, refs)
        if node.id in self.reroll:
            return self._reroll(node, entry, fp, inputs, hand_edited, refs)
        resumed = self._resumed_reroll(node, entry, fp, inputs, hand_edited, refs)
        if resumed is not None:
            return resumed
        if entry is not None and entry.fingerprint == fp:
            if hand_edited:
                return Decision(node, Action.BLOCKED, hand_edited, fingerprint=fp, inputs=inputs, references=refs)
            return self._as_recorded(node, entry, fp, inputs, on_disk, refs)
        reasons = changes(entry, inputs) if entry is not None else [Reason(ReasonCode.NEW_ASSET)]
        return self._needs_work(node, reasons, fp, inputs, hand_edited, refs, entry)

    def _as_recorded(self, node: Node, entry: LockEntry, fp: str, inputs: dict[str, Any],
                     on_disk: Mapping[str, str | None], refs: list[ResolvedRef]) -> Decision:
        """The lock recorded this very fingerprint: up to date unless outputs went missing or moved."""
        if [o.path for o in entry.outputs] != list(node.outputs):
            return self._paths_changed(node, entry, fp, inputs, refs)
        missing = [o.path for o in entry.outputs
                   if (on_disk[o.path] if o.path in on_disk else self.hasher.hash(o.path)) is None]
        if not missing:
            return Decision(node, Action.UP_TO_DATE, [], fingerprint=fp, inputs=inputs, references=refs,
                            outputs=tuple(o.sha256 for o in entry.outputs))
        reasons = [Reason(ReasonCode.OUTPUT_MISSING, p) for p in missing]
        if entry.candidate_images or entry.adopted:
            # A pick or a hand edit the lock chose: restore exactly those bytes.
            return self._restore(node, reasons, fp, inputs, _record_of(entry), refs, Choice.of(entry))
        return self._needs_work(node, reasons, fp, inputs, [], refs, locked=entry)

    def _paths_changed(self, node: Node, entry: LockEntry, fp: str, inputs: dict[str, Any],
                       refs: list[ResolvedRef]) -> Decision:
        reasons = [Reason(ReasonCode.OUTPUT_PATHS_CHANGED)]
        chosen = bool(entry.candidate_images or entry.adopted)
        if (chosen or self.cache.result(fp) is None) \
                and all(self.hasher.hash(o.path) == o.sha256 for o in entry.outputs):
            # The images are still at their old paths: copy them, never pay for a rename.
            return self._restore(node, reasons + [Reason(ReasonCode.OLD_OUTPUT_PATHS)], fp, inputs,
                                 _record_of(entry), refs, Choice.of(entry) if chosen else None)
        return self._needs_work(node, reasons, fp, inputs, [], refs)

    def _needs_work(self, node: Node, reasons: list[Reason], fp: str | None, inputs: dict[str, Any] | None,
                    hand_edited: list[Reason], refs: list[ResolvedRef], entry: LockEntry | None = None,
                    locked: LockEntry | None = None) -> Decision:
        """``entry`` is given where the node's inputs changed (or are not known yet): an output
        adopted by hand is then kept unless forced. ``locked`` is the lock's entry for this very
        fingerprint: its sha256s win over any shared-cache record (a record naming other images
        is ignored), and its images are fetched by those sha256s before anything is paid for."""
        if node.id not in self.force:
            if hand_edited:
                return Decision(node, Action.BLOCKED, reasons + hand_edited,
                                fingerprint=fp, inputs=inputs, references=refs)
            if entry is not None and entry.adopted:
                # Kept as it is: its dependents go on reading the hand edit while it is on disk.
                kept = (entry.adopted,) if self.hasher.hash(node.outputs[0]) == entry.adopted else None
                return Decision(node, Action.BLOCKED, reasons + [Reason(ReasonCode.ADOPTED_INPUTS_CHANGED, node.outputs[0])],
                                fingerprint=fp, inputs=inputs, references=refs, outputs=kept)
        if fp is not None:
            shas = tuple(o.sha256 for o in locked.outputs) if locked is not None else None
            record = self.cache.result(fp, locked=shas)
            if record is None and locked is not None and shas and self.cache.fetch(shas):
                record = replace(_record_of(locked), files=())
            if record is not None:
                return self._restore(node, reasons + [Reason(ReasonCode.IN_CACHE)], fp, inputs, record, refs)
            found = self._built_elsewhere(node, fp)
            if found is not None:
                return self._restore(node, reasons + [Reason(ReasonCode.SAME_CONTENT, found)], fp, inputs,
                                     _record_of(self.lock.entries[found]), refs)
            rev = self.built_in_git(fp) if self.built_in_git is not None and not node.derived else None
            if rev is not None and node.id not in self.force:
                # Paid for on the other branch: `lock resolve` takes its images from git. Never
                # generated again, whatever the provider (even `local`, free as it is).
                return Decision(node, Action.BLOCKED, reasons + [Reason(ReasonCode.MERGE_BUILT, rev)], fingerprint=fp,
                                inputs=inputs, references=refs)
        return self.generation(node, reasons, fp, inputs, refs)

    def _built_elsewhere(self, node: Node, fp: str) -> str | None:
        """Content, not names, decides: another lock entry (any id: a renamed asset, a variant
        it moved into, the other side of a merge) built with this fingerprint, whose files on
        disk still hold the recorded bytes. Its images are copied, never paid for again."""
        if self._by_fingerprint is None:
            self._by_fingerprint = by_fingerprint(self.lock.entries)
        for other in self._by_fingerprint.get(fp, ()):
            entry = self.lock.entries.get(other)
            if (other != node.id and entry is not None and entry.fingerprint == fp
                    and len(entry.outputs) == len(node.outputs)
                    and all(self.hasher.hash(o.path) == o.sha256 for o in entry.outputs)):
                return other
        return None

    @staticmethod
    def _restore(node: Node, reasons: list[Reason], fp: str, inputs: dict[str, Any], record: CacheRecord,
                 refs: list[ResolvedRef], choice: Choice | None = None) -> Decision:
        outputs = record.images
        if outputs is not None and choice is None and node.candidates > 1:
            outputs = outputs[:1]  # the cached batch's first candidate, as a fresh build picks
        return Decision(node, Action.RESTORE, reasons, fingerprint=fp, inputs=inputs, cached=record,
                        references=refs, outputs=outputs, choice=choice)

    def _reroll(self, node: Node, entry: LockEntry | None, fp: str, inputs: dict[str, Any],
                hand_edited: list[Reason], refs: list[ResolvedRef]) -> Decision:
        """Generate again on purpose though nothing changed: what the lock has now stays
        pickable (``keep``). A hand edit not adopted yet blocks it, as it blocks a build."""
        if entry is not None and entry.fingerprint == fp:
            reasons = [Reason(ReasonCode.REROLL)]
            keep = prior_images(entry)
        else:
            reasons = (changes(entry, inputs) if entry is not None else [Reason(ReasonCode.NEW_ASSET)]) + [Reason(ReasonCode.REROLL)]
            keep = ()
            if entry is not None and entry.adopted and node.id not in self.force:
                hand_edited = hand_edited + [Reason(ReasonCode.ADOPTED_INPUTS_CHANGED, node.outputs[0])]
        if hand_edited:
            return Decision(node, Action.BLOCKED, reasons + hand_edited, fingerprint=fp, inputs=inputs,
                            references=refs)
        return self.generation(node, reasons, fp, inputs, refs, keep=keep)

    def _resumed_reroll(self, node: Node, entry: LockEntry | None, fp: str, inputs: dict[str, Any],
                        hand_edited: list[Reason], refs: list[ResolvedRef]) -> Decision | None:
        """A reroll of ``node`` that a kill interrupted after its job was submitted (and billed),
        taken up again by a plain build: only for the same inputs and the same images kept, so
        its request is the saved job's (resumed, never submitted again)."""
        pending = self.resume.get(node.id)
        if pending is None or pending.get("fingerprint") != fp:
            return None
        d = self._reroll(node, entry, fp, inputs, hand_edited, refs)
        if d.action is not Action.GENERATE or reroll_request(fp, d.keep)[0] != pending.get("key"):
            return None
        d.reasons = [r for r in d.reasons if r.code is not ReasonCode.REROLL] + [Reason(ReasonCode.REROLL_RESUMED)]
        return d

    def generation(self, node: Node, reasons: list[Reason], fp: str | None, inputs: dict[str, Any] | None,
                   refs: list[ResolvedRef], *, keep: tuple[str, ...] | None = None) -> Decision:
        """Make the node's images anew: derive a derived node (free, offline too); generate
        any other, with its cost, unless --offline forbids calling a host. ``keep``: this is a
        reroll, and these earlier images stay pickable (None: not a reroll)."""
        if node.derived:
            return Decision(node, Action.DERIVE, reasons, fingerprint=fp, inputs=inputs, references=refs)
        if self.offline and calls_host(node):
            return Decision(node, Action.BLOCKED, reasons + [Reason(ReasonCode.OFFLINE, node.provider)],
                            fingerprint=fp, inputs=inputs, references=refs)
        variable = self.missing_key(node) if self.missing_key is not None else None
        if variable:
            return Decision(node, Action.BLOCKED, reasons + [Reason(ReasonCode.MISSING_KEY, variable)],
                            fingerprint=fp, inputs=inputs, references=refs)
        billed = self.cache.billed(fp) if fp is not None and not self.retry_failed else None
        if billed is not None:  # paid once already: never again without the user's word
            return Decision(node, Action.BLOCKED,
                            reasons + [Reason(ReasonCode.BILLED_UNUSABLE, str(billed.get("request_id") or "?"))],
                            fingerprint=fp, inputs=inputs, references=refs)
        return Decision(node, Action.GENERATE, reasons, cost_usd=self.price(node), fingerprint=fp, inputs=inputs,
                        references=refs, reroll=keep is not None, keep=keep or ())

    def _references(self, node: Node, upstream: Upstream) -> tuple[list[ResolvedRef], list[str], list[str]]:
        """The node's reference images with their hashes, and the upstream nodes that are
        still to be rebuilt (``pending``) or will not be (``unbuilt``)."""
        refs: list[ResolvedRef] = []
        pending: list[str] = []
        unbuilt: list[str] = []
        for ref in node.references:
            if ref.path is not None:
                assert ref.site is not None
                sha, problem = self.hasher.reference(ref.path, ref.site.max_pixels)
                if problem:
                    raise ref.site.error(f"{ref.path} {problem}")
                refs.append(ResolvedRef(ref.label, sha, ref.path))
                continue
            assert ref.node is not None
            shas = upstream.get(ref.node, Unsettled.UNBUILT)
            if isinstance(shas, Unsettled):
                waiting = unbuilt if shas is Unsettled.UNBUILT else pending
                if ref.node not in waiting:
                    waiting.append(ref.node)
                continue
            chosen = list(shas) if ref.index is None else [shas[ref.index]]
            for i, (sha, path) in enumerate(zip(chosen, ref.paths)):
                refs.append(ResolvedRef(ref.label if len(chosen) == 1 else f"{ref.label}#{i + 1}", sha, path))
        return refs, pending, unbuilt

    def _hand_edited(self, node: Node, entry: LockEntry | None, fp: str | None,
                     on_disk: Mapping[str, str | None] | None = None) -> list[Reason]:
        """Reasons for outputs on disk whose bytes are not what assetbuild wrote there: neither
        what the lock recorded nor the cached result for the current fingerprint (a build
        killed after writing an output, before saving the lock, left exactly that)."""
        recorded = {o.path: o.sha256 for o in entry.outputs} if entry is not None else {}
        cached: dict[str, str] | None = None
        found = []
        for path in node.outputs:
            sha = on_disk[path] if on_disk is not None else self.hasher.hash(path)
            if sha is None or recorded.get(path) == sha:
                continue
            if cached is None:  # looked up only when a file differs: a no-op build never opens the index
                record = self.cache.result(fp) if fp is not None else None
                cached = dict(zip(node.outputs, record.images)) if record and record.images else {}
            if cached.get(path) == sha:
                continue
            if is_lfs_pointer(self.hasher.root / path):
                found.append(Reason(ReasonCode.LFS_POINTER, path))
                continue
            if self.elsewhere is not None and sha in self.elsewhere().get(path, ()):
                found.append(Reason(ReasonCode.OUTPUT_OTHER_LOCK, path))
                continue
            found.append(Reason(ReasonCode.OUTPUT_MODIFIED if path in recorded else ReasonCode.OUTPUT_FOREIGN, path,
                                asset=node.id))
        return found

    def for_run(self, lock: Lockfile) -> "Planner":
        """This planner, to decide again during a build what it planned: over ``lock`` as the
        build has it (read afresh under the build lock), whose entries the build records as it
        goes, so the index of entries by fingerprint is made again when first needed."""
        self.lock = lock
        self._by_fingerprint = None
        return self

    # -- a whole plan -----------------------------------------------------------------------

    def plan(self, nodes: Sequence[Node], proven: AbstractSet[str] = frozenset()) -> list[Decision]:
        """One decision per node, in build order, each from what its upstream will hand down.
        A node of ``proven`` (run/stamp.UpToDate: its record, lock entry and files are those
        of a plan that found it up to date) whose upstream are all taken so too is up to date
        as the lock recorded it (:class:`Kept`), without being decided again (unless forced,
        rerolled or resumed)."""
        source = nodes if isinstance(nodes, Selection) else Selection.of(nodes)
        decided: dict[str, Decision] = {}
        handoffs = _Handoffs(decided)
        decisions = []
        entries = self.lock.entries
        # proven, in the lock, and neither forced, rerolled nor resumed (set operations, not a test per node)
        eligible = (frozenset(proven) - self.force - self.reroll - self.resume.keys()) & entries.keys()
        kept: set[str] = set()
        upstream = source.upstream
        kept_of = Kept.of
        for nid in source.ids:
            if nid in eligible and kept.issuperset(upstream(nid)):
                kept.add(nid)
                d: Decision = kept_of(nid, source, entries)
            else:
                d = self.decide(source.node(nid), handoffs)
            decisions.append(d)
            decided[nid] = d
        return decisions


class Kept(Decision):
    """An up-to-date decision taken from the up-to-date record (Planner.plan): its fingerprint
    and outputs are the lock entry's, and its node the blueprint's, each read only when asked
    for (a plan of 10,000 nodes after one edit decodes only the nodes and entries it decides,
    and those of the few upstream nodes they read). Made once, never replaced."""

    _id: str
    _source: Selection
    _entries: Mapping[str, LockEntry]
    # the same for every one (the other fields' class defaults are Decision's: no cost, no
    # inputs, nothing cached, no choice, no reroll, nothing kept)
    action = Action.UP_TO_DATE
    references: Sequence[ResolvedRef] = ()  # never read: an up-to-date node sends nothing

    @classmethod
    def of(cls, nid: str, source: Selection, entries: Mapping[str, LockEntry]) -> "Kept":
        d = _new(cls)  # without the dataclass __init__ (10,000 of them)
        d.__dict__ = {"_id": nid, "_source": source, "_entries": entries, "reasons": []}
        return d

    @property
    def id(self) -> str:
        return self._id

    @property  # type: ignore[override]
    def node(self) -> Node:
        return self._source.node(self._id)

    @property  # type: ignore[override]
    def fingerprint(self) -> str:
        return self._entries[self._id].fingerprint

    @property  # type: ignore[override]
    def outputs(self) -> tuple[str, ...]:
        return tuple([o.sha256 for o in self._entries[self._id].outputs])


class _Handoffs(Mapping[str, Handoff]):
    """What each node decided so far hands down, worked out when a dependent asks."""

    def __init__(self, decided: Mapping[str, Decision]):
        self._decided = decided

    def __getitem__(self, nid: str) -> Handoff:
        return self._decided[nid].handoff

    def __iter__(self) -> Any:
        return iter(self._decided)

    def __len__(self) -> int:
        return len(self._decided)


_new = object.__new__


def _record_of(entry: LockEntry) -> CacheRecord:
    """A cache record read off a lock entry whose images are still on disk."""
    shas = tuple(o.sha256 for o in entry.outputs)
    return CacheRecord(originals=shas, images=shas, files=tuple(o.path for o in entry.outputs),
                       provider=entry.provider, model_id=entry.model_id, request_id=entry.request_id,
                       cost_usd=entry.cost_usd, built=entry.built)


def _comparable(key: str, value: Any) -> Any:
    """An input as the fingerprint counts it: as the lock keeps it (lockfile.recorded_input:
    no empty params, no candidates = 1), and an overlay's image by its bytes (among the
    references), not its name."""
    value = recorded_input(key, value)
    if key == "steps" and isinstance(value, list):
        value = [{k: v for k, v in step.items() if k != "image"} if isinstance(step, dict) else step
                 for step in value]
    return None if value == [] else value


# What an input left out of the fingerprint (and the lock) means, as a change shows it.
_DEFAULT_SHOWN = {"candidates": 1, "batch": "sequential", "output_format": "the host's default"}


def _shown(key: str, value: Any) -> Any:
    return _DEFAULT_SHOWN.get(key, value) if value is None or (key == "candidates" and not value) else value


def changes(entry: LockEntry, inputs: dict[str, Any]) -> list[Reason]:
    """Why ``inputs`` differ from what the lock recorded."""
    old = entry.inputs
    reasons = []
    for key in COMPARED_INPUTS:
        if _comparable(key, old.get(key)) != _comparable(key, inputs.get(key)):
            detail = (f"{_shown(key, old.get(key))} -> {_shown(key, inputs.get(key))}"
                      if key in ("kind", "model", "size", "count", "candidates", "batch", "output_format")
                      # the old prompt (the new one is in ``inputs``): plan, explain and report show a word diff
                      else str(old.get(key) or "") if key == "prompt" else "")
            reasons.append(Reason(input_changed(key), detail))
    old_refs = [(r.get("ref"), r.get("sha256")) for r in old.get("references") or []]
    new_refs = [(r["ref"], r["sha256"]) for r in inputs["references"]]
    if [label for label, _ in old_refs] != [label for label, _ in new_refs]:
        if [sha for _, sha in old_refs] != [sha for _, sha in new_refs]:
            reasons.append(Reason(ReasonCode.REFERENCES_CHANGED))
    else:
        for (label, sha), (_, old_sha) in zip(new_refs, old_refs):
            if sha != old_sha:
                reasons.append(Reason(ReasonCode.UPSTREAM_CHANGED, label[1:].split("#")[0]) if label.startswith("@")
                               else Reason(ReasonCode.REFERENCE_CHANGED, label))
    if not reasons:
        reasons.append(Reason(ReasonCode.RECIPE_CHANGED if old.get("recipe") != inputs["recipe"] else "fingerprint-changed"))
    return list(dict.fromkeys(reasons))
