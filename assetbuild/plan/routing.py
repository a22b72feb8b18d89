"""Which provider a node's generation goes to, and what it costs: the one owner of the
provider pool's routing. A host whose API key variable is empty cannot be called, so a
generation goes to the first provider of its fallback chain with a key (a keyless primary is
skipped), and the assets whose whole chain is keyless are blocked with the variable to set;
everything else builds. The price of a node is its routed provider's. ``local`` is a provider
like any other: it reads no key and costs nothing.

Only whether the variable holds something is looked at when planning; a value an HTTP header
cannot carry is refused before a build sends anything (:meth:`Routing.check_sendable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from ..errors import UserError

if TYPE_CHECKING:
    from ..providers.base import Provider
    from ..spec.nodes import Node
    from .reasons import Reason

# Provider types that send nothing anywhere (allowed --offline), read no key and bill nothing.
# A table, not an ``if`` per type.
OFFLINE_TYPES = frozenset({"local"})


class ProviderPool(Protocol):
    """A project's providers: one instance per configured name, and each one's fallback. The
    one protocol for the pool (api.Providers is the production one)."""

    def get(self, name: str) -> Provider: ...

    def fallback_of(self, name: str) -> str | None: ...

    def interrupt(self) -> None: ...


def calls_host(node: Node) -> bool:
    """Whether generating ``node`` sends a request to a host (--offline forbids it)."""
    return node.provider_type not in OFFLINE_TYPES


class Routing:
    """What the environment's API keys allow, over a provider pool. ``assume`` (``plan
    --assume-keys``) answers as if every key were set: CI on a pull request, where secrets are
    absent, still sees what a build would generate and what it would cost."""

    def __init__(self, pool: ProviderPool, env: Mapping[str, str], *, assume: bool = False):
        self.pool = pool
        self._env = env
        self.assume = assume

    # -- the pool, as the executor reaches it ------------------------------------------------

    def get(self, name: str) -> Provider:
        return self.pool.get(name)

    def fallback_of(self, name: str) -> str | None:
        return self.pool.fallback_of(name)

    def interrupt(self) -> None:
        self.pool.interrupt()

    # -- keys --------------------------------------------------------------------------------

    def missing(self, name: str) -> str | None:
        """The variable ``name``'s key should be in, if it is empty (never with ``assume``)."""
        if self.assume:
            return None
        variable = self.pool.get(name).key_env
        if variable is None or self._env.get(variable, "").strip():
            return None
        return variable

    missing_key = missing

    def chain(self, name: str) -> list[str]:
        """``name`` and its fallbacks, in the order a build tries them."""
        names = [name]
        while (nxt := self.pool.fallback_of(names[-1])) is not None and nxt not in names:
            names.append(nxt)
        return names

    def next_after(self, name: str, tried: Sequence[str]) -> str | None:
        """The fallback a generation moves on to from ``name``, unless it was tried already."""
        nxt = self.pool.fallback_of(name)
        return nxt if nxt is not None and nxt not in tried else None

    def route(self, name: str) -> str | None:
        """The provider a generation for ``name`` goes to: the first of the chain with a key
        (a keyless primary is skipped straight to a keyed fallback); None if none has one."""
        return next((n for n in self.chain(name) if self.missing(n) is None), None)

    def blocking(self, name: str) -> str | None:
        """The variable(s) to set when no provider of ``name``'s chain has a key
        (``"ARK_API_KEY"``, or ``"ARK_API_KEY or FAL_KEY"`` with a fallback); else None."""
        if self.route(name) is not None:
            return None
        variables = [v for v in (self.missing(n) for n in self.chain(name)) if v is not None]
        return " or ".join(dict.fromkeys(variables))

    def blocking_key(self, node: Node) -> str | None:
        """:meth:`blocking` for a node's provider (an offline type reads no key)."""
        return self.blocking(node.provider) if calls_host(node) else None

    def check_sendable(self, names: Iterable[str]) -> None:
        """Before anything is sent: the key each of these providers' generations will use can
        be sent (``key_is_set`` refuses one no HTTP header can carry, naming its variable)."""
        for name in dict.fromkeys(names):
            routed = self.route(name) or name
            provider = self.pool.get(routed)
            if not provider.key_is_set:
                raise UserError(f"provider {routed}: set the environment variable {provider.key_env} to your "
                                "API key; nothing was sent")

    # -- prices ------------------------------------------------------------------------------

    def price(self, node: Node) -> float:
        """What generating ``node`` costs on the provider it is routed to (a keyless primary
        is skipped, as a build skips it)."""
        if not calls_host(node):
            return 0.0  # an offline type bills nothing (tests/test_routing.py): no provider is made to say so
        name = self.route(node.provider) or node.provider
        per_image = self.pool.get(name).price_per_image(node.model, node.width * node.height, node.reference_images)
        return per_image * node.images_per_request


@dataclass
class MissingKey:
    """One variable to set, the providers that read it and the assets it blocks directly."""

    variable: str
    providers: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"variable": self.variable, "providers": self.providers, "assets": self.assets}


def missing_keys(blocked: Iterable[tuple[str, str, Sequence["Reason"]]]) -> list[MissingKey]:
    """The ``missing-key`` reasons of a plan or a build, per variable, from (asset id,
    provider, reasons) of each asset."""
    found: dict[str, MissingKey] = {}
    for asset, provider, reasons in blocked:
        for reason in reasons:
            if reason.code == "missing-key":
                entry = found.setdefault(reason.detail, MissingKey(reason.detail))
                if provider not in entry.providers:
                    entry.providers.append(provider)
                entry.assets.append(asset)
    return list(found.values())
