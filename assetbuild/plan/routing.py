"""Which providers a build can call: a host whose API key variable is empty cannot be, so
the assets that need it (and no fallback of it has a key either) are blocked with the
variable to set, and everything else builds.

Only whether the variable holds something is looked at here; a value an HTTP header cannot
carry is refused before a build sends anything (``key_is_set``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    from .reasons import Reason


class Pool(Protocol):
    def get(self, name: str) -> Any: ...

    def fallback_of(self, name: str) -> str | None: ...


def key_variable(provider: Any) -> str | None:
    """The environment variable holding ``provider``'s API key; None if it needs none."""
    return getattr(provider, "key_env", None) or None


class KeyRing:
    """What the environment's API keys allow. ``assume`` (``plan --assume-keys``) answers as
    if every key were set: CI on a pull request, where secrets are absent, still sees what a
    build would generate and what it would cost."""

    def __init__(self, pool: Pool, env: Mapping[str, str], *, assume: bool = False):
        self._pool = pool
        self._env = env
        self.assume = assume

    def missing(self, name: str) -> str | None:
        """The variable ``name``'s key should be in, if it is empty (never with ``assume``)."""
        if self.assume:
            return None
        variable = key_variable(self._pool.get(name))
        if variable is None or self._env.get(variable, "").strip():
            return None
        return variable

    def chain(self, name: str) -> list[str]:
        """``name`` and its fallbacks, in the order a build tries them."""
        names = [name]
        while (nxt := self._pool.fallback_of(names[-1])) is not None and nxt not in names:
            names.append(nxt)
        return names

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
