"""assetbuild: a declarative build system for AI-generated images (a Makefile for images).

The library API is :class:`Project`; the CLI (``assetbuild``) is a thin layer over it.
"""

from .api import BuildReport, Plan, Project, Stale
from .errors import (
    AssetbuildError,
    BudgetError,
    CacheError,
    Interrupted,
    LockfileError,
    ManifestError,
    ManifestErrors,
    ProviderError,
    ProviderRefused,
    ProviderRequestError,
    ProviderUnavailable,
    UsageError,
    UserError,
)
from .planner import Action, Decision
from .providers.base import GenerationRequest, GenerationResult, ReferenceImage

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AssetbuildError",
    "BudgetError",
    "BuildReport",
    "CacheError",
    "Decision",
    "GenerationRequest",
    "GenerationResult",
    "Interrupted",
    "LockfileError",
    "ManifestError",
    "ManifestErrors",
    "Plan",
    "Project",
    "ProviderError",
    "ProviderRefused",
    "ProviderRequestError",
    "ProviderUnavailable",
    "ReferenceImage",
    "Stale",
    "UsageError",
    "UserError",
]
