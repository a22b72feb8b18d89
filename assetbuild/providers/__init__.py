"""Image providers: the built-in offline ``local`` renderer and the Seedream hosts.

``create_provider`` builds one from a ``[providers.NAME]`` table; modules are imported only
when a provider of that type is used, so a no-op build never imports httpx.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import UserError
from .base import Provider

if TYPE_CHECKING:  # pydantic is loaded only where a provider is made
    from ..spec.models import ProviderConfig

# httpx imports its own command-line tool (rich, pygments: about 55 ms, a sixth of a remote
# build's start) unless it is absent, and then goes on without it; assetbuild never runs it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

PROVIDER_CLASSES: dict[str, tuple[str, str]] = {
    "local": ("assetbuild.providers.local", "LocalProvider"),
    "modelark": ("assetbuild.providers.modelark", "ModelArkProvider"),
    "volcengine": ("assetbuild.providers.modelark", "VolcengineProvider"),
    "evolink": ("assetbuild.providers.evolink", "EvolinkProvider"),
    "atlascloud": ("assetbuild.providers.atlascloud", "AtlasCloudProvider"),
    "apiframe": ("assetbuild.providers.apiframe", "ApiframeProvider"),
    "fal": ("assetbuild.providers.fal", "FalProvider"),
    "replicate": ("assetbuild.providers.replicate", "ReplicateProvider"),
}


def provider_class(type_: str) -> Any:
    try:
        module_name, class_name = PROVIDER_CLASSES[type_]
    except KeyError:
        raise UserError(f"unknown provider type {type_!r}; use one of {', '.join(PROVIDER_CLASSES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def create_provider(
    name: str,
    config: ProviderConfig,
    *,
    env: Mapping[str, str] | None = None,
    clock: Any = None,
    transport: Any = None,
) -> Provider:
    """A provider instance for one build (its rate limits are shared by all the build's threads)."""
    return provider_class(config.type)(name, config, env=env, clock=clock, transport=transport)


__all__ = ["PROVIDER_CLASSES", "create_provider", "provider_class"]
