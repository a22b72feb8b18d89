"""What counts as changed (DESIGN §2): a sha256 over canonical JSON of exactly what decides
an asset's image. File hashes come from hashing.py (mtime never decides freshness)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .nodes import Node

RECIPE_VERSION = 1


def fingerprint_inputs(node: Node, references: list[tuple[str, str]]) -> dict[str, Any]:
    """Everything that decides ``node``'s image. ``references`` is (label, sha256) per
    reference image in order; only the hashes enter the fingerprint (renaming a file with
    the same bytes changes nothing), the labels are kept to explain changes."""
    return {
        "recipe": RECIPE_VERSION,
        "kind": "generate",
        "prompt": node.prompt,
        "model": node.model,
        "size": f"{node.width}x{node.height}",
        "count": node.count,
        "candidates": 1,
        "seed": node.seed,
        "watermark": node.watermark,
        "params": dict(node.params),
        "references": [{"ref": label, "sha256": sha} for label, sha in references],
    }


def fingerprint(inputs: dict[str, Any]) -> str:
    canonical = dict(inputs)
    canonical["references"] = [r["sha256"] for r in inputs["references"]]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
