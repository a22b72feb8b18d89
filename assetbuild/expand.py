"""Expansion: manifest assets -> concrete build nodes.

A ``matrix`` becomes one node per combination (id ``sneaker[bg=white,color=red]``, keys
sorted), ``{key}`` templates are filled in, sizes are resolved against the node's model,
output paths are laid out, and references are resolved to files or to upstream nodes
(binding variant by variant where the referring asset shares the matrix keys).
"""

from __future__ import annotations

import difflib
import itertools
import posixpath
import re
import string
from pathlib import PurePosixPath
from typing import Any, Mapping

from .errors import ManifestError
from .manifest import LoadedManifest
from .models import AssetSpec, ProviderConfig
from .nodes import Node, Ref, variant_id
from .sizes import SizeError, resolve_size

_REF = re.compile(r"^@(?P<id>[a-z0-9][a-z0-9_-]*)(?:\[(?P<sel>[^\]]*)\])?(?:#(?P<n>\d+))?$")


def provider_config(loaded: LoadedManifest, name: str) -> ProviderConfig:
    """A configured provider, or a built-in type used by name with its defaults."""
    configured = loaded.manifest.providers.get(name)
    return configured if configured is not None else ProviderConfig(type=name)  # type: ignore[arg-type]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fill(template: str, values: Mapping[str, str], loaded: LoadedManifest, *path: str) -> str:
    """Substitute ``{key}``; ``{{`` and ``}}`` are literal braces. Unknown keys are errors."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise loaded.error(f"bad template {template!r}: {exc}; write {{{{ for a literal brace", *path) from exc
    for _literal, name, spec, conv in fields:
        if name is None:
            continue
        if name not in values or spec or conv:
            known = ", ".join("{" + k + "}" for k in values) or "none here"
            raise loaded.error(
                f"unknown placeholder {{{name}}} in {template!r} (placeholders: {known}); write {{{{ for a literal brace",
                *path,
            )
    return template.format_map(values)


def expand(loaded: LoadedManifest, *, provider_override: str | None = None) -> dict[str, Node]:
    """Every node of the manifest, in manifest order, references resolved."""
    m = loaded.manifest
    variants: dict[str, list[tuple[tuple[str, str], ...]]] = {}
    for asset_id, spec in m.assets.items():
        keys = list(spec.matrix)
        for key, values in spec.matrix.items():
            if not values:
                raise loaded.error("a matrix key needs at least one value", "assets", asset_id, "matrix", key)
            if len({_text(v) for v in values}) != len(values):
                raise loaded.error("matrix values must be unique", "assets", asset_id, "matrix", key)
        combos = itertools.product(*[[_text(v) for v in spec.matrix[k]] for k in keys]) if keys else [()]
        variants[asset_id] = [tuple(zip(keys, combo)) for combo in combos]

    nodes: dict[str, Node] = {}
    for asset_id, spec in m.assets.items():
        for variant in variants[asset_id]:
            node = _node(loaded, asset_id, spec, variant, variants, provider_override)
            nodes[node.id] = node
    return nodes


def _node(loaded: LoadedManifest, asset_id: str, spec: AssetSpec, variant: tuple[tuple[str, str], ...],
          variants: dict[str, list[tuple[tuple[str, str], ...]]], provider_override: str | None) -> Node:
    m = loaded.manifest
    where = ("assets", asset_id)
    values = dict(variant)
    provider = provider_override or spec.provider or m.project.provider
    ptype = provider_config(loaded, provider).type
    model = "local" if ptype == "local" else (spec.model or m.project.model)
    try:
        width, height = resolve_size(spec.size, model)
    except SizeError as exc:
        raise loaded.error(f"{exc}", *where, "size") from exc
    prompt = fill(spec.prompt or "", values, loaded, *where, "prompt")
    refs = tuple(_ref(loaded, asset_id, fill(text, values, loaded, *where, "references"), values, variants)
                 for text in spec.references)
    return Node(
        id=variant_id(asset_id, variant),
        asset=asset_id,
        variant=variant,
        prompt=prompt,
        provider=provider,
        provider_type=ptype,
        model=model,
        size=spec.size,
        width=width,
        height=height,
        count=spec.count,
        seed=spec.seed,
        watermark=spec.watermark,
        params=spec.params,
        references=refs,
        outputs=_outputs(loaded, asset_id, spec, variant),
    )


def _outputs(loaded: LoadedManifest, asset_id: str, spec: AssetSpec,
             variant: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    where = ("assets", asset_id, "output")
    template = spec.output
    if template is None:
        template = "-".join(["{asset}", *("{" + k + "}" for k, _ in variant)])
        template += "-{i}.png" if spec.count > 1 else ".png"
    elif spec.count > 1 and "{i}" not in template:
        raise loaded.error(f"count = {spec.count} needs {{i}} in the output template (e.g. \"{{asset}}-{{i}}.png\")", *where)
    elif not template.lower().endswith(".png"):
        raise loaded.error("generated images are written as PNG; end the output path with .png", *where)
    out_dir = loaded.manifest.project.output_dir
    paths = []
    for i in range(1, spec.count + 1):
        values = {**dict(variant), "asset": asset_id, "i": str(i)}
        if spec.count == 1:
            values.pop("i")
        rel = fill(template, values, loaded, *where)
        paths.append(project_path(loaded, f"{out_dir}/{rel}", *where))
    return tuple(paths)


def project_path(loaded: LoadedManifest, text: str, *where: str) -> str:
    """A posix path relative to the project root; an error if it is absolute or leaves it."""
    pure = PurePosixPath(text.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", text):
        raise loaded.error(f"path {text!r} is absolute; use a path relative to the manifest", *where)
    rel = posixpath.normpath(pure.as_posix())
    if rel == ".." or rel.startswith("../"):
        raise loaded.error(f"path {text!r} leaves the project; keep files under {loaded.root}", *where)
    if rel == ".":
        raise loaded.error(f"path {text!r} is the project folder itself", *where)
    return rel


def _ref(loaded: LoadedManifest, asset_id: str, text: str, values: Mapping[str, str],
         variants: dict[str, list[tuple[tuple[str, str], ...]]]) -> Ref:
    where = ("assets", asset_id, "references")
    if not text.startswith("@"):
        rel = project_path(loaded, text, *where)
        if not (loaded.root / rel).is_file():
            raise loaded.error(f"reference file {rel} does not exist; add it or fix the path", *where)
        return Ref(label=rel, path=rel)
    m = _REF.match(text)
    if not m:
        raise loaded.error(f"bad reference {text!r}; use @id, @id[key=value,...] or @id#N", *where)
    target = m.group("id")
    if target not in variants:
        close = difflib.get_close_matches(target, list(variants), n=1)
        hint = f"; did you mean @{close[0]}?" if close else ""
        raise loaded.error(f"unknown asset @{target}{hint}", *where)
    target_spec = loaded.manifest.assets[target]
    selector: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (m.group("sel") or "").split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in target_spec.matrix:
            raise loaded.error(f"{text!r}: @{target} has no matrix key {key.strip()!r} "
                               f"(keys: {', '.join(target_spec.matrix) or 'none'})", *where)
        selector[key.strip()] = value.strip()
    for key in target_spec.matrix:  # bind variant by variant on shared matrix keys
        if key not in selector and key in values:
            selector[key] = values[key]
    chosen = [v for v in variants[target] if all(dict(v)[k] == val for k, val in selector.items())]
    if not chosen:
        raise loaded.error(f"{text!r} names no variant of @{target}", *where)
    if len(chosen) > 1:
        missing = [k for k in target_spec.matrix if k not in selector]
        raise loaded.error(
            f"{text!r} is ambiguous: @{target} has {len(chosen)} variants; name one, e.g. "
            f"@{variant_id(target, chosen[0])} (unbound: {', '.join(missing)})",
            *where,
        )
    index = None
    if m.group("n") is not None:
        n = int(m.group("n"))
        if not 1 <= n <= target_spec.count:
            raise loaded.error(f"{text!r}: @{target} has {target_spec.count} output(s); use #1..#{target_spec.count}", *where)
        index = n - 1
    outputs = _outputs(loaded, target, target_spec, chosen[0])
    return Ref(label=text, node=variant_id(target, chosen[0]), index=index,
               paths=outputs if index is None else (outputs[index],))
