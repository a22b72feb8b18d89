"""``assetbuild explain ASSET`` and ``assetbuild providers``: what a project says about one
asset (its decision, fingerprint inputs, price rule, lock entry) and about its providers (type,
model ids, prices, whether a key is set: never the key). Typed results; the CLI prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from ..plan.planner import Action, Reason
    from ..spec.nodes import Node
    from ..store.lockfile import LockEntry
    from .workspace import Workspace


@dataclass(frozen=True)
class PriceRule:
    """The price rule an asset gets on its provider, and where it comes from (the models table
    or the provider's config)."""

    rule: str
    source: str
    usd_per_image: float
    images: int  # per request

    @property
    def usd(self) -> float:
        return self.usd_per_image * self.images

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "source": self.source, "usd_per_image": self.usd_per_image,
                "images": self.images, "usd": self.usd}


@dataclass(frozen=True)
class Explanation:
    asset: str
    action: Action
    reasons: list[Reason]
    provider: str
    price: PriceRule | None  # None: a derived asset (no provider call)
    fingerprint: str | None  # None: not known until its upstream is rebuilt
    inputs: dict[str, Any] | None
    outputs: list[str]
    lock: LockEntry | None  # None: never built

    @property
    def prompt_change(self) -> tuple[str, str] | None:
        """(old, new) where the prompt changed since the lock's entry; else None."""
        from ..plan.reasons import prompt_change

        return prompt_change(self.reasons, self.inputs)

    def to_json(self) -> dict[str, Any]:
        from ..plan.wordiff import word_diff

        entry = self.lock
        change = self.prompt_change
        return {
            "asset": self.asset,
            "action": self.action.value,
            "reasons": [str(r) for r in self.reasons],
            "prompt_diff": None if change is None else {"old": change[0], "new": change[1],
                                                        "words": [list(p) for p in word_diff(*change)]},
            "provider": self.provider,
            "price": None if self.price is None else self.price.to_json(),
            "fingerprint": self.fingerprint,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "lock": None if entry is None else {
                "fingerprint": entry.fingerprint, "provider": entry.provider, "model_id": entry.model_id,
                "built": entry.built, "cost_usd": entry.cost_usd,
                "outputs": [{"path": o.path, "sha256": o.sha256} for o in entry.outputs],
                "candidate_images": list(entry.candidate_images), "pick": entry.pick, "adopted": entry.adopted,
            },
        }


def explain(project: Workspace, target: str) -> Explanation:
    """Why the one asset ``target`` names is or is not up to date."""
    node_id = project.blueprint.one(target, "explain")
    decision = next(d for d in project.plan([node_id]).decisions if d.id == node_id)
    node = project.nodes[node_id]
    return Explanation(node_id, decision.action, list(decision.reasons), node.provider,
                       None if node.derived else price_rule(project, node), decision.fingerprint, decision.inputs,
                       list(node.outputs), project.lock.entries.get(node_id))


def price_rule(project: Workspace, node: Node) -> PriceRule:
    provider = project.providers.get(node.provider)
    rule, source = provider.price_rule(node.model)
    per_image = provider.price_per_image(node.model, node.width * node.height, node.reference_images)
    return PriceRule(rule, source, per_image, node.images_per_request)


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    type: str
    base_url: str | None
    models: dict[str, str] = field(default_factory=dict)  # model -> the host's model id
    price_per_image: dict[str, float] = field(default_factory=dict)
    key_env: str | None = None  # None: it needs no key
    key_set: bool | None = None
    fallback: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "base_url": self.base_url, "models": self.models,
                "price_per_image": self.price_per_image, "key_env": self.key_env, "key_set": self.key_set,
                "fallback": self.fallback}


def provider_info(project: Workspace) -> list[ProviderInfo]:
    """Each configured provider (and the project's default, and each one an asset names)."""
    blueprint = project.blueprint
    names = list(dict.fromkeys([*blueprint.providers, blueprint.settings["provider"],
                                *(n.provider for n in project.nodes.values() if not n.derived)]))
    rows = []
    for name in names:
        provider = project.providers.get(name)
        models = provider.models
        ids = {}
        for model in models:
            try:
                ids[model] = provider.model_id(model)
            except UserError:
                continue
        key_env = provider.key_env
        rows.append(ProviderInfo(
            name, provider.type, provider.base_url, ids,
            {model: provider.price_per_image(model) for model in ids}, key_env,
            bool(project.env.get(key_env)) if key_env else None, blueprint.fallback_of(name)))
    return rows
