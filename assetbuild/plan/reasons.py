"""Why a node is not up to date: each reason's stable code (``plan --json``, ``check --json``
and ``build --json`` give it; README lists them) and the one table of their texts.

A code is a member of :class:`ReasonCode`, so a misspelt one fails where it is written, not
when a reason is printed. The planner makes most reasons; the executor adds the three a build
finds only while it runs (``cache-damaged``, ``over-budget``, ``stopped``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Sequence


class ReasonCode(str, Enum):
    """A reason's code. A ``str``: JSON and comparisons with the code text work as before."""

    NEW_ASSET = "new-asset"
    FORCED = "forced"
    REROLL = "reroll"
    REROLL_RESUMED = "reroll-resumed"
    # what the fingerprint counts changed (one code per input key, then references and the rest)
    KIND_CHANGED = "kind-changed"
    PROMPT_CHANGED = "prompt-changed"
    MODEL_CHANGED = "model-changed"
    SIZE_CHANGED = "size-changed"
    COUNT_CHANGED = "count-changed"
    CANDIDATES_CHANGED = "candidates-changed"
    SEED_CHANGED = "seed-changed"
    WATERMARK_CHANGED = "watermark-changed"
    PARAMS_CHANGED = "params-changed"
    STEPS_CHANGED = "steps-changed"
    BATCH_CHANGED = "batch-changed"
    OUTPUT_FORMAT_CHANGED = "output_format-changed"
    REFERENCE_CHANGED = "reference-changed"
    REFERENCES_CHANGED = "references-changed"
    RECIPE_CHANGED = "recipe-changed"
    FINGERPRINT_CHANGED = "fingerprint-changed"
    # upstream nodes and reference files
    UPSTREAM_CHANGED = "upstream-changed"
    UPSTREAM_UNBUILT = "upstream-unbuilt"
    UPSTREAM_HAND_EDITED = "upstream-hand-edited"
    REFERENCE_MISSING = "reference-missing"
    # the outputs on disk
    OUTPUT_MISSING = "output-missing"
    OUTPUT_MODIFIED = "output-modified"
    OUTPUT_FOREIGN = "output-foreign"
    OUTPUT_OTHER_LOCK = "output-other-lock"
    LFS_POINTER = "lfs-pointer"
    ADOPTED_INPUTS_CHANGED = "adopted-inputs-changed"
    OUTPUT_PATHS_CHANGED = "output-paths-changed"
    # where the images come from instead of a generation
    OLD_OUTPUT_PATHS = "old-output-paths"
    SAME_CONTENT = "same-content"
    MERGE_BUILT = "merge-built"
    IN_CACHE = "in-cache"
    # what stops a generation
    OFFLINE = "offline"
    MISSING_KEY = "missing-key"
    BILLED_UNUSABLE = "billed-unusable"
    # found by the executor, while a build runs
    CACHE_DAMAGED = "cache-damaged"
    OVER_BUDGET = "over-budget"
    STOPPED = "stopped"

    __hash__ = str.__hash__  # "forced" in {ReasonCode.FORCED}, on every Python version

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


_ADOPT_OR_FORCE = "(`assetbuild adopt {asset}` keeps it, `assetbuild build --force {asset}` overwrites it)"

# Each code's text: ``{}`` is the reason's detail, ``{asset}`` the asset a command in it names.
TEXT: dict[ReasonCode, str] = {
    ReasonCode.NEW_ASSET: "new asset",
    ReasonCode.FORCED: "forced (--force)",
    ReasonCode.REROLL: "reroll (a new generation though nothing changed)",
    ReasonCode.REROLL_RESUMED: "a reroll interrupted after its job was submitted (and billed): its saved job is resumed",
    ReasonCode.KIND_CHANGED: "kind changed ({})",
    ReasonCode.PROMPT_CHANGED: "prompt changed",
    ReasonCode.MODEL_CHANGED: "model changed ({})",
    ReasonCode.SIZE_CHANGED: "size changed ({})",
    ReasonCode.COUNT_CHANGED: "count changed ({})",
    ReasonCode.CANDIDATES_CHANGED: "candidates changed ({})",
    ReasonCode.SEED_CHANGED: "seed changed",
    ReasonCode.WATERMARK_CHANGED: "watermark changed",
    ReasonCode.PARAMS_CHANGED: "params changed",
    ReasonCode.STEPS_CHANGED: "steps changed",
    ReasonCode.BATCH_CHANGED: "batch changed ({})",
    ReasonCode.OUTPUT_FORMAT_CHANGED: "output_format changed ({})",
    ReasonCode.REFERENCE_CHANGED: "reference {} changed",
    ReasonCode.REFERENCES_CHANGED: "references changed",
    ReasonCode.RECIPE_CHANGED: "recipe changed",
    ReasonCode.FINGERPRINT_CHANGED: "fingerprint changed",
    ReasonCode.UPSTREAM_CHANGED: "upstream {} changed",
    ReasonCode.UPSTREAM_UNBUILT: "upstream {} not built",
    ReasonCode.UPSTREAM_HAND_EDITED: "upstream {asset} not built: its output was modified by hand " + _ADOPT_OR_FORCE,
    ReasonCode.REFERENCE_MISSING: "reference {} missing",
    ReasonCode.OUTPUT_MISSING: "output {} missing",
    ReasonCode.OUTPUT_MODIFIED: "output {} modified by hand " + _ADOPT_OR_FORCE,
    ReasonCode.OUTPUT_FOREIGN: "output {} exists but was not written by assetbuild " + _ADOPT_OR_FORCE,
    ReasonCode.OUTPUT_OTHER_LOCK: ("output {} holds the bytes another lock recorded (a merge?): "
                                   "run `assetbuild lock resolve` to record it as built (--force overwrites it)"),
    ReasonCode.LFS_POINTER: "output {} is a Git LFS pointer file, not the image: run git lfs pull",
    ReasonCode.ADOPTED_INPUTS_CHANGED: ("output {} was adopted by hand, and a rebuild would discard the hand edit "
                                        "(--force rebuilds it)"),
    ReasonCode.OUTPUT_PATHS_CHANGED: "output paths changed",
    ReasonCode.OLD_OUTPUT_PATHS: "from the old output paths",
    ReasonCode.SAME_CONTENT: "same inputs as {}, whose images are on disk (a rename or a merge: nothing to pay)",
    ReasonCode.MERGE_BUILT: ("a merge is in progress and {} built these inputs already: run `assetbuild lock resolve` "
                             "(it takes the images from git; nothing to pay), then build"),
    ReasonCode.IN_CACHE: "in the cache",
    ReasonCode.OFFLINE: "needs generation by {} (--offline)",
    ReasonCode.MISSING_KEY: "API key not set: set the environment variable {}",
    ReasonCode.BILLED_UNUSABLE: ("a job for these inputs was billed but its images could not be fetched "
                                 "(request id {}); `assetbuild build --retry-failed` pays for a new one"),
    ReasonCode.CACHE_DAMAGED: "the cached images are damaged or gone",
    ReasonCode.OVER_BUDGET: "generating it again (${}) would exceed the budget (max_cost / --max-cost)",
    ReasonCode.STOPPED: "not started: the build stopped after {} failed (-k keeps going)",
}

# A node blocked for one of these waits for the user's word: adopt the file, or overwrite it.
HAND_EDIT_CODES = frozenset({ReasonCode.OUTPUT_MODIFIED, ReasonCode.OUTPUT_FOREIGN})


def input_changed(key: str) -> ReasonCode:
    """The code of a change of the fingerprint input ``key`` (``size`` -> ``size-changed``)."""
    return ReasonCode(f"{key}-changed")


@dataclass(frozen=True)
class Reason:
    """Why a node is not up to date, as data: a stable ``code`` and the ``detail`` it is about
    (a path, an asset id, an old -> new value). ``str()`` reads it. A code given as its text
    (``Reason("forced")``) becomes its member, and an unknown one is a ValueError at once."""

    code: ReasonCode
    detail: str = ""
    asset: str = ""  # the asset a command in the text names (`assetbuild adopt logo`)

    def __post_init__(self) -> None:
        if type(self.code) is not ReasonCode:
            object.__setattr__(self, "code", ReasonCode(self.code))

    def __str__(self) -> str:
        return TEXT[self.code].format(self.detail, asset=shell_word(self.asset or "ASSET"))


def shell_word(text: str) -> str:
    """``text`` as one word of a shell command (a variant id holds brackets)."""
    import shlex

    return shlex.quote(text)


def prompt_change(reasons: Sequence[Reason], inputs: dict | None) -> tuple[str, str] | None:
    """(old, new) prompt where ``reasons`` say the prompt changed and ``inputs`` (the
    decision's fingerprint inputs) hold the new one; else None."""
    for r in reasons:
        if r.code is ReasonCode.PROMPT_CHANGED and inputs and isinstance(inputs.get("prompt"), str):
            return r.detail, inputs["prompt"]
    return None


def texts(reasons: Sequence[Reason]) -> list[str]:
    return [str(r) for r in reasons]
