"""assetbuild: a declarative build system for AI-generated images (a Makefile for images).

The library API is :class:`Project`; the CLI (``assetbuild``) is a thin layer over it. Names
are imported on first use (PEP 562), so ``python -m assetbuild`` starts without loading the
library parts a command does not need.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_WHERE = {
    "Action": "plan.planner", "AssetbuildError": "errors", "BudgetError": "errors", "BuildInterrupted": "errors",
    "DeriveError": "errors",
    "BuildOptions": "api", "BuildReport": "api", "CacheError": "errors", "Clock": "clock", "Decision": "plan.planner", "Event": "run.executor",
    "GenerationRequest": "providers.base", "GenerationResult": "providers.base", "Interrupted": "errors",
    "LockfileError": "errors", "ManifestError": "errors", "ManifestErrors": "errors",
    "NodeResult": "run.executor", "Outcome": "run.executor",
    "Plan": "api", "Project": "api", "Provider": "providers.base", "ProviderError": "errors",
    "ProviderRefused": "errors", "ProviderRequestError": "errors", "ProviderUnavailable": "errors",
    "Reason": "plan.reasons", "ReferenceImage": "providers.base", "RemoteError": "errors", "Stale": "api",
    "UsageError": "errors", "UserError": "errors",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:  # no typing import: a no-op's start pays for nothing
    if name not in _WHERE:
        raise AttributeError(f"module 'assetbuild' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
