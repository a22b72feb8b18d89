"""What a command needs of a loaded project. :class:`assetbuild.api.Project` is one; the
commands stand below the API (the API and the CLI call them), so they name this protocol and
never import ``Project`` back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Mapping, Protocol

if TYPE_CHECKING:
    from ..plan.routing import ProviderPool
    from ..plan.planner import Decision
    from ..spec.blueprint import Blueprint
    from ..spec.nodes import Node
    from ..store.cache import Cache
    from ..store.hashing import FileHasher
    from ..store.lockfile import Lockfile


class Planned(Protocol):
    """A plan, as far as a command reads it: one decision per node, in build order."""

    decisions: list[Decision]


class Workspace(Protocol):
    root: Path
    manifest_path: Path
    blueprint: Blueprint
    nodes: Mapping[str, Node]
    lock: Lockfile
    hasher: FileHasher
    cache: Cache
    env: Mapping[str, str]
    providers: ProviderPool

    def plan(self, targets: Iterable[str] = ()) -> Planned:
        """Decide every node of ``targets`` (all if none) against the lock and the disk."""

    def exclusive(self) -> ContextManager[None]:
        """Hold the project's build lock, the lock file read afresh."""

    def leftovers(self, *, dry_run: bool, extra: list[dict[str, Any]] | None = None) -> list[Any]:
        """The assets the lock (and ``extra`` locks) hold that the manifest no longer has, with
        the files of theirs a prune removes (``dry_run``: would remove)."""
