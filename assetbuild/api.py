"""The library entry points the CLI calls: ``Project.load(...)`` then ``plan()``,
``build()``, ``check()``, ``explain()``, ``graph()``.

Every side effect comes in through a seam with a production default: the environment
(``env``), time (``clock``), how providers are made (``provider_factory``) and the cache
(``cache``, by default the folder ``cache_dir`` names).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from .store.cache import Cache, cache_dir
from .clock import Clock, SystemClock
from .errors import BudgetError, LockfileError, LockfileTooNew, UsageError, UserError
from .run.executor import Budget, Event, Executor, NodeResult
from .run.stamp import UpToDate
from .spec.blueprint import Blueprint
from .store.files import DeletionRule, exclusive, sweep_temp_files
from . import jsonout
from .process import paused
from .money import usd
from .store.hashing import FileHasher
from .commands.leftovers import Leftover, claims, gone, sibling_claims, sweep
from .plan.routing import MissingKey, Routing, missing_keys
from .store.lockfile import Lockfile, lock_path
from .spec.nodes import Node, Selection
from .plan.planner import Action, Decision, Planner
from .plan.reasons import ReasonCode, texts
from .store.remote import RemoteStore, remote_spec

if TYPE_CHECKING:  # the providers package is imported only when a provider is made
    from .providers.base import Provider

MANIFEST_NAME = "assetbuild.toml"
MERGE_HEAD_REVS = 50  # during a merge, the commits whose locks may hold an image already paid for
OTHER_LOCK_REVS = ("MERGE_HEAD", "HEAD", "HEAD^2", "ORIG_HEAD")  # whose locks explain an output that differs

def find_manifest(directory: str | Path = ".", manifest: str | Path | None = None) -> Path:
    """The manifest a command in ``directory`` works on. ``manifest`` (``-f``) is taken as
    given, relative to ``directory``. Else the nearest assetbuild.toml in ``directory`` or a
    folder above it, as git, ruff and uv look for theirs: the search stops at the repository
    root (a folder holding ``.git``), so a project never picks up a manifest from outside its
    repository. None found: ``directory``'s own (loading it says there is none)."""
    directory = Path(directory)
    if manifest is not None:
        path = Path(manifest)
        return path if path.is_absolute() else directory / path
    here = directory / MANIFEST_NAME
    folder = directory.resolve()
    while True:
        if (folder / MANIFEST_NAME).is_file():
            return here if folder == directory.resolve() else folder / MANIFEST_NAME
        if (folder / ".git").exists() or folder.parent == folder:
            return here
        folder = folder.parent


ProviderFactory = Callable[..., "Provider"]


def default_provider_factory(name: str, config: Any, *, env: Mapping[str, str], clock: Clock) -> Provider:
    from .providers import create_provider

    return create_provider(name, config, env=env, clock=clock)


class Providers:
    """The project's provider pool (plan/routing.ProviderPool): one provider instance per
    configured name for the life of a project (their rate limits and concurrency are shared
    by every thread of a build). Which one a node goes to is plan/routing.Routing's."""

    def __init__(self, blueprint: Blueprint, factory: ProviderFactory, env: Mapping[str, str], clock: Clock):
        self._blueprint = blueprint
        self._factory = factory
        self._env = env
        self._clock = clock
        self._made: dict[str, Provider] = {}
        self._mutex = threading.Lock()

    def get(self, name: str) -> Provider:
        with self._mutex:
            if name not in self._made:
                self._made[name] = self._factory(name, self._blueprint.provider_config(name),
                                                 env=self._env, clock=self._clock)
            return self._made[name]

    def fallback_of(self, name: str) -> str | None:
        return self._blueprint.fallback_of(name)

    def interrupt(self) -> None:
        with self._mutex:
            made = list(self._made.values())
        for provider in made:
            provider.interrupt()

    def close(self) -> None:
        for provider in self._made.values():
            provider.close()


@dataclass(frozen=True)
class BuildOptions:
    """How a plan is made and then built, decided once (the CLI, from its flags) and carried
    by the :class:`Plan`: building a plan uses the options it was planned under."""

    force: bool = False  # rebuild the targets (all if none) though up to date
    offline: bool = False  # no provider calls: restore, derive and local only
    assume_keys: bool = False  # plan as if every API key were set (plan --assume-keys; cannot be built)
    reroll: tuple[str, ...] = ()  # assets to generate again though nothing changed (review.py)
    jobs: int = 4
    keep_going: bool = False
    max_cost: float | None = None  # None: the manifest's max_cost, if any
    shard: tuple[int, int] | None = None  # (K, N): build only shard K of N (build --shard K/N)
    retry_failed: bool = False  # pay again for inputs whose billed job's images could not be fetched

    def __post_init__(self) -> None:
        object.__setattr__(self, "reroll", tuple(self.reroll))


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` of ``build --shard`` as (K, N), 1 <= K <= N; a UsageError otherwise."""
    k, _, n = text.partition("/")
    if k.strip().isdigit() and n.strip().isdigit() and 1 <= int(k) <= int(n):
        return int(k), int(n)
    raise UsageError(f"--shard {text!r}: give K/N with 1 <= K <= N, e.g. --shard 1/3")


def shard_of(asset_id: str, shards: int) -> int:
    """Which of ``shards`` shards (1-based) builds an asset: a hash of its id, so every shard
    agrees before anything is built (an asset's fingerprint is not known until its upstream
    results are)."""
    return int.from_bytes(hashlib.sha256(asset_id.encode("utf-8")).digest()[:8], "big") % shards + 1


@dataclass
class Plan:
    """What a build will do: one decision per node in build order, the options they were
    decided under and the planner that decided them (the executor runs the decisions as they
    are, and asks that planner again only about a node whose upstream changed)."""

    decisions: list[Decision]
    options: BuildOptions
    planner: Planner
    forced: frozenset[str] = frozenset()  # the node ids --force named
    rerolled: frozenset[str] = frozenset()  # generated again on purpose (review.py)
    warnings: list[str] = field(default_factory=list)  # e.g. the remote cache was unreachable
    pruned: list[Leftover] = field(default_factory=list)  # assets gone from the manifest, and their files

    @property
    def assume_keys(self) -> bool:
        """Planned as if every API key were set (plan --assume-keys)."""
        return self.options.assume_keys

    @property
    def missing_keys(self) -> list[MissingKey]:
        """Each API key variable that is not set, with the assets it blocks."""
        return missing_keys([(d.id, d.node.provider, d.reasons) for d in self.decisions if d.reasons])

    @property
    def estimated_cost(self) -> float:
        return round(sum(d.cost_usd for d in self.decisions), 6)

    @property
    def action_counts(self) -> dict[str, int]:
        """How many nodes take each action (in the order the actions first come), then how
        many assets a prune removes."""
        counts: dict[str, int] = {}
        for d in self.decisions:
            counts[d.action.value] = counts.get(d.action.value, 0) + 1
        if self.pruned:
            counts["prune"] = len(self.pruned)
        return counts

    @property
    def summary(self) -> str:
        """``2 generate, 3 up-to-date``, or ``nothing to do``."""
        return ", ".join(f"{n} {action}" for action, n in self.action_counts.items()) or "nothing to do"

    def to_json(self) -> dict[str, Any]:
        return self._json([_action_json(d) for d in self.decisions])

    def json_text(self) -> str:
        """``jsonout.dumps(self.to_json())``, the same text, with each up-to-date action
        written from one template (a plan after an edit is mostly those: 10,000 actions
        written one value at a time took 45 ms)."""
        up_to_date = Action.UP_TO_DATE
        return jsonout.dumps(self._json([
            jsonout.Fragment(_UP_TO_DATE_JSON % jsonout.string(d.id))
            if d.action is up_to_date and not d.reasons and d.cost_usd == 0.0 else _action_json(d)
            for d in self.decisions]))

    def _json(self, actions: list[Any]) -> dict[str, Any]:
        return {"actions": actions, "pruned": [p.to_json() for p in self.pruned],
                "estimated_cost": self.estimated_cost, "missing_keys": [m.to_json() for m in self.missing_keys]}


def _action_json(d: Decision) -> dict[str, Any]:
    return {"asset": d.id, "action": d.action.value, "reasons": texts(d.reasons) if d.reasons else [],
            "codes": [r.code for r in d.reasons], "cost": round(d.cost_usd, 6)}


# _action_json of an up-to-date decision as jsonout.dumps writes it in Plan._json's "actions"
# (tests/test_uptodate.py holds json_text equal to json.dumps(to_json(), indent=2))
_UP_TO_DATE_JSON = ('{\n      "asset": %s,\n      "action": "up-to-date",\n      "reasons": [],\n      "codes": [],'
                    '\n      "cost": 0.0\n    }')


@dataclass
class BuildReport:
    results: list[NodeResult]
    pruned: list[Leftover] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. the remote cache was unreachable
    missing_keys: list[MissingKey] = field(default_factory=list)  # the API keys that blocked assets

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def cost_usd(self) -> float:
        return round(sum(r.cost_usd for r in self.results), 6)

    @property
    def ok(self) -> bool:
        return not any(r.status in ("failed", "blocked") for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": self.count("generated"),
            "restored": self.count("restored"),
            "derived": self.count("derived"),
            "up_to_date": self.count("up-to-date"),
            "failed": self.count("failed"),
            "blocked": self.count("blocked"),
            "cost": self.cost_usd,
        }


def _options(options: BuildOptions | None, flags: dict[str, Any]) -> BuildOptions:
    """``options``, or the ones keyword ``flags`` spell out (never both)."""
    if options is not None and flags:
        raise TypeError(f"give options=BuildOptions(...) or the flags {', '.join(sorted(flags))}, not both")
    return options if options is not None else BuildOptions(**flags)


PRUNE_REASON = "no longer in the manifest (a build without targets prunes it and removes its files)"


@dataclass
class Stale:
    """One thing ``check`` looked at: an asset (its plan ``action``), or the lock itself.
    ``codes`` are the reasons as stable identifiers, one per reason."""

    asset: str
    reasons: list[str]
    codes: list[str] = field(default_factory=list)
    action: str = ""

    @property
    def stale(self) -> bool:
        return self.action != Action.UP_TO_DATE.value


class Project:
    def __init__(self, blueprint: Blueprint, *, env: Mapping[str, str] | None = None,
                 provider_factory: ProviderFactory | None = None, clock: Clock | None = None,
                 cache: Cache | None = None, unreadable_lock_ok: bool = False):
        self.blueprint = blueprint
        self._unreadable_lock_ok = unreadable_lock_ok  # lock resolve reads a conflicted lock itself
        self.manifest_path = blueprint.path
        self.root = blueprint.root
        self.env = os.environ if env is None else env
        self.clock = clock or SystemClock()
        # before the lock and the outputs are read: UpToDate's racy window is counted from it
        self._started_ns = int(self.clock.now().timestamp() * 1_000_000_000)
        self.nodes: dict[str, Node] = blueprint.nodes
        self.cache = cache or Cache(cache_dir(self.root, dict(self.env)))
        spec = remote_spec(blueprint.cache, self.env)
        if spec is not None and self.cache.remote is None:
            self.cache.connect(RemoteStore(spec, self.env))
        self.lock = self._load_lock()
        self._exclusive = False
        self._elsewhere: dict[str, set[str]] | None = None
        self._merge_locks: dict[str, str] | None = None  # fingerprint -> revision, during a merge
        self.hasher = FileHasher(self.root, self.cache.memo_path)
        self.providers = Providers(blueprint, provider_factory or default_provider_factory, self.env, self.clock)

    @classmethod
    def load(cls, directory: str | Path = ".", manifest: str | Path | None = None, *,
             provider_override: str | None = None, env: Mapping[str, str] | None = None,
             cache: Cache | None = None, **kwargs: Any) -> "Project":
        """The project of ``manifest`` (default: the nearest assetbuild.toml in ``directory`` or
        above it, up to the repository root; see :func:`find_manifest`): its
        blueprint read from the memo when the manifest is unchanged, else made anew."""
        path = find_manifest(directory, manifest)
        env = os.environ if env is None else env
        cache = cache or Cache(cache_dir(path.parent.resolve(), dict(env)))
        with paused():
            blueprint = Blueprint.load(path, memo_dir=cache.dir, provider_override=provider_override)
            return cls(blueprint, env=env, cache=cache, **kwargs)

    def _load_lock(self) -> Lockfile:
        path = lock_path(self.manifest_path)
        key = hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:16]
        try:
            return Lockfile.load(path, memo=self.cache.dir / f"lock-{key}.json",
                                 journal=self.cache.dir / f"journal-{key}.jsonl")
        except LockfileTooNew:
            raise  # lock resolve rebuilds a conflicted lock, never one it cannot understand
        except LockfileError:
            if not self._unreadable_lock_ok:
                raise
            st = path.stat()
            return Lockfile(path, stamp=[st.st_mtime_ns, st.st_size])

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the project's build lock, then read the lock file afresh. A build plans, asks
        and runs inside it, so it never acts on (or writes back) a lock another build changed
        meanwhile; a second build refuses at once (exit 2) instead of waiting at a prompt."""
        if self._exclusive:
            yield
            return
        with exclusive(self.manifest_path):
            self._exclusive = True
            try:
                if not self.lock.is_current() or self.lock.replayed:
                    self.lock = self._load_lock()
                folders = {os.path.dirname(o) for n in self.nodes.values() for o in n.outputs}
                sweep_temp_files([self.root, *(self.root / f for f in folders)])
                yield
            finally:
                self._exclusive = False

    # -- planning ---------------------------------------------------------------------------

    def routing(self, *, assume_keys: bool = False) -> Routing:
        """Where each node's generation goes and what it costs, by the API keys in the
        environment (``assume_keys``: as if all were set)."""
        return Routing(self.providers, self.env, assume=assume_keys)

    def planner(self, options: BuildOptions = BuildOptions(), *, forced: Iterable[str] = (),
                rerolled: Iterable[str] = ()) -> Planner:
        """The planner for ``options``; ``forced`` and ``rerolled`` are the node ids they name."""
        routing = self.routing(assume_keys=options.assume_keys)
        return Planner(self.lock, self.hasher, self.cache, price=routing.price,
                       force=frozenset(forced), offline=options.offline, elsewhere=self._other_locks,
                       missing_key=routing.blocking_key,
                       reroll=frozenset(rerolled), built_in_git=self._merge_built,
                       retry_failed=options.retry_failed, resume=self._interrupted_rerolls())

    def _interrupted_rerolls(self) -> dict[str, dict[str, str]]:
        """Asset -> the reroll of it a kill interrupted after its job was saved (so paid for):
        a plain build resumes it (planner._resumed_reroll). One stat when there is none."""
        pending = self.cache.rerolls()
        if not pending:
            return {}
        saved = [key for key, _ in self.cache.jobs.items()]
        found = {}
        for fp, r in pending.items():
            if any(k.endswith("|" + r["key"]) for k in saved):
                found[r["asset"]] = {"fingerprint": fp, "key": r["key"]}
            elif self._exclusive:  # under the build lock: a reroll killed before its submit left nothing
                self.cache.drop_reroll(fp)
        return found

    def _merge_built(self, fingerprint: str) -> str | None:
        """While a git merge is in progress (MERGE_HEAD): the revision whose lock built
        ``fingerprint`` (the other side's lock first, then the last MERGE_HEAD_REVS commits of
        either side), else None. Worked out once, and only when a node is about to be
        generated: a plan with nothing to generate never runs git."""
        if self._merge_locks is None:
            from .store.gitlocks import Git, locks_in_history

            self._merge_locks = {}
            folder = self.manifest_path.parent
            git = Git(folder)
            try:
                if git.is_repo() and git.has_rev("MERGE_HEAD"):
                    locks, _ = locks_in_history(folder, lock_path(self.manifest_path).name, MERGE_HEAD_REVS,
                                                merging=True)
                    for found in locks:
                        name = found.rev if found.rev == "MERGE_HEAD" else found.rev[:10]
                        for entry in found.entries.values():
                            self._merge_locks.setdefault(entry.fingerprint, name)
            except UserError:
                pass  # git missing or slow: the plan goes on as without a merge
        return self._merge_locks.get(fingerprint)

    def _other_locks(self) -> dict[str, set[str]]:
        """Each output path -> the sha256s the lock recorded for it on either side of the
        latest merge (MERGE_HEAD, HEAD, HEAD's second parent, ORIG_HEAD; read once, and only
        when an output differs from the lock): an output holding one of them came from a
        merge, not from a hand. A few locks at most: a plan stays quick with a large lock."""
        if self._elsewhere is None:
            from .store.gitlocks import Git

            self._elsewhere = {}
            git = Git(self.manifest_path.parent)
            try:
                if git.is_repo():
                    for rev in OTHER_LOCK_REVS:
                        entries = git.lock_at(rev, lock_path(self.manifest_path).name)[0] if git.has_rev(rev) else None
                        for entry in (entries or {}).values():
                            for out in entry.outputs:
                                self._elsewhere.setdefault(out.path, set()).add(out.sha256)
            except UserError:
                pass  # git missing or slow: the plain "modified by hand" says enough
        return self._elsewhere

    def select(self, targets: Iterable[str] = ()) -> list[Node]:
        return [self.nodes[nid] for nid in self.blueprint.select(targets)]

    def plan(self, targets: Iterable[str] = (), options: BuildOptions | None = None, *,
             on_event: Callable[[Event], None] | None = None, every_node: bool = False, **flags: Any) -> Plan:
        """What a build of ``targets`` (all if none) under ``options`` would do. ``flags``
        (``force=True``, ``assume_keys=True``, ...) stand for ``options=BuildOptions(...)``.
        ``assume_keys`` plans as if every API key were set (nothing is blocked on a missing
        key): what a build with the keys would generate, and its cost. ``reroll`` names assets
        to generate again though nothing changed (review.py checks they can be); they are
        planned whether or not ``targets`` name them. Nodes the last full plan found up to
        date, and that nothing has changed since, are taken as up to date without being decided
        again (run/stamp.UpToDate); ``every_node`` decides each one (a saved plan lists every
        file each decision rests on)."""
        options = _options(options, flags)
        targets = list(targets)
        rerolled: frozenset[str] = frozenset()
        if options.reroll:
            from .commands.review import reroll_nodes

            rerolled = frozenset(reroll_nodes(self, list(options.reroll)))
        ids = self.blueprint.select(targets + sorted(rerolled) if targets else targets)
        if options.shard is not None:
            ids = self._share(ids, options.shard)
        forced = frozenset(self._forced(targets, ids) if options.force else ())
        seen = len(self.cache.warnings)
        planner = self.planner(options, forced=forced, rerolled=rerolled)
        record = None if every_node else UpToDate.read(self)
        proven = record.proven(self.blueprint) if record is not None else frozenset()
        with self._warnings_to(on_event), paused():
            decisions = planner.plan(Selection(ids, self.nodes), proven)
        for d in decisions:  # a paid job a kill left behind is named, never silently taken up
            if on_event is not None and any(r.code is ReasonCode.REROLL_RESUMED for r in d.reasons):
                on_event(Event("warning", d.id, detail=f"{d.id}: the reroll a kill interrupted after its job was "
                                                       "submitted (billed) is resumed, not submitted again"))
        self.blueprint.remember()
        pruned = [] if list(targets) or options.shard else self.leftovers(dry_run=True)
        self.hasher.save()
        if not targets and options.shard is None:
            self._record_up_to_date(decisions, record)
        return Plan(decisions, options, planner, forced, rerolled, self.cache.warnings[seen:], pruned=pruned)

    def _record_up_to_date(self, decisions: list[Decision], record: UpToDate | None) -> None:
        """Leave the record of this full plan's up-to-date nodes for the next plan (unless it
        holds already): those whose lock entry names their references as this plan does (a
        reference renamed with the same bytes is relabelled by a build, executor._relabel) and
        whose outputs hold the bytes the lock recorded (not an image only the cache vouches for:
        planner._hand_edited)."""
        key = self.blueprint.key
        if key is None:
            return
        ids = [d.id for d in decisions if d.action is Action.UP_TO_DATE and (d.inputs is None or (
            self.lock.entries[d.id].inputs.get("references") == d.inputs["references"]
            and d.outputs == tuple([self.hasher.hash(path) for path in d.node.outputs])))]
        if (record.ids == frozenset(ids) and record.key == key) if record is not None else not ids:
            return  # it holds already; or there is none, and nothing to record (a first build)
        UpToDate.write(self, ids, started_ns=self._started_ns, earlier=record)

    def _share(self, ids: list[str], shard: tuple[int, int]) -> list[str]:
        """Shard K of N's part of ``ids``: the assets that hash to K (:func:`shard_of`), and
        their upstream, which it restores from the shared cache (waiting on another machine's
        lease where one is generating it) or, if no runner has started it, builds."""
        if self.cache.remote is None:
            raise UsageError("--shard needs a shared remote cache ([cache] remote or ASSETBUILD_CACHE_REMOTE): "
                             "the shards hand each other their results there")
        k, n = shard
        wanted: set[str] = set()
        todo = [nid for nid in ids if shard_of(nid, n) == k]
        while todo:
            nid = todo.pop()
            if nid not in wanted:
                wanted.add(nid)
                todo.extend(self.blueprint.upstream(nid))
        return [nid for nid in ids if nid in wanted]

    def leftovers(self, *, dry_run: bool, extra: list[dict[str, Any]] | None = None) -> list[Leftover]:
        """The assets in the lock (and in ``extra`` locks, e.g. earlier commits') that the
        manifest no longer has, with the files of theirs that a prune removes (``dry_run``:
        would remove). An asset whose files are all gone is still listed, with none."""
        ids = gone(self.lock.entries, self.nodes)
        entries = {nid: self.lock.entries[nid] for nid in ids}
        for older in extra or ():
            for nid, entry in older.items():
                if nid not in self.nodes and nid not in entries:
                    entries[nid] = entry
        if not entries:
            return []  # (the deletion rule reads every node's outputs: not for nothing)
        found = {left.asset: left for left in sweep(self.deletion_rule(), self.cache, entries, dry_run=dry_run)}
        return [found.get(nid, Leftover(nid)) for nid in ids] + [
            left for nid, left in sorted(found.items()) if nid not in ids]

    def deletion_rule(self) -> DeletionRule:
        """The one rule every removal of a file goes through (store/files.DeletionRule), with
        what this manifest and the others in its folder claim and read."""
        out_dir = posixpath.normpath(str(self.blueprint.settings.get("output_dir") or ".").replace("\\", "/"))
        return DeletionRule(root=self.root, output_dir=out_dir,
                            kept=claims(self.nodes.values(), self.manifest_path),
                            others=lambda: sibling_claims(self.manifest_path),
                            wrote=lambda rel, sha: self.cache.wrote(self.root / rel, sha),
                            hash=self.hasher.hash)

    @contextmanager
    def _warnings_to(self, on_event: Callable[[Event], None] | None) -> Iterator[None]:
        """The cache's warnings (a remote that failed) as ``warning`` events while planning or
        building; each is also kept in ``cache.warnings``."""
        if on_event is None:
            yield
            return
        previous = self.cache.on_warning
        self.cache.on_warning = lambda text: on_event(Event("warning", "", detail=text))
        try:
            yield
        finally:
            self.cache.on_warning = previous

    def _forced(self, targets: Iterable[str], ids: list[str]) -> list[str]:
        """--force rebuilds the named targets (not their upstream); with no targets, everything."""
        targets = list(targets)
        if not targets:
            return list(ids)
        return sorted({nid for target in targets for nid in self.blueprint.match(target)})

    # -- building ---------------------------------------------------------------------------

    def build(self, targets: Iterable[str] = (), options: BuildOptions | None = None, *, plan: Plan | None = None,
              on_event: Callable[[Event], None] | None = None, **flags: Any) -> BuildReport:
        """Build ``targets`` (all if none) under ``options`` (or ``flags``: ``jobs=8``, ...);
        ``plan``, made by :meth:`plan`, is built under the options it was planned with."""
        if plan is not None and (options is not None or flags):
            raise TypeError("build(plan=...) builds under the plan's own options; give no others")
        targets = list(targets)
        with self.exclusive():
            return self._build(targets, plan or _options(options, flags), on_event)

    def _build(self, targets: list[str], planned: Plan | BuildOptions,
               on_event: Callable[[Event], None] | None) -> BuildReport:
        seen = len(self.cache.warnings)
        plan = planned if isinstance(planned, Plan) else self.plan(targets, planned, on_event=on_event)
        options = plan.options
        if options.assume_keys:
            raise UsageError("a plan made with --assume-keys cannot be built; plan again without it")
        budget = options.max_cost if options.max_cost is not None else self.blueprint.settings.get("max_cost")
        if budget is not None and plan.estimated_cost > budget + 1e-9:
            raise BudgetError(f"estimated cost {usd(plan.estimated_cost)} exceeds the budget of {usd(budget)} "
                              "(max_cost / --max-cost); nothing was sent")
        self._check_keys(plan)
        executor = Executor(root=self.root, planner=plan.planner.for_run(self.lock), lock=self.lock,
                            cache=self.cache, hasher=self.hasher, providers=self.routing(), clock=self.clock,
                            jobs=options.jobs, keep_going=options.keep_going,
                            budget=Budget(budget, plan.estimated_cost), on_event=on_event)
        executor.leases = self._leases()
        try:
            with self._warnings_to(on_event):
                results = executor.run(plan.decisions)
        finally:
            if executor.leases is not None:
                executor.leases.close()
        pruned: list[Leftover] = []
        if not targets and options.shard is None:
            pruned = self.leftovers(dry_run=False)
            self.lock.prune(p.asset for p in pruned)
            self.lock.save_if_changed()
        keyless = missing_keys((r.id, self.nodes[r.id].provider, r.reasons) for r in results if r.id in self.nodes)
        return BuildReport(results, pruned, list(dict.fromkeys(plan.warnings + self.cache.warnings[seen:])), keyless)

    def _leases(self) -> Any:
        """The leases of a build with a shared remote (on unless ``[cache] leases = false``)."""
        remote = self.cache.remote
        if remote is None:
            return None
        from .store.leases import Leases, lease_settings

        settings = lease_settings(self.blueprint.cache)
        if not settings.enabled:
            return None
        return Leases(remote.store, settings, self.clock, self.cache._warn, is_off=lambda: remote.off)

    def _check_keys(self, plan: Plan) -> None:
        """Before anything is sent: every key the plan will use can be sent (``key_is_set``
        refuses one no HTTP header can carry). Assets whose providers have no key were planned
        as blocked (``missing-key``) and the rest builds; but if nothing else is left to do,
        that is the user's to fix: say so, exit 2."""
        missing = plan.missing_keys
        if missing and not any(d.action in (Action.RESTORE, Action.GENERATE, Action.DERIVE) for d in plan.decisions):
            raise UserError("\n".join(f"provider {m.providers[0]}: set the environment variable {m.variable} "
                                       "to your API key; nothing was sent" for m in missing))
        self.routing().check_sendable(d.node.provider for d in plan.decisions if d.action is Action.GENERATE)

    # -- checking and explaining ------------------------------------------------------------

    def check(self, targets: Iterable[str] = ()) -> list[Stale]:
        """Every asset (of ``targets`` and their upstream; all if none) whose outputs or lock
        entry are not what the manifest asks for."""
        return [s for s in self.check_all(targets) if s.stale]

    def check_all(self, targets: Iterable[str] = ()) -> list[Stale]:
        """What ``check`` looked at, stale or not: each selected asset, then the lock's own
        problems. Keys are assumed set: a missing key is not what makes an asset stale."""
        targets = list(targets)
        found = []
        for d in self.plan(targets, assume_keys=True).decisions:
            fallback = [] if d.action is Action.UP_TO_DATE else [d.action.value]  # a reason, whatever happens
            found.append(Stale(d.id, texts(d.reasons) or fallback, [r.code for r in d.reasons] or fallback,
                               d.action.value))
        if self.lock.replayed:
            found.append(Stale(self.lock.path.name, [f"an interrupted build finished {self.lock.replayed} asset(s) "
                                                     "not yet written to it; run `assetbuild build`"],
                               ["lock-behind"], "build"))
        if not targets:
            found += [Stale(nid, [PRUNE_REASON], ["asset-removed"], "prune") for nid in gone(self.lock.entries, self.nodes)]
        if self.cache.remote is not None:  # a shared record that proves nothing: someone wrote over it
            found += [Stale(f"remote record {fp[:12]}", [f"{why}; `assetbuild cache verify --remote` lists them"],
                            ["remote-record-ignored"], "verify") for fp, why in sorted(self.cache.remote.ignored.items())]
        return found

    def close(self) -> None:
        self.providers.close()
        self.cache.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
