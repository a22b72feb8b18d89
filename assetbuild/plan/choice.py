"""What a lock entry records of the review loop (candidates, pick, adoption), and the rules the
planner and the executor apply to it: which images stay pickable, what a generation makes the
output, the request key of a reroll, and whether an output is a Git LFS pointer. The commands
that change a choice (``pick``, ``adopt``, ``reroll``) are in commands/review.py."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..spec.nodes import Node
    from ..store.lockfile import LockEntry

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
LFS_POINTER_MAX_BYTES = 1024  # a pointer file is about 130 bytes; an image is never this small and text


def is_lfs_pointer(path: Path) -> bool:
    """Whether the file at ``path`` is a Git LFS pointer (the image was never pulled)."""
    try:
        with open(path, "rb") as f:
            head = f.read(LFS_POINTER_MAX_BYTES + 1)
    except OSError:
        return False
    return len(head) <= LFS_POINTER_MAX_BYTES and head.startswith(LFS_POINTER_PREFIX)


@dataclass(frozen=True)
class Choice:
    """What a lock entry records of the review: the candidates kept pickable (sha256, in
    order), the pick (1-based) and the sha256 of an output adopted by hand."""

    candidate_images: tuple[str, ...] = ()
    pick: int | None = None
    adopted: str | None = None

    @classmethod
    def of(cls, entry: "LockEntry") -> "Choice":
        return cls(entry.candidate_images, entry.pick, entry.adopted)


def prior_images(entry: "LockEntry") -> tuple[str, ...]:
    """What stays pickable when an asset is rerolled: its candidates, else its one output,
    and an output adopted by hand (nothing of an asset with several outputs: count > 1)."""
    if entry.candidate_images:
        kept = list(entry.candidate_images)
    elif len(entry.outputs) == 1:
        kept = [entry.outputs[0].sha256]
    else:
        return ()
    if entry.adopted and entry.adopted not in kept:
        kept.append(entry.adopted)
    return tuple(kept)


def fresh_choice(node: "Node", keep: Sequence[str], made: Sequence[str]) -> tuple[Choice, int | None]:
    """The choice after images ``made`` (sha256 of each, in order) by a generation or a restore
    of a cached batch, with ``keep`` still pickable: the output is the first new image, so the
    index (into ``made``) of the one image to write; None: write them all (no candidates)."""
    if node.candidates == 1 and not keep:
        return Choice(), None
    return Choice(tuple(keep) + tuple(made), len(keep) + 1), 0


def reroll_request(fingerprint: str, keep: Sequence[str]) -> tuple[str, int]:
    """The request key and seed of a reroll: new for every reroll (the images it keeps
    differ), the same when a killed reroll is run again (so its saved job is resumed and a
    host's idempotency key does not bill twice)."""
    key = hashlib.sha256(f"{fingerprint}:reroll:{','.join(keep)}".encode()).hexdigest()
    return key, int(key[:8], 16) % 2_147_483_647
