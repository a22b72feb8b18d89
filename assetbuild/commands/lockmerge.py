"""Merging ``assetbuild.lock`` the way a team's branches meet: per asset, never per line.

``merge`` is the git merge driver (``python -m assetbuild lock merge %O %A %B``): a 3-way merge of the
lock's asset tables. An asset changed on one side only takes that side; one both sides changed
alike is kept; one both sides changed differently is a conflict: the driver keeps our side's
entry (git keeps our side of a conflicted image too, so the lock still describes the files),
writes a valid lock, and exits 1 so git reports the conflict.

``resolve`` (``assetbuild lock resolve``) rebuilds a consistent lock from what is on disk after
any merge, by the driver or by hand: each output whose bytes match an entry of either side of
a conflicted lock (its ``<<<<<<<`` markers are read), of the current lock, or of the lock of
an earlier commit is taken as built by that entry. Then an image a build would generate that
a commit already holds (the other side of a conflicted PNG) is fetched from git into the
cache: what one branch paid for is never paid for again after the merge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from ..store.cache import CacheRecord
from ..errors import LockfileError
from ..store.files import write_atomic
from ..store.hashing import sha256_bytes
from ..store.lockfile import LOCK_NAME, LockEntry, Lockfile, OutputRecord, entries_from_text

if TYPE_CHECKING:
    from .workspace import Workspace

DRIVER_ARGS = "lock merge %O %A %B"
DRIVER_NAME = "assetbuild: merge assetbuild.lock per asset"

_MARKER = re.compile(r"^(<{7}|\|{7}|={7}|>{7})(?: .*)?$")


# -- the merge driver ---------------------------------------------------------------------------

def same(a: LockEntry | None, b: LockEntry | None) -> bool:
    """Whether two entries (None: no entry) record the same build: the same fingerprint and
    the same output files and bytes. When, by whom and at what cost do not count."""
    if a is None or b is None:
        return a is b
    return a.fingerprint == b.fingerprint and [(o.path, o.sha256) for o in a.outputs] == [
        (o.path, o.sha256) for o in b.outputs]


@dataclass
class Merged:
    entries: dict[str, LockEntry]
    ours: list[str] = field(default_factory=list)  # taken from our side (changed there only)
    theirs: list[str] = field(default_factory=list)  # taken from their side (changed there only)
    conflicts: list[str] = field(default_factory=list)  # changed differently on both: ours kept


def merge_entries(base: Mapping[str, LockEntry], ours: Mapping[str, LockEntry],
                  theirs: Mapping[str, LockEntry]) -> Merged:
    """The per-asset 3-way merge (an absent entry is a deleted or not yet built asset)."""
    merged = Merged({})
    for aid in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(aid), ours.get(aid), theirs.get(aid)
        if same(o, t):
            chosen = o
        elif same(b, o):
            chosen = t
            merged.theirs.append(aid)
        elif same(b, t):
            chosen = o
            if o is not None or b is not None:
                merged.ours.append(aid)
        else:
            chosen = o if o is not None else t  # a deleted side keeps the other's files described
            merged.conflicts.append(aid)
        if chosen is not None:
            merged.entries[aid] = chosen
    return merged


def split_conflict(text: str) -> tuple[str, str] | None:
    """Our and their side of text with git conflict markers (a diff3 base section is
    dropped); None if it has none."""
    if "<<<<<<<" not in text:
        return None
    ours: list[str] = []
    theirs: list[str] = []
    state = "both"
    for line in text.splitlines(keepends=True):
        marker = _MARKER.match(line.rstrip("\r\n"))
        if marker is not None:
            state = {"<": "ours", "|": "base", "=": "theirs", ">": "both"}[marker.group(1)[0]]
            continue
        if state in ("both", "ours"):
            ours.append(line)
        if state in ("both", "theirs"):
            theirs.append(line)
    return "".join(ours), "".join(theirs)


def read_side(path: Path, name: str) -> dict[str, LockEntry]:
    """One side of a merge as the driver gets it (an empty file: no lock on that side)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LockfileError(f"{name}: cannot read {path}: {exc}") from exc
    return entries_from_text(text, Path(name))


def merge_files(base: Path, ours: Path, theirs: Path, name: str = LOCK_NAME) -> Merged:
    """What the driver does: merge the three files and write the result over ``ours``. A side
    that cannot be read leaves ``ours`` as it was, as one conflicted asset named ``*``."""
    try:
        old_text, our_text, their_text = (path.read_bytes() for path in (base, ours, theirs))
    except OSError:
        return Merged({}, conflicts=["*"])
    if their_text in (old_text, our_text):
        return Merged({})  # only our side changed the lock (or both alike): ours is the result as it is
    if our_text == old_text:
        _write(ours, their_text, name)  # only their side changed it: theirs, byte for byte
        return Merged({})
    try:
        sides = [read_side(path, name) for path in (ours, theirs)]
    except LockfileError:
        return Merged({}, conflicts=["*"])
    try:
        old = read_side(base, name)
    except LockfileError:
        old = {}  # an unreadable base: every difference counts as changed on both sides
    merged = merge_entries(old, sides[0], sides[1])
    _write(ours, Lockfile(ours, merged.entries).dumps().encode("utf-8"), name)
    return merged


def _write(path: Path, data: bytes, name: str) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise LockfileError(f"{name}: cannot write the merged lock to {path} ({exc.strerror or exc})") from exc


# -- resolve ------------------------------------------------------------------------------------

@dataclass
class Candidate:
    """A lock entry some source recorded, and the git revision that holds its files (if any)."""

    asset: str
    entry: LockEntry
    source: str  # "ours", "theirs", "the lock", "MERGE_HEAD", a short commit id
    rev: str | None


@dataclass
class Resolution:
    conflicted: bool = False  # the lock had conflict markers
    merging: bool = False  # a git merge is in progress (MERGE_HEAD)
    taken: dict[str, str] = field(default_factory=dict)  # asset -> the source whose entry it now has
    unmatched: list[str] = field(default_factory=list)  # outputs missing or matching no entry
    fetched: dict[str, str] = field(default_factory=dict)  # fingerprint's asset -> rev its images came from
    locks: int = 0  # locks read (sides, the current one, commits)
    notes: list[str] = field(default_factory=list)


def _sources(project: "Workspace", git_revs: int, res: Resolution) -> list[Candidate]:
    """Every candidate entry, best first: the conflicted lock's sides (or the current lock),
    then the lock of MERGE_HEAD (a merge in progress) and of the last ``git_revs`` commits."""
    from ..store.gitlocks import Git, locks_in_history

    path = project.lock.path
    found: list[Candidate] = []
    text = path.read_bytes().decode("utf-8", "replace") if path.exists() else ""
    sides = split_conflict(text)
    if sides is not None:
        res.conflicted = True
        for side, rev, side_text in (("ours", "HEAD", sides[0]), ("theirs", "MERGE_HEAD", sides[1])):
            try:
                entries = entries_from_text(side_text, path)
            except LockfileError as exc:
                res.notes.append(f"{side} side of {path.name}: {exc} (skipped)")
                continue
            res.locks += 1
            found += [Candidate(aid, e, side, rev) for aid, e in entries.items()]
    else:
        res.locks += 1
        found += [Candidate(aid, e, "the lock", None) for aid, e in project.lock.entries.items()]
    folder = project.manifest_path.parent
    git = Git(folder, "lock resolve")
    in_repo = git.is_repo()
    res.merging = in_repo and git.has_rev("MERGE_HEAD")
    if git_revs > 0 and in_repo:
        history, notes = locks_in_history(folder, path.name, git_revs, merging=True, why="lock resolve")
        res.notes += notes
        for lock in history:
            res.locks += 1
            name = lock.rev if lock.rev == "MERGE_HEAD" else lock.rev[:10]
            found += [Candidate(aid, e, name, lock.rev) for aid, e in lock.entries.items()]
    return found


def _match(node_id: str, shas: list[str], candidates: list[Candidate]) -> Candidate | None:
    """The best candidate whose outputs have exactly ``shas``: the same asset first."""
    fits = [c for c in candidates if [o.sha256 for o in c.entry.outputs] == shas]
    return next((c for c in fits if c.asset == node_id), fits[0] if fits else None)


def resolve(project: "Workspace", git_revs: int = 50) -> Resolution:
    """Rebuild ``project``'s lock from what is on disk (see the module docstring), inside the
    project's build lock; the lock is written once, atomically."""
    with project.exclusive():
        return _resolve(project, git_revs)


def _resolve(project: "Workspace", git_revs: int) -> Resolution:
    res = Resolution()
    candidates = _sources(project, git_revs, res)
    current = {c.asset: c for c in candidates if c.source in ("ours", "the lock")}
    current.update({c.asset: c for c in candidates if c.source == "theirs" and c.asset not in current})
    entries: dict[str, LockEntry] = {}
    for nid in project.blueprint.order:
        node = project.nodes[nid]
        shas = [project.hasher.hash(p) for p in node.outputs]
        found = None if any(s is None for s in shas) else _match(nid, [s for s in shas if s], candidates)
        if found is not None:
            outputs = tuple(OutputRecord(path, o.sha256, o.width, o.height)
                            for path, o in zip(node.outputs, found.entry.outputs))
            entries[nid] = replace(found.entry, outputs=outputs)
            res.taken[nid] = found.source
            continue
        res.unmatched.append(nid)
        if nid in current:  # a missing or hand-edited output: the build says which
            entries[nid] = current[nid].entry
    for aid, cand in current.items():  # assets gone from the manifest: kept so a build prunes their files
        if aid not in project.nodes:
            entries[aid] = cand.entry
    project.lock.entries.clear()
    project.lock.entries.update(entries)
    project.lock.save()
    project.hasher.save()
    _fetch_from_git(project, [c for c in candidates if c.rev is not None], res)
    return res


def _fetch_from_git(project: "Workspace", candidates: Iterable[Candidate], res: Resolution) -> None:
    """Put in the cache the images a build would otherwise generate that a commit already
    holds: the plan is made again after each round, as a restored upstream fixes its
    dependents' fingerprints."""
    from ..store.gitlocks import Git
    from ..plan.planner import Action
    from ..plan.reasons import ReasonCode

    by_fp: dict[str, list[Candidate]] = {}
    for cand in candidates:
        by_fp.setdefault(cand.entry.fingerprint, []).append(cand)
    if not by_fp:
        return
    git = Git(project.manifest_path.parent, "lock resolve")
    tried: set[str] = set()
    for _ in range(len(project.nodes) + 1):
        wanted = [d for d in project.plan().decisions
                  if (d.action is Action.GENERATE or any(r.code is ReasonCode.MERGE_BUILT for r in d.reasons))
                  and d.fingerprint in by_fp and d.fingerprint not in tried]
        if not wanted:
            return
        for d in wanted:
            assert d.fingerprint is not None
            tried.add(d.fingerprint)
            for cand in by_fp[d.fingerprint]:
                if len(cand.entry.outputs) != len(d.node.outputs):
                    continue
                blobs = [git.show(cand.rev or "HEAD", o.path) for o in cand.entry.outputs]
                if all(b is not None and sha256_bytes(b) == o.sha256 for b, o in zip(blobs, cand.entry.outputs)):
                    shas = tuple(project.cache.put_blob(b) for b in blobs if b is not None)
                    e = cand.entry
                    project.cache.put_result(d.fingerprint, CacheRecord(
                        originals=shas, images=shas, provider=e.provider, model_id=e.model_id, built=e.built,
                        cost_usd=e.cost_usd, request_id=e.request_id, inputs=d.inputs))
                    res.fetched[d.id] = cand.source
                    break


# -- setting the driver up ----------------------------------------------------------------------

def attributes_line(lock_name: str) -> str:
    return f"{lock_name} merge=assetbuild"


def driver_command(python: str | None = None) -> str:
    """The merge driver as git's shell runs it: this interpreter (``sys.executable``) running
    the package (``-m assetbuild``), by absolute path. git run from a GUI, an IDE or a shell
    without the venv (``PATH=/usr/bin:/bin``) then still finds it, where a bare ``assetbuild``
    is "not found" and a clean per-asset merge becomes a conflict."""
    import shlex
    import sys

    return f"{shlex.quote(python or sys.executable)} -m assetbuild {DRIVER_ARGS}"


def config_command() -> list[str]:
    return ["git", "config", "merge.assetbuild.driver", driver_command()]


def setup_git(folder: Path, lock_name: str) -> list[str]:
    """Make git merge ``lock_name`` with the driver: the ``.gitattributes`` line (in
    ``folder``, added once) and the repository's ``merge.assetbuild`` config. What was done,
    one line each; a UsageError if ``folder`` is not in a git repository."""
    from ..errors import UsageError
    from ..store.gitlocks import Git

    git = Git(folder, "init --git")
    if git.run("rev-parse", "--git-dir").returncode != 0:
        raise UsageError(f"init --git: {folder} is not in a git repository; run `git init` first")
    done = []
    attributes = folder / ".gitattributes"
    line = attributes_line(lock_name)
    lines = attributes.read_text(encoding="utf-8").splitlines() if attributes.exists() else []
    if line not in lines:
        write_atomic(attributes, ("\n".join(lines + [line]) + "\n").encode("utf-8"))
        done.append(f"added `{line}` to .gitattributes (commit it: everyone merges the lock per asset)")
    driver = driver_command()
    for key, value in (("merge.assetbuild.name", DRIVER_NAME), ("merge.assetbuild.driver", driver)):
        set_ = git.run("config", key, value)
        if set_.returncode != 0:
            raise UsageError(f"init --git: git config {key} failed: {set_.stderr.strip()}")
    done.append(f"set git config merge.assetbuild.driver '{driver}': this Python by its full path, so git "
                "merges the lock without assetbuild on PATH (a GUI or IDE git too); each clone runs "
                "`assetbuild init --git` once, and again after moving or recreating its venv")
    return done
