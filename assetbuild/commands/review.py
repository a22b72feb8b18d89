"""The review loop: candidates, ``pick``, ``reroll`` and ``adopt``.

A person looks at what a build made and chooses. What they choose is recorded in the lock
entry of the asset, next to what the build made (lock keys ``candidate_images``, ``pick`` and
``adopted``; ``candidates`` is the manifest's number, a fingerprint input):

- ``candidates = N`` asks one request for N images; every one goes into the cache and its
  sha256 into ``candidate_images``; the output is the pick (the first by default).
- ``pick ASSET K`` writes candidate K (from the cache, the shared remote too) as the output and
  records ``pick = K``. Nothing is generated; the dependents see new upstream bytes, so exactly
  they become stale.
- ``reroll ASSET`` generates again though nothing changed (a new request key, so no host
  replays the last job, and a new seed where the host takes one). What the lock had stays in
  ``candidate_images``, so the previous image can be picked back.
- ``adopt ASSET`` accepts a hand-edited output: its bytes go into the cache and the lock records
  ``adopted`` = their sha256 (and the output record those bytes), so later builds leave it alone
  and its dependents are rebuilt from it. When its own inputs change, the planner blocks it
  (reason ``adopted-inputs-changed``) rather than discard the edit, unless ``--force``.

The planner turns these facts into decisions (reason codes ``reroll``, ``adopted-inputs-changed``,
``lfs-pointer``); the executor writes what a decision chose. The rules both apply (``Choice``,
``fresh_choice``, ``reroll_request``) are in plan/choice.py; ``pick`` and ``adopt`` themselves
run here, under the project's build lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Sequence

from ..errors import UsageError, UserError
from ..plan.choice import is_lfs_pointer

if TYPE_CHECKING:
    from .workspace import Workspace
    from ..store.lockfile import LockEntry
    from ..spec.nodes import Node
    from ..plan.planner import Decision


# -- the commands ---------------------------------------------------------------------------


@dataclass
class Picked:
    asset: str
    number: int
    sha256: str
    path: str
    changed: bool  # False: it was the output already
    candidates: int
    dependents: list[str] = field(default_factory=list)  # now stale
    kept_edit: int | None = None  # the adopted hand edit, kept pickable as this number


@dataclass
class Adopted:
    asset: str
    sha256: str
    path: str
    changed: bool  # False: the output already was what the lock records
    dependents: list[str] = field(default_factory=list)  # now stale


def dependents(project: "Workspace", node_id: str) -> list[str]:
    """The nodes that read ``node_id``'s output directly, in build order."""
    return [nid for nid in project.blueprint.order if node_id in project.nodes[nid].upstream]


def _decision(project: "Workspace", node_id: str) -> "Decision":
    return next(d for d in project.plan([node_id]).decisions if d.id == node_id)


def _one_output(project: "Workspace", node_id: str, command: str) -> tuple["Node", "LockEntry"]:
    node = project.nodes[node_id]
    if len(node.outputs) != 1:
        raise UsageError(f"{command}: {node_id} has {len(node.outputs)} outputs (count = {node.count}); "
                         f"{command} works on an asset with one output")
    entry = project.lock.entries.get(node_id)
    if entry is None:
        raise UserError(f"{node_id} has not been built yet; run `assetbuild build {node_id}` first")
    return node, entry


def _write(project: "Workspace", path: str, data: bytes) -> tuple[int, int]:
    from ..store.files import write_atomic
    from ..store.hashing import sha256_bytes
    from ..store.imageinfo import inspect_image

    info = inspect_image(data)
    try:
        write_atomic(project.root / path, data)
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror or exc}); fix that and run again") from exc
    sha = sha256_bytes(data)
    project.hasher.remember(path, sha)
    project.cache.mark_written(project.root / path, sha)
    return info.width, info.height


def pick(project: "Workspace", target: str, number: int, *, force: bool = False) -> Picked:
    """Make candidate ``number`` (1-based) the output of one asset: no provider call."""
    from ..store.lockfile import OutputRecord

    with project.exclusive():
        node_id = project.blueprint.one(target, "pick")
        node, entry = _one_output(project, node_id, "pick")
        candidates = entry.candidate_images
        if not candidates:
            raise UsageError(f"pick: {node_id} has no candidates to pick from; set candidates = N (2..15) on it "
                             f"and build it, or `assetbuild reroll {node_id}`")
        if not 1 <= number <= len(candidates):
            raise UsageError(f"pick: {node_id} has {len(candidates)} candidates; pick 1..{len(candidates)}")
        decision = _decision(project, node_id)
        if decision.fingerprint != entry.fingerprint:
            why = "; ".join(str(r) for r in decision.reasons) or "its inputs changed"
            raise UserError(f"pick: {node_id} changed since its candidates were made ({why}); "
                            f"run `assetbuild build {node_id}` first")
        path = node.outputs[0]
        current = entry.outputs[0].sha256
        on_disk = project.hasher.hash(path)
        if on_disk is not None and on_disk != current and on_disk not in candidates and not force:
            if is_lfs_pointer(project.root / path):
                raise UserError(f"pick: {path} is a Git LFS pointer file, not the image: run git lfs pull first")
            raise UserError(f"pick: {path} was modified by hand; `assetbuild adopt {node_id}` keeps the edit, "
                            "pick --force replaces it")
        sha = candidates[number - 1]
        kept_edit = None
        if entry.adopted and entry.adopted != sha and entry.adopted not in candidates:
            candidates = candidates + (entry.adopted,)  # the hand edit stays pickable
            kept_edit = len(candidates)
        if sha == current and on_disk == current and not kept_edit:
            return Picked(node_id, number, sha, path, False, len(candidates))
        data = _read_file(project, path, sha) or project.cache.get_blob(sha)
        if data is None:
            where = "the cache or the remote cache" if project.cache.remote is not None else "the cache"
            raise UserError(f"pick: candidate {number} of {node_id} ({sha[:12]}) is in neither {where}; "
                            "`assetbuild cache pull` fetches a teammate's, or pick another")
        width, height = _write(project, path, data)
        project.lock.record(node_id, replace(entry, outputs=(OutputRecord(path, sha, width, height),),
                                             candidate_images=candidates, pick=number, adopted=None))
        project.lock.save()
        project.hasher.save()
        return Picked(node_id, number, sha, path, sha != current, len(candidates),
                      dependents(project, node_id) if sha != current else [], kept_edit)


def _read_file(project: "Workspace", path: str, sha: str) -> bytes | None:
    from ..store.hashing import sha256_bytes

    try:
        data = (project.root / path).read_bytes()
    except OSError:
        return None
    return data if sha256_bytes(data) == sha else None


def adopt(project: "Workspace", target: str) -> Adopted:
    """Accept the hand-edited output of one asset as its output."""
    from ..store.files import read_inside, walk_problem
    from ..store.hashing import sha256_bytes
    from ..store.imageinfo import ImageDecodeError, inspect_image
    from ..store.lockfile import OutputRecord

    with project.exclusive():
        node_id = project.blueprint.one(target, "adopt")
        node, entry = _one_output(project, node_id, "adopt")
        path = node.outputs[0]
        file = project.root / path
        problem = walk_problem(project.root, path)
        if problem and "hard links" not in problem:  # a link could carry a file from outside in
            raise UserError(f"adopt: {path}: {problem}; adopt reads only a regular file inside the project: "
                            "put the image itself there, then adopt it")
        if is_lfs_pointer(file):
            raise UserError(f"adopt: {path} is a Git LFS pointer file, not an image: run git lfs pull")
        try:
            data = read_inside(project.root, path)
        except FileNotFoundError:
            raise UserError(f"adopt: {path} does not exist; put the retouched image there, then adopt it") from None
        except OSError as exc:
            raise UserError(f"adopt: cannot read {path} ({exc.strerror or exc})") from exc
        sha = sha256_bytes(data)
        if entry.outputs[0].path == path and entry.outputs[0].sha256 == sha:
            return Adopted(node_id, sha, path, False)
        try:
            info = inspect_image(data)
        except ImageDecodeError as exc:
            raise UserError(f"adopt: {path} is not an image assetbuild can read ({exc}); "
                            "save it as a complete image first") from exc
        project.cache.put_blob(data)  # before the lock names it: never a lock entry without its bytes
        project.cache.share_blob(sha)
        project.hasher.remember(path, sha)
        project.cache.mark_written(project.root / path, sha)  # handed over: assetbuild owns it now
        project.lock.record(node_id, replace(entry, outputs=(OutputRecord(path, sha, info.width, info.height),),
                                             adopted=sha))
        project.lock.save()
        project.hasher.save()
        return Adopted(node_id, sha, path, True, dependents(project, node_id))


@dataclass
class Unadopted:
    asset: str
    path: str
    restored: bool  # the generated image is the output again; False: the next build makes it anew
    dependents: list[str] = field(default_factory=list)  # now stale


def unadopt(project: "Workspace", target: str, *, force: bool = False) -> Unadopted:
    """Undo ``adopt``: the asset's generated image (its pick, for a candidates asset) becomes
    its output again, from the cache (or the shared remote), and the lock forgets the edit;
    its bytes stay in the cache. If the asset's inputs changed since, only the adoption is
    dropped: the next build generates it from its new inputs. An output edited again since
    the adoption is not replaced without ``force``."""
    from ..store.lockfile import OutputRecord

    with project.exclusive():
        node_id = project.blueprint.one(target, "adopt --undo")
        node, entry = _one_output(project, node_id, "adopt --undo")
        if not entry.adopted:
            raise UsageError(f"adopt --undo: {node_id} has no adopted hand edit; nothing to undo")
        path = node.outputs[0]
        on_disk = project.hasher.hash(path)
        if on_disk is not None and on_disk != entry.adopted and not force:
            raise UserError(f"adopt --undo: {path} was modified again since it was adopted; "
                            "adopt --undo --force replaces it")
        if _decision(project, node_id).fingerprint != entry.fingerprint:  # generated anew by the next build
            project.lock.record(node_id, replace(entry, adopted=None))
            project.lock.save()
            return Unadopted(node_id, path, False, dependents(project, node_id))
        if entry.candidate_images:
            sha = entry.candidate_images[(entry.pick or 1) - 1]
        else:
            record = project.cache.result(entry.fingerprint)
            sha = record.images[0] if record is not None and record.images else None
        data = project.cache.get_blob(sha) if sha is not None else None
        if data is None:
            raise UserError(f"adopt --undo: the image {node_id} was generated as is in neither cache; "
                            f"`assetbuild build --force {node_id}` generates it again (and pays)")
        width, height = _write(project, path, data)
        project.lock.record(node_id, replace(entry, outputs=(OutputRecord(path, sha, width, height),), adopted=None))
        project.lock.save()
        project.hasher.save()
        return Unadopted(node_id, path, True, dependents(project, node_id))


def reroll_nodes(project: "Workspace", targets: Sequence[str]) -> list[str]:
    """The node ids ``reroll TARGETS`` generates again; UsageError for a target that cannot
    be rerolled (a derived asset makes the same bytes every time; an asset with several
    outputs keeps them all, so nothing old could stay pickable)."""
    found: list[str] = []
    for target in targets:
        matches = [target] if target in project.nodes else project.blueprint.match(target)
        if not matches:
            raise UsageError(f"reroll: no asset matches {target!r}{project.blueprint.did_you_mean(target)}; "
                             "`assetbuild ls` lists the ids")
        for node_id in matches:
            node = project.nodes[node_id]
            if node.derived:
                raise UsageError(f"reroll: {node_id} is derived: its steps make the same bytes every time; "
                                 "reroll the asset it is made from")
            if len(node.outputs) != 1:
                raise UsageError(f"reroll: {node_id} keeps all {len(node.outputs)} images it makes (count); "
                                 f"`assetbuild build --force {node_id}` makes them again")
            if node_id not in found:
                found.append(node_id)
    return found
