"""What counts as changed (DESIGN §2): a sha256 over canonical JSON of exactly what decides
an asset's image. File hashes come from hashing.py (mtime never decides freshness)."""

from __future__ import annotations

from typing import Any

from ..spec.nodes import Node
from ..store.hashing import fingerprint_of

RECIPE_VERSION = 1
# Derived images: bump when transforms.py writes other bytes for the same steps and source.
DERIVE_RECIPE_VERSION = 1


def fingerprint_inputs(node: Node, references: list[tuple[str, str]]) -> dict[str, Any]:
    """Everything that decides ``node``'s image. ``references`` is (label, sha256) per
    reference image in order; only the hashes enter the fingerprint (renaming a file with
    the same bytes changes nothing), the labels are kept to explain changes. A derived
    node's references are its source image, then each overlay step's image."""
    if node.derived:
        return {
            "recipe": DERIVE_RECIPE_VERSION,
            "kind": "derive",
            "steps": [dict(step) for step in node.steps],
            "references": [{"ref": label, "sha256": sha} for label, sha in references],
        }
    inputs = {
        "recipe": RECIPE_VERSION,
        "kind": "generate",
        "prompt": node.prompt,
        "model": node.model,
        "size": f"{node.width}x{node.height}",
        "count": node.count,
        "candidates": node.candidates,
        "seed": node.seed,
        "watermark": node.watermark,
        "params": dict(node.params),
        "references": [{"ref": label, "sha256": sha} for label, sha in references],
    }
    # Only when set: every fingerprint made before these keys existed stays what it was.
    if node.batch != "sequential":
        inputs["batch"] = node.batch
    if node.output_format is not None:
        inputs["output_format"] = node.output_format
    return inputs


def fingerprint(inputs: dict[str, Any]) -> str:
    return fingerprint_of(inputs)
