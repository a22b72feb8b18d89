"""Reading ``assetbuild.toml``: tomllib -> models, with every TOML and pydantic error
reworded as one line naming the file, the line and the key, and what to do."""

from __future__ import annotations

import difflib
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ValidationError

from ..errors import ManifestError, ManifestErrors, clip
from ..store.files import read_manifest
from .models import (BUILT_IN_PROVIDERS, AssetSpec, CacheConfig, LimitsConfig, Manifest, ProjectConfig,
                     ProviderConfig)

# tomli's compiled build (mypyc), the parser tomllib was taken from: the same TOML 1.0 grammar,
# values and messages, read about 1.5x as fast (a 10,000-asset manifest: 0.19 s against 0.29 s
# of CPU), which is what a plan after an edit pays first. tomli 2.3 reads TOML 1.1 (pinned out:
# a manifest stays readable by tomllib). The standard library's where tomli is not installed.
try:
    import tomli as tomllib
except ImportError:  # pragma: no cover - a dependency; kept for an environment without it
    import tomllib  # type: ignore[no-redef]

ASSET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TOP_LEVEL = {"project": ProjectConfig, "defaults": AssetSpec, "providers": None, "assets": None,
              "limits": LimitsConfig, "cache": CacheConfig}


class Locator:
    """Finds the line of a key path such as ``("assets", "hero", "size")`` in TOML text.

    A light scanner over table headers and ``key =`` lines; it does not need to parse TOML
    (tomllib already did), only to point at the right line. Unknown paths fall back to the
    nearest enclosing table that is known.
    """

    _HEADER = re.compile(r"^\s*\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
    _KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")

    def __init__(self, text: str):
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        in_multiline = False
        multiline = '"""' in text or "'''" in text  # else no line opens or closes one
        for number, line in enumerate(text.splitlines(), start=1):
            if multiline:
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = not in_multiline
                    if not in_multiline:
                        continue
                elif in_multiline:
                    continue
            first = line.lstrip()[:1]
            if not first or first == "#":
                continue  # neither a header nor a key
            if first == "[":  # only a header starts with [
                if m := self._HEADER.match(line):
                    table = _split_dotted(m.group(1))
                    for end in range(1, len(table) + 1):  # [a.b] also defines a
                        self.lines.setdefault(table[:end], number)
            elif m := self._KEY.match(line):
                self.lines.setdefault(table + _split_dotted(m.group(1)), number)

    def line(self, path: tuple[str, ...]) -> int | None:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


_PLAIN_DOTTED = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def _split_dotted(text: str) -> tuple[str, ...]:
    if _PLAIN_DOTTED.fullmatch(text):  # the usual bare keys: no quotes, no spaces
        return tuple(text.split("."))
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', text)
    return tuple(a or b or c for a, b, c in parts)


@dataclass
class LoadedManifest:
    """A validated manifest and where it came from."""

    manifest: Manifest
    path: Path
    root: Path
    locator: Locator
    text: str = field(repr=False, default="")

    @property
    def display(self) -> str:
        return self.path.name

    def locate(self, *path: str) -> tuple[str, int | None, str]:
        """(file, line, dotted key) of ``path`` (e.g. "assets", "hero", "size")."""
        return self.display, self.locator.line(tuple(path)), _dotted(path)

    def error(self, message: str, *path: str) -> ManifestError:
        """A ManifestError pointing at the line of ``path`` (e.g. "assets", "hero", "size")."""
        file, line, key = self.locate(*path)
        return ManifestError(message, file=file, line=line, key=key)


def _dotted(path: tuple[str, ...] | list[Any]) -> str:
    out = []
    for part in path:
        part = str(part)
        out.append(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"')
    return ".".join(out)


_MAX_PARAMS_DEPTH = 16
_MAX_ERRORS = 50


class Problems:
    """Independent manifest errors, collected so a user sees them all in one run.
    ``check()`` raises them (one ManifestError, or ManifestErrors sorted by line)."""

    def __init__(self) -> None:
        self.errors: list[ManifestError] = []
        self._seen: set[str] = set()

    def add(self, error: ManifestError) -> None:
        for e in error.errors:
            if str(e) not in self._seen:
                self._seen.add(str(e))
                self.errors.append(e)

    @contextmanager
    def collect(self) -> Iterator[None]:
        try:
            yield
        except ManifestError as exc:
            self.add(exc)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def check(self) -> None:
        if not self.errors:
            return
        errors = sorted(self.errors, key=lambda e: e.line or 0)
        if len(errors) > _MAX_ERRORS:
            more = len(errors) - _MAX_ERRORS
            errors = errors[:_MAX_ERRORS] + [ManifestError(f"... and {more} more; fix these first",
                                                            file=errors[0].file)]
        raise errors[0] if len(errors) == 1 else ManifestErrors(errors)


def load_manifest(path: Path) -> LoadedManifest:
    return parse_manifest(read_manifest(path)[1], path)


def parse_manifest(text: str, path: Path) -> LoadedManifest:
    raw = _read_toml(text, path.name)
    loaded = LoadedManifest(Manifest(), path, path.parent.resolve(), Locator(text), text)
    problems = Problems()

    for key in raw:
        if key not in _TOP_LEVEL:
            problems.add(loaded.error(_unknown(key, _TOP_LEVEL, "table"), key))
    project = _validate(loaded, problems, ProjectConfig, raw.get("project", {}), ("project",))
    limits = _validate(loaded, problems, LimitsConfig, raw.get("limits", {}), ("limits",))
    cache = _validate(loaded, problems, CacheConfig, raw.get("cache", {}), ("cache",))
    if cache is not None:
        _check_cache(loaded, problems, cache)
    defaults, defaults_raw = _defaults(loaded, problems, raw.get("defaults", {}))
    providers = _providers(loaded, problems, raw.get("providers", {}))
    assets = _assets(loaded, problems, raw.get("assets", {}), defaults_raw)

    problems.check()
    assert project is not None and defaults is not None and limits is not None and cache is not None
    loaded.manifest = Manifest(project=project, defaults=defaults, providers=providers, assets=assets,
                               limits=limits, cache=cache)
    _check_provider_names(loaded, problems)
    problems.check()
    return loaded


def _read_toml(text: str, display: str) -> dict[str, Any]:
    """The manifest's TOML, or a ManifestError saying where it cannot be read."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if m:
            display = f"{display}:{m.group(1)}:{m.group(2)}"
            line = None
        raise ManifestError(f"TOML syntax error: {message}; fix the syntax", file=display, line=line) from exc
    except RecursionError as exc:
        raise ManifestError("arrays or tables are nested too deeply to read; flatten them", file=display) from exc
    except ValueError as exc:  # int() refuses decimal literals of more than 4,300 digits
        m = re.search(r"[0-9][0-9_]{4000,}", text)
        line = text.count("\n", 0, m.start()) + 1 if m else None
        digits = f" of {len(m.group().replace('_', '')):,} digits" if m else ""
        raise ManifestError(f"a number{digits} is too large to read; use a smaller number",
                            file=display, line=line) from exc


def _defaults(loaded: LoadedManifest, problems: Problems, value: Any) -> tuple[AssetSpec | None, dict[str, Any]]:
    """The [defaults] table, validated, and as written (what each asset's table is merged on)."""
    defaults_raw = _table(loaded, problems, value, ("defaults",)) or {}
    defaults = _validate(loaded, problems, AssetSpec, defaults_raw, ("defaults",))
    for key in ("from", "steps"):
        if key in defaults_raw:
            problems.add(loaded.error(f"{key} belongs to one derived asset; set it in its [assets.ID] table",
                                      "defaults", key))
            defaults_raw = {k: v for k, v in defaults_raw.items() if k != key}
    _check_params(loaded, problems, defaults_raw.get("params"), ("defaults", "params"))
    return defaults, defaults_raw


def _providers(loaded: LoadedManifest, problems: Problems, value: Any) -> dict[str, ProviderConfig]:
    providers: dict[str, ProviderConfig] = {}
    for name, table in (_table(loaded, problems, value, ("providers",)) or {}).items():
        config = _validate(loaded, problems, ProviderConfig, table, ("providers", name))
        if config is not None:
            providers[name] = config
    return providers


def _assets(loaded: LoadedManifest, problems: Problems, value: Any,
            defaults_raw: dict[str, Any]) -> dict[str, AssetSpec]:
    assets: dict[str, AssetSpec] = {}
    for asset_id, table in (_table(loaded, problems, value, ("assets",)) or {}).items():
        spec = _asset(loaded, problems, asset_id, table, defaults_raw)
        if spec is not None:
            assets[asset_id] = spec
    return assets


def _asset(loaded: LoadedManifest, problems: Problems, asset_id: str, table: Any,
           defaults_raw: dict[str, Any]) -> AssetSpec | None:
    """One [assets.ID] table merged on [defaults], or None after adding its problems."""
    if not ASSET_ID.match(asset_id):
        problems.add(loaded.error(
            "asset ids use lowercase letters, digits, '-' and '_' (and start with a letter or digit); rename it",
            "assets", asset_id,
        ))
        return None
    table = _table(loaded, problems, table, ("assets", asset_id))
    if table is None:
        return None
    _check_params(loaded, problems, table.get("params"), ("assets", asset_id, "params"))
    merged = {**defaults_raw, **table}
    spec = _validate(loaded, problems, AssetSpec, merged, ("assets", asset_id), own_keys=set(table))
    if spec is None:
        return None
    kind_problems = _kind_problems(spec, set(table)) + _blank_problems(spec)
    for message, key in kind_problems:
        problems.add(loaded.error(message, "assets", asset_id, *key))
    return None if kind_problems else spec


_GENERATED_ONLY = ("references", "count", "candidates", "size", "seed", "watermark", "params", "provider", "model",
                   "batch", "output_format")


def _kind_problems(spec: AssetSpec, own_keys: set[str]) -> list[tuple[str, tuple[str, ...]]]:
    """An asset is generated (``prompt``) or derived (``from`` + ``steps``): exactly one. A
    derived asset takes none of the keys that only describe a generation (from ``[defaults]``
    they are ignored)."""
    if spec.prompt is not None and spec.source is not None:
        return [("an asset is generated (prompt) or derived (from + steps), not both; remove one", ("from",))]
    if spec.prompt is None and spec.source is None:
        if spec.steps:
            return [("steps need from = \"@asset\", the image they start from", ("steps",))]
        return [("an asset needs a prompt (generated) or from + steps (derived); add prompt = \"...\"", ())]
    if spec.prompt is not None and spec.candidates > 1 and spec.count > 1:
        return [(f"candidates = {spec.candidates} keeps one image of several, count = {spec.count} keeps them all; "
                 "use one of the two", ("candidates",) if "candidates" in own_keys else ("count",))]
    if spec.prompt is not None:
        return [("steps apply to a derived asset (from = \"@asset\"); remove them, or replace prompt with from",
                 ("steps",))] if "steps" in own_keys else []
    found = [(f"{key} does not apply to a derived asset (from): its steps make the image from its source; "
              "remove it", (key,)) for key in _GENERATED_ONLY if key in own_keys]
    if not spec.steps:
        found.append(("a derived asset needs steps, e.g. steps = [{ op = \"fit\", size = \"1200x630\" }]",
                      ("steps",) if "steps" in own_keys else ("from",)))
    return found


def _blank_problems(spec: AssetSpec) -> list[tuple[str, tuple[str, ...]]]:
    """Text that must say something and is empty or only whitespace: an error, never a blank
    prompt sent to a host or an empty path read as the project folder."""
    found = []
    if spec.prompt is not None and not spec.prompt.strip():
        found.append(("prompt is empty (or only whitespace); write what to make", ("prompt",)))
    if spec.source is not None and not spec.source.strip():
        found.append(("from is empty; name the image it starts from (\"@asset\" or a file)", ("from",)))
    if any(not ref.strip() for ref in spec.references):
        found.append(("a reference is empty; name an image file or \"@asset\", or remove it", ("references",)))
    if spec.output is not None and not spec.output.strip():
        found.append(("output is empty; name the file (e.g. \"{asset}.png\"), or remove it for the default",
                      ("output",)))
    return found


def _check_cache(loaded: LoadedManifest, problems: Problems, cache: CacheConfig) -> None:
    from ..store.remote import endpoint_problem, url_problem

    if cache.remote is not None and (problem := url_problem(cache.remote)):
        problems.add(loaded.error(f"{clip(cache.remote)} is not a remote cache URL; {problem}", "cache", "remote"))
    if cache.endpoint_url is not None and (problem := endpoint_problem(cache.endpoint_url)):
        problems.add(loaded.error(f"{clip(cache.endpoint_url)} is not an endpoint URL; {problem}",
                                  "cache", "endpoint_url"))


def _table(loaded: LoadedManifest, problems: Problems, value: Any, path: tuple[str, ...]) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        problems.add(loaded.error(f"must be a table, not {_type_name(value)}", *path))
        return None
    return value


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


_UNION_TAG = re.compile(r"^(str|int|float|bool|dict\[.*\]|list\[.*\])$")


def _validate(loaded: LoadedManifest, problems: Problems, model: type[BaseModel], raw: Any,
              path: tuple[str, ...], own_keys: set[str] | None = None) -> Any:
    """The validated model, or None after adding every problem (one per key) to ``problems``."""
    raw = _table(loaded, problems, raw, path)
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # One problem per key: a union reports each member's failure, keep the most specific.
        chosen: dict[str, tuple[tuple[str, ...], Any]] = {}
        for err in exc.errors():
            loc = tuple(str(p) for i, p in enumerate(err["loc"]) if i == 0 or not _UNION_TAG.match(str(p)))
            if loc and (loc[0] not in chosen or len(loc) > len(chosen[loc[0]][0])):
                chosen[loc[0]] = (loc, err)
        for loc, err in chosen.values():
            where = path
            if own_keys is not None and loc[0] not in own_keys:
                where = ("defaults",)  # the offending value came from [defaults]
            if err["type"] == "extra_forbidden":
                keys = [f.alias or name for name, f in model.model_fields.items()]
                message = _unknown(loc[-1], keys, "key") if len(loc) == 1 else f"unknown key {clip(loc[-1])}"
            else:
                message = _reword(err)
            problems.add(loaded.error(message, *where, *loc))
        return None


def _check_params(loaded: LoadedManifest, problems: Problems, value: Any, path: tuple[str, ...]) -> None:
    """``params`` go to a host as JSON: no nan/inf (JSON has none), no absurd nesting."""

    def walk(v: Any, depth: int, where: tuple[str, ...]) -> None:
        if depth > _MAX_PARAMS_DEPTH:
            problems.add(loaded.error(f"nested more than {_MAX_PARAMS_DEPTH} levels deep; flatten it", *where))
        elif isinstance(v, float) and not math.isfinite(v):
            problems.add(loaded.error(f"{v} is not a finite number (hosts take JSON, which has no {v}); "
                                      "use a number", *where))
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(item, depth + 1, (*where, str(k)))
        elif isinstance(v, list):
            for item in v:
                walk(item, depth + 1, where)

    if value is not None:
        walk(value, 0, path)


def _unknown(key: str, known: Any, what: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
    return f"unknown {what} {clip(key)}{hint}"


def _reword(err: dict[str, Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{clip(value)} is not allowed; use {expected}"
    if kind == "finite_number":
        return f"{value} is not a finite number; use a number such as 5.0"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{clip(value)}: {err['msg'].lower()}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{clip(value)} is the wrong type: {err['msg'].lower()}"
    return err["msg"]


def _check_provider_names(loaded: LoadedManifest, problems: Problems) -> None:
    m = loaded.manifest
    known = set(m.providers) | set(BUILT_IN_PROVIDERS)

    def check(name: str | None, *path: str) -> None:
        if name is not None and name not in known:
            problems.add(loaded.error(_unknown(name, sorted(known), "provider") + "; add a [providers.NAME] table",
                                      *path))

    check(m.project.provider, "project", "provider")
    for name, cfg in m.providers.items():
        check(cfg.fallback, "providers", name, "fallback")
        if cfg.fallback == name:
            problems.add(loaded.error("a provider cannot fall back to itself", "providers", name, "fallback"))
            continue
        fallback = m.providers.get(cfg.fallback or "")
        if cfg.fallback == "local" or (fallback is not None and fallback.type == "local"):
            problems.add(loaded.error("the local placeholder renderer cannot stand in for Seedream; "
                                      "fall back to another Seedream host", "providers", name, "fallback"))
    for asset_id, spec in m.assets.items():
        check(spec.provider, "assets", asset_id, "provider")
