"""The concrete things a build makes: a :class:`Node` per asset (per variant of a matrix
asset), generated or derived, with its references resolved. Plain frozen data, made by expand.py from the manifest
(or read back from the blueprint memo); nothing here imports pydantic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import ManifestError


@dataclass(frozen=True)
class RefSite:
    """Where the manifest names a reference file, for problems found only when the file is
    read (at plan time), and the pixel limit the image must meet."""

    file: str
    line: int | None
    key: str
    max_pixels: int

    def error(self, message: str) -> ManifestError:
        return ManifestError(message, file=self.file, line=self.line, key=self.key)


@dataclass(frozen=True)
class Ref:
    """One reference image: a file under the project, or (some of) an upstream node's outputs."""

    label: str  # as written, after substitution: "brand/palette.png", "@hero", "@storyboard#2"
    path: str | None = None  # file: posix path relative to the project root
    node: str | None = None  # upstream node id
    index: int | None = None  # 0-based output of the upstream node; None = all of them
    paths: tuple[str, ...] = ()  # upstream: the output paths referenced, in order
    site: RefSite | None = None  # file: where the manifest names it


@dataclass(frozen=True)
class Node:
    """A concrete asset to build."""

    id: str
    asset: str  # the manifest asset id
    variant: tuple[tuple[str, str], ...]  # (key, value) in matrix declaration order
    prompt: str
    provider: str  # configured provider name
    provider_type: str
    model: str  # fingerprint model: canonical Seedream name, or "local"
    size: str  # as written
    width: int
    height: int
    count: int
    seed: int | None
    watermark: bool
    params: Mapping[str, Any]
    references: tuple[Ref, ...]
    outputs: tuple[str, ...]  # posix paths relative to the project root
    # A derived node ("derive"): references[0] is its source (the ``from`` image), then one
    # reference per overlay step, in step order; ``steps`` are canonical (see steps.py).
    kind: str = "generate"
    steps: tuple[Mapping[str, Any], ...] = ()
    # Images one request makes and the build keeps one of (the pick, lock key ``pick``); 1: none.
    candidates: int = 1
    batch: str = "sequential"  # "separate": one single-image request per output / candidate
    output_format: str | None = None  # png | jpeg where the host takes it; None: the host's default

    @property
    def images_per_request(self) -> int:
        """What one generation asks the host for: every candidate, or every output."""
        return self.candidates if self.candidates > 1 else self.count

    @property
    def reference_images(self) -> int:
        """Images sent as references: an upstream asset named without #N sends all its outputs."""
        return sum(len(r.paths) if r.node and r.paths else 1 for r in self.references)

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.node for r in self.references if r.node))

    @property
    def derived(self) -> bool:
        return self.kind == "derive"


def variant_id(asset: str, variant: tuple[tuple[str, str], ...]) -> str:
    if not variant:
        return asset
    return f"{asset}[{','.join(f'{k}={v}' for k, v in sorted(variant))}]"


class Selection(Sequence[Node]):
    """Some nodes in build order, by id, over a mapping that may decode a node only when it
    is asked for (spec/blueprint.Nodes): the planner takes a node the up-to-date record
    proves without decoding it, by its id and its upstream ids."""

    def __init__(self, ids: list[str], nodes: Mapping[str, Node],
                 upstream: Callable[[str], Sequence[str]] | None = None):
        self.ids = ids
        self._nodes = nodes
        # Node.upstream of an id (a function of the mapping's where it has one: spec/blueprint.Nodes)
        self.upstream: Callable[[str], Sequence[str]] = upstream or getattr(nodes, "upstream", None) or (
            lambda nid: nodes[nid].upstream)

    @classmethod
    def of(cls, nodes: Iterable[Node]) -> "Selection":
        by_id = {n.id: n for n in nodes}
        return cls(list(by_id), by_id)

    def node(self, nid: str) -> Node:
        return self._nodes[nid]

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._nodes[nid] for nid in self.ids[index]]
        return self._nodes[self.ids[index]]

    def __len__(self) -> int:
        return len(self.ids)
