"""Expansion: manifest assets -> concrete build nodes.

A ``matrix`` becomes one node per combination (id ``sneaker[bg=white,color=red]``, keys
sorted), ``{key}`` templates are filled in (in every string key: prompt, size, output,
references, from, and the steps' strings), sizes are resolved against the node's model,
output paths are laid out (matrix values slugged into portable file names), and references
are resolved to files or to upstream nodes (binding variant by variant where the referring
asset shares the matrix keys).

A derived asset (``from`` + ``steps``) takes on the matrix keys of the asset it derives from
(those it does not set or select itself), so ``from = "@sneaker"`` makes one derived node per
sneaker variant.
"""

from __future__ import annotations

import difflib
import itertools
import math
import posixpath
import re
from typing import Any, Mapping

from ..errors import ManifestError
from .layout import portable_problem, project_path, reference_problem, under
from ..errors import clip
from .manifest import LoadedManifest, Problems
from . import catalog
from .models import AssetSpec, ProviderConfig
from .nodes import Node, Ref, RefSite, variant_id
from .sizes import SizeError, resolve_size
from .templates import UnknownPlaceholder, render
from .steps import EXTENSIONS, StepError, extension, format_of, oversized, parse_steps

_REF = re.compile(r"^@(?P<id>[a-z0-9][a-z0-9_-]*)(?:\[(?P<sel>[^\]]*)\])?(?:#(?P<n>\d+))?$")
_MATRIX_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ID_SYNTAX = "[],="  # variant ids and selectors are written with these
_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


def slug(value: str) -> str:
    """A matrix value as it appears in file names: every run of characters outside
    [A-Za-z0-9._-] becomes one '-' (``16:9`` -> ``16-9``, ``dark blue`` -> ``dark-blue``)."""
    return _UNSAFE_IN_NAMES.sub("-", value)


Variant = tuple[tuple[str, str], ...]


def provider_config(loaded: LoadedManifest, name: str) -> ProviderConfig:
    """A configured provider, or a built-in type used by name with its defaults."""
    configured = loaded.manifest.providers.get(name)
    return configured if configured is not None else ProviderConfig(type=name)  # type: ignore[arg-type]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fill(template: str, values: Mapping[str, str], loaded: LoadedManifest, *path: str) -> str:
    """Substitute ``{key}`` (templates.render); a lone brace or an unknown key is an error
    naming the key's line."""
    try:
        return render(template, values)
    except ValueError as exc:
        raise loaded.error(f"bad template {clip(template)}: {exc}; write {{{{ for a literal brace", *path) from exc
    except UnknownPlaceholder as exc:
        name = exc.name
        known = ", ".join("{" + k + "}" for k in values) or "none here"
        raise loaded.error(
            f"unknown placeholder {{{name if len(name) <= 40 else name[:37] + '...'}}} in {clip(template)} (placeholders: {known}); "
            "write {{ for a literal brace",
            *path,
        ) from None


def expand(loaded: LoadedManifest, *, provider_override: str | None = None) -> dict[str, Node]:
    """Every node of the manifest, in manifest order, references resolved. Independent
    problems (in different assets, or in different keys of one) are raised together."""
    return _Expansion(loaded, provider_override).run()


class _Expansion:
    def __init__(self, loaded: LoadedManifest, provider_override: str | None):
        self.loaded = loaded
        self.m = loaded.manifest
        self.provider_override = provider_override
        self.problems = Problems()
        self.variants: dict[str, list[Variant]] = {}
        self.failed: set[str] = set()  # assets whose matrix is wrong: references to them say nothing more
        self.out_dir = "."
        self._outputs_of: dict[tuple[str, Variant], tuple[str, ...]] = {}
        self._ref_problems: dict[str, str | None] = {}  # one disk check per distinct reference file
        self._sites: dict[tuple[str, str], RefSite] = {}
        self._sizes: dict[tuple[str, str], tuple[int, int] | SizeError] = {}
        self.matrices: dict[str, dict[str, list[str]]] = {}  # each asset's matrix, a derived one's inherited keys too
        self._steps_of: dict[tuple[str, Variant], tuple[list[dict[str, Any]], list[ManifestError]]] = {}
        self._named: dict[tuple[str, str], tuple[str, Variant]] = {}  # (asset, output) -> (unslugged, variant)
        self._provider_types: dict[str, str] = {}

    def _provider_type(self, name: str) -> str:
        """The type of a provider name, once per name (a built-in one validates a model)."""
        found = self._provider_types.get(name)
        if found is None:
            found = self._provider_types[name] = provider_config(self.loaded, name).type
        return found

    def run(self) -> dict[str, Node]:
        for asset_id in self.m.assets:
            self._matrix(asset_id, ())
        self._check_variant_count()  # before anything is expanded: 10^8 variants never materialise
        with self.problems.collect():
            self.out_dir = self._output_dir()
        for asset_id, spec in self.m.assets.items():
            errors = self._matrix_problems(asset_id, spec)
            if (problem := portable_problem(asset_id)) is not None:  # the id becomes a file name
                errors.append(self.loaded.error(f"asset id {problem}", "assets", asset_id))
            if errors:
                self.failed.add(asset_id)
                for error in errors:
                    self.problems.add(error)
            matrix = self.matrices[asset_id]
            keys = list(matrix)
            combos = itertools.product(*[matrix[k] for k in keys]) if keys else [()]
            self.variants[asset_id] = [tuple(zip(keys, combo)) for combo in combos]
        self.problems.check()  # outputs cannot be laid out without a valid output_dir and matrices

        nodes: dict[str, Node] = {}
        for asset_id, spec in self.m.assets.items():
            for variant in self.variants[asset_id]:
                try:
                    node = self._node(asset_id, spec, variant)
                except ManifestError as exc:  # one variant's problems stand for the asset's
                    self.problems.add(exc)
                    break
                nodes[node.id] = node
        self._check_derived_sizes(nodes)
        self.problems.check()
        return nodes

    def _check_derived_sizes(self, nodes: Mapping[str, Node]) -> None:
        """A derived asset whose steps would make an image past the size limit from the size
        its generated source asks for is refused now, naming the asset and the step (the
        same check runs on the real image before each step, at build time)."""
        for node in nodes.values():
            if not node.derived or not node.references or node.references[0].node is None:
                continue
            source = nodes.get(node.references[0].node)
            if source is None or source.derived or not (source.width and source.height):
                continue
            problem = oversized(node.steps, (source.width, source.height))
            if problem is not None:
                self.problems.add(self.loaded.error(
                    f"{problem} (from {source.id}, {source.width}x{source.height})", "assets", node.asset, "steps"))

    def _matrix(self, asset_id: str, visiting: tuple[str, ...]) -> dict[str, list[str]]:
        """The asset's own matrix, and for a derived asset the matrix keys of the asset its
        ``from`` names that it neither sets nor selects (``@sneaker[floor=white]`` fixes floor)."""
        found = self.matrices.get(asset_id)
        if found is not None:
            return found
        spec = self.m.assets[asset_id]
        matrix = {k: [_text(v) for v in values] for k, values in spec.matrix.items()}
        m = _REF.match(spec.source or "")
        target = m.group("id") if m else None
        if m and target in self.m.assets and target != asset_id and target not in visiting:
            fixed = {p.partition("=")[0].strip() for p in (m.group("sel") or "").split(",")}
            for key, values in self._matrix(target, (*visiting, asset_id)).items():
                if key not in matrix and key not in fixed:
                    matrix[key] = values
        if not visiting:
            self.matrices[asset_id] = matrix
        return matrix

    def _check_variant_count(self) -> None:
        limit = self.m.limits.max_variants
        counts = {aid: math.prod(len(v) for v in self.matrices[aid].values()) for aid in self.m.assets}
        total = sum(counts.values())
        if total > limit:
            biggest = max(counts, key=counts.__getitem__)
            raise self.loaded.error(
                f"the manifest expands to {total:,} variants, more than the limit of {limit:,} "
                f"([limits] max_variants); this matrix makes {counts[biggest]:,}: shrink it or raise the limit",
                "assets", biggest, "matrix",
            )

    def _output_dir(self) -> str:
        text = self.m.project.output_dir
        if not text.strip():
            raise self.loaded.error('output_dir is empty; write output_dir = "." for the project folder itself',
                                    "project", "output_dir")
        if posixpath.normpath(text.replace("\\", "/")) == ".":
            return "."
        return project_path(self.loaded, text, "project", "output_dir")

    def _matrix_problems(self, asset_id: str, spec: AssetSpec) -> list[ManifestError]:
        errors = []
        for key, values in spec.matrix.items():
            where = ("assets", asset_id, "matrix", key)
            texts = [_text(v) for v in values]
            if not _MATRIX_KEY.match(key):
                errors.append(self.loaded.error(f"matrix key {clip(key)}: use letters, digits, '-' and '_'", *where))
            elif not values:
                errors.append(self.loaded.error("a matrix key needs at least one value", *where))
            elif len(set(texts)) != len(texts):
                errors.append(self.loaded.error("matrix values must be unique", *where))
            else:
                for text in texts:
                    bad = next((c for c in text if c in _ID_SYNTAX or not c.isprintable()), None)
                    if bad is not None:
                        errors.append(self.loaded.error(
                            f"matrix value {clip(text)} contains {bad!r}, which variant ids cannot carry; "
                            f"use values without {' '.join(_ID_SYNTAX)} or control characters", *where))
                        break
        return errors

    def _node(self, asset_id: str, spec: AssetSpec, variant: Variant) -> Node:
        if spec.source is not None:
            return self._derived(asset_id, spec, variant)
        m = self.m
        loaded = self.loaded
        where = ("assets", asset_id)
        values = dict(variant)
        provider = self.provider_override or spec.provider or m.project.provider
        ptype = self._provider_type(provider)
        model = "local" if ptype == "local" else (spec.model or m.project.model)
        errors: list[ManifestError] = []  # the keys of one asset are independent of each other
        width = height = 0
        size = spec.size
        try:
            size = fill(spec.size, values, loaded, *where, "size")
            width, height = self._size(size, model)
        except ManifestError as exc:
            errors.append(exc)
        except SizeError as exc:
            errors.append(loaded.error(f"{exc}", *where, "size"))
        prompt = ""
        try:
            prompt = fill(spec.prompt or "", values, loaded, *where, "prompt")
        except ManifestError as exc:
            errors.append(exc)
        refs = []
        for text in spec.references:
            try:
                refs.append(self._ref(asset_id, fill(text, values, loaded, *where, "references"), values))
            except ManifestError as exc:
                errors.append(exc)
        outputs: tuple[str, ...] = ()
        try:
            outputs = self._outputs(asset_id, spec, variant)
        except ManifestError as exc:
            errors.append(exc)
        if ptype != "local" and not errors:
            errors.extend(self._offer_problems(asset_id, spec, provider, ptype, model, refs))
        _raise(errors)
        return Node(
            id=variant_id(asset_id, variant),
            asset=asset_id,
            variant=variant,
            prompt=prompt,
            provider=provider,
            provider_type=ptype,
            model=model,
            size=size,
            width=width,
            height=height,
            count=spec.count,
            candidates=spec.candidates,
            seed=spec.seed,
            watermark=spec.watermark,
            params=spec.params,
            references=tuple(refs),
            outputs=outputs,
            batch=spec.batch,
            output_format=spec.output_format,
        )

    def _offer_problems(self, asset_id: str, spec: AssetSpec, provider: str, ptype: str, model: str,
                        refs: list[Ref]) -> list[ManifestError]:
        """What the models table says this model on this host cannot do, found before anything
        is sent: a host that does not sell the model, more references than it takes, a batch
        where it makes one image per request. Each is one line naming the limit."""
        config = provider_config(self.loaded, provider)
        offer = catalog.offer(ptype, model)
        where = ("assets", asset_id)
        if offer is None:
            if model in config.model_ids:
                return []  # a model only the config names: the host judges
            hosts = ", ".join(catalog.hosts_of(model)) or "none"
            return [self.loaded.error(f"provider {provider} ({ptype}) does not sell {model}; hosts that do: {hosts} "
                                      "(`assetbuild models`)", *where, "model")]
        problems = []
        if model in config.version and "version" not in offer.takes:
            problems.append(self.loaded.error(f"{ptype} has no model versions to pin; version applies to a "
                                              "replicate provider", "providers", provider, "version"))
        images = sum(len(ref.paths) if ref.node and ref.paths else 1 for ref in refs)
        if images > offer.max_references:
            problems.append(self.loaded.error(
                f"{model} on {ptype} takes at most {offer.max_references} reference images; this asset sends "
                f"{images}", *where, "references"))
        wanted = spec.candidates if spec.candidates > 1 else spec.count
        if spec.output_format is not None and "output_format" not in offer.takes:
            takers = [o.host for o in catalog.OFFERS if o.model == model and "output_format" in o.takes]
            problems.append(self.loaded.error(
                f"{model} on {ptype} has no output_format option; remove it, or use a host that takes it for "
                f"{model}: {', '.join(takers) or 'none'}", *where, "output_format"))
        if wanted > 1 and offer.batch == "none" and spec.batch != "separate":
            key = "candidates" if spec.candidates > 1 else "count"
            problems.append(self.loaded.error(
                f"{model} on {ptype} makes one image per request (no batch generation); {key} = {wanted} "
                'needs batch = "separate" (one request per image)', *where, key))
        return problems

    def _derived(self, asset_id: str, spec: AssetSpec, variant: Variant) -> Node:
        """A derived node: its source and overlay images as references (source first), its
        steps checked with this variant's values filled in."""
        loaded = self.loaded
        values = dict(variant)
        steps, errors = self._steps(asset_id, spec, variant)
        errors = list(errors)
        refs = []
        try:
            text = fill(spec.source or "", values, loaded, "assets", asset_id, "from")
            refs.append(self._ref(asset_id, text, values, key="from", takes_one="from"))
        except ManifestError as exc:
            errors.append(exc)
        for step in steps:
            if step["op"] == "overlay":
                try:
                    refs.append(self._ref(asset_id, step["image"], values, key="steps", takes_one="an overlay"))
                except ManifestError as exc:
                    errors.append(exc)
        outputs: tuple[str, ...] = ()
        try:
            outputs = self._outputs(asset_id, spec, variant)
        except ManifestError as exc:
            errors.append(exc)
        _raise(errors)
        return Node(id=variant_id(asset_id, variant), asset=asset_id, variant=variant, prompt="",
                    provider="derive", provider_type="derive", model="derive", size="", width=0, height=0,
                    count=1, seed=None, watermark=False, params={}, references=tuple(refs), outputs=outputs,
                    kind="derive", steps=tuple(steps))

    def _steps(self, asset_id: str, spec: AssetSpec, variant: Variant) -> tuple[list[dict[str, Any]], list[ManifestError]]:
        """The variant's canonical steps and their problems (once per variant: the outputs of
        a derived asset need its format, and so do those that reference it)."""
        key = (asset_id, variant)
        if key not in self._steps_of:
            values = dict(variant)
            where = ("assets", asset_id, "steps")

            def fill_in(text: str) -> str:
                try:
                    return fill(text, values, self.loaded, *where)
                except ManifestError as exc:
                    raise StepError(exc.detail) from None

            steps, problems = parse_steps(spec.steps, fill_in)
            self._steps_of[key] = (steps, [self.loaded.error(p, *where) for p in problems])
        return self._steps_of[key]

    def _size(self, size: str, model: str) -> tuple[int, int]:
        """resolve_size, once per distinct (size, model): most assets share a few sizes."""
        key = (size, model)
        found = self._sizes.get(key)
        if found is None:
            try:
                found = resolve_size(size, model)
            except SizeError as exc:
                found = exc
            self._sizes[key] = found
        if isinstance(found, SizeError):
            raise found
        return found

    def _outputs(self, asset_id: str, spec: AssetSpec, variant: Variant) -> tuple[str, ...]:
        memo = self._outputs_of.get((asset_id, variant))
        if memo is not None:
            return memo
        loaded = self.loaded
        where = ("assets", asset_id, "output")
        count = _count(spec)
        ext, fmt = ".png", "png"
        if spec.source is not None:
            steps, problems = self._steps(asset_id, spec, variant)
            if not problems:  # else the asset reports them; its outputs are laid out as PNG meanwhile
                ext, fmt = extension(steps), format_of(steps)
        template = spec.output
        if template is not None and (template.replace("\\", "/").startswith("/") or re.match(r"^[A-Za-z]:", template)):
            raise loaded.error(f"output {clip(template)} is absolute; write it relative to output_dir "
                               f"{self.out_dir} (it is never moved under it quietly)", *where)
        if template is None:
            template = "-".join(["{asset}", *("{" + k + "}" for k, _ in variant)])
            template += f"-{{i}}{ext}" if count > 1 else ext
        elif count > 1 and "{i}" not in template:
            raise loaded.error(f"count = {count} needs {{i}} in the output template (e.g. \"{{asset}}-{{i}}.png\")",
                               *where)
        elif spec.source is None and not template.lower().endswith(".png"):
            raise loaded.error("generated images are written as PNG; end the output path with .png", *where)
        elif spec.source is not None and not template.lower().endswith(EXTENSIONS[fmt]):
            why = f"its format step writes {fmt}" if fmt != "png" else "without a format step it is written as PNG"
            raise loaded.error(f"{why}; end the output path with {' or '.join(EXTENSIONS[fmt])}", *where)
        out_dir = self.out_dir
        paths = []
        for i in range(1, count + 1):
            values = {**dict(variant), "asset": asset_id, "i": str(i)}
            if count == 1:
                values.pop("i")
            raw = fill(template, values, loaded, *where)  # checked as written: a value never moves an output
            rel = fill(template, {k: slug(v) if k in dict(variant) else v for k, v in values.items()}, loaded, *where) \
                if variant else raw
            try:
                raw_path = project_path(loaded, f"{out_dir}/{raw}", *where)
                path = project_path(loaded, f"{out_dir}/{rel}", *where) if rel != raw else raw_path
                if not under(path, out_dir) or not under(raw_path, out_dir):
                    raise loaded.error(f"output {path} is outside output_dir {out_dir}; "
                                       "keep output paths under it (no '..')", *where)
            except ManifestError:
                culprit = next(((k, v) for k, v in variant if _suspicious(v)), None)
                if culprit is None:
                    raise
                key, value = culprit
                why = portable_problem(value)
                raise loaded.error(f"matrix value {clip(value)} makes the output path {clip(f'{out_dir}/{rel}')}, "
                                   + (f"and the value {why}" if why else
                                      f"which is not a file under output_dir {out_dir}; use values without "
                                      "'/', '..' or control characters"), "assets", asset_id, "matrix", key) from None
            self._check_slug_clash(asset_id, path, raw, variant)
            paths.append(path)
        result = tuple(paths)
        self._outputs_of[(asset_id, variant)] = result
        return result

    def _check_slug_clash(self, asset_id: str, path: str, raw: str, variant: Variant) -> None:
        """Two variants whose values differ only in characters a file name cannot carry
        (``16:9`` and ``16/9``) would write one file: say which values, not just the path."""
        seen = self._named.setdefault((asset_id, path.lower()), (raw, variant))
        if seen[0] == raw:
            return
        for (key, a), (_, b) in zip(seen[1], variant):
            if a != b and slug(a) == slug(b):
                raise self.loaded.error(
                    f"matrix values {clip(a)} and {clip(b)} both become {clip(slug(a))} in the output file name "
                    "(characters other than A-Z a-z 0-9 . _ - become '-'); make them differ in a letter or digit, "
                    "or set output", "assets", asset_id, "matrix", key)

    def _site(self, asset_id: str, key: str) -> RefSite:
        site = self._sites.get((asset_id, key))
        if site is None:
            file, line, dotted = self.loaded.locate("assets", asset_id, key)
            site = self._sites[(asset_id, key)] = RefSite(file, line, dotted, self.m.limits.max_reference_pixels)
        return site

    def _ref(self, asset_id: str, text: str, values: Mapping[str, str], *, key: str = "references",
             takes_one: str | None = None) -> Ref:
        """A reference as written (after substitution) under ``key``. ``takes_one`` names what
        needs exactly one image (a derived asset's source, an overlay): an asset of several
        outputs must then be named with #N."""
        where = ("assets", asset_id, key)
        if not text.startswith("@"):
            return self._file_ref(asset_id, text, key)
        m = _REF.match(text)
        if not m:
            raise self.loaded.error(f"bad reference {clip(text)}; use @id, @id[key=value,...] or @id#N", *where)
        target = m.group("id")
        if target not in self.variants:
            close = difflib.get_close_matches(target, list(self.variants), n=1)
            hint = f"; did you mean @{close[0]}?" if close else ""
            raise self.loaded.error(f"unknown asset @{target}{hint}", *where)
        if target in self.failed:
            return Ref(label=text)  # its matrix is reported already; the build stops before using this
        chosen = self._ref_variant(text, target, m.group("sel"), values, where)
        target_spec = self.loaded.manifest.assets[target]
        index = self._ref_index(text, target, _count(target_spec), m.group("n"), takes_one, where)
        outputs = self._outputs(target, target_spec, chosen)
        return Ref(label=text, node=variant_id(target, chosen), index=index,
                   paths=outputs if index is None else (outputs[index],))

    def _file_ref(self, asset_id: str, text: str, key: str) -> Ref:
        """A reference to a file of the project."""
        where = ("assets", asset_id, key)
        rel = project_path(self.loaded, text, *where)
        if rel not in self._ref_problems:
            self._ref_problems[rel] = reference_problem(self.loaded, rel)
        problem = self._ref_problems[rel]
        if problem:
            raise self.loaded.error(problem, *where)
        return Ref(label=rel, path=rel, site=self._site(asset_id, key))

    def _ref_variant(self, text: str, target: str, sel: str | None, values: Mapping[str, str],
                     where: tuple[str, ...]) -> Variant:
        """The one variant of ``target`` a reference names: its selector, then the referring
        node's own values on the matrix keys both share (bound variant by variant)."""
        target_keys = self.matrices[target]
        selector = self._ref_selector(text, target, sel, where)
        for name in target_keys:  # bind variant by variant on shared matrix keys
            if name not in selector and name in values:
                selector[name] = values[name]
        chosen = [v for v in self.variants[target] if all(dict(v)[k] == val for k, val in selector.items())]
        if not chosen:
            raise self.loaded.error(f"{clip(text)} names no variant of @{target}", *where)
        if len(chosen) > 1:
            missing = [k for k in target_keys if k not in selector]
            raise self.loaded.error(
                f"{clip(text)} is ambiguous: @{target} has {len(chosen)} variants; name one, e.g. "
                f"@{variant_id(target, chosen[0])} (unbound: {', '.join(missing)})",
                *where,
            )
        return chosen[0]

    def _ref_selector(self, text: str, target: str, sel: str | None, where: tuple[str, ...]) -> dict[str, str]:
        """``[key=value,...]`` as written, each key one of the target's matrix keys."""
        target_keys = self.matrices[target]
        selector: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in (sel or "").split(","))):
            name, eq, value = part.partition("=")
            if not eq or name.strip() not in target_keys:
                raise self.loaded.error(f"{clip(text)}: @{target} has no matrix key {clip(name.strip())} "
                                        f"(keys: {', '.join(target_keys) or 'none'})", *where)
            selector[name.strip()] = value.strip()
        return selector

    def _ref_index(self, text: str, target: str, count: int, n_text: str | None, takes_one: str | None,
                   where: tuple[str, ...]) -> int | None:
        """Which of the target's ``count`` outputs a reference names (#N), None: all of them."""
        if n_text is not None:
            n = int(n_text) if len(n_text) < 4 else 0
            if not 1 <= n <= count:
                raise self.loaded.error(f"{clip(text)}: @{target} has {count} output(s); "
                                        f"use #1..#{count}", *where)
            return n - 1
        if takes_one is not None and count > 1:
            raise self.loaded.error(f"{clip(text)} names {count} images (count = {count}), and {takes_one} takes "
                                    f"one; name it, e.g. {text}#1 (#1..#{count})", *where)
        return None


def _raise(errors: list[ManifestError]) -> None:
    """The problems of one node's keys (independent of each other), raised together."""
    if errors:
        problems = Problems()
        for error in errors:
            problems.add(error)
        problems.check()


def _count(spec: AssetSpec) -> int:
    """Outputs of an asset: a derived one makes one image (a [defaults] count is not its)."""
    return 1 if spec.source is not None else spec.count


def _suspicious(value: str) -> bool:
    """A matrix value that can move or break an output path."""
    return ("/" in value or "\\" in value or ".." in value or not value.isprintable()
            or len(value.encode("utf-8", "surrogatepass")) > 200 or portable_problem(value) is not None)
