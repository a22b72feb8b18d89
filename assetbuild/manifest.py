"""Reading ``assetbuild.toml``: tomllib -> models, with every TOML and pydantic error
reworded as one line naming the file, the line and the key, and what to do."""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ManifestError
from .models import AssetSpec, Manifest, ProjectConfig, ProviderConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ASSET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TOP_LEVEL = {"project": ProjectConfig, "defaults": AssetSpec, "providers": None, "assets": None}


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
        for number, line in enumerate(text.splitlines(), start=1):
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_multiline = not in_multiline
                if not in_multiline:
                    continue
            elif in_multiline:
                continue
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


def _split_dotted(text: str) -> tuple[str, ...]:
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

    def error(self, message: str, *path: str) -> ManifestError:
        """A ManifestError pointing at the line of ``path`` (e.g. "assets", "hero", "size")."""
        return ManifestError(message, file=self.display, line=self.locator.line(tuple(path)), key=_dotted(path))


def _dotted(path: tuple[str, ...] | list[Any]) -> str:
    out = []
    for part in path:
        part = str(part)
        out.append(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"')
    return ".".join(out)


def load_manifest(path: Path) -> LoadedManifest:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"no manifest found; run `assetbuild init` or pass -f", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read the manifest: {exc}", file=str(path)) from exc
    return parse_manifest(text, path)


def parse_manifest(text: str, path: Path) -> LoadedManifest:
    display = path.name
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if m:
            display = f"{display}:{m.group(1)}:{m.group(2)}"
            line = None
        raise ManifestError(f"TOML syntax error: {message}; fix the syntax", file=display, line=line) from exc
    loaded = LoadedManifest(Manifest(), path, path.parent.resolve(), Locator(text), text)

    for key in raw:
        if key not in _TOP_LEVEL:
            raise loaded.error(_unknown(key, _TOP_LEVEL, "table"), key)
    project = _validate(loaded, ProjectConfig, raw.get("project", {}), ("project",))
    defaults_raw = _table(loaded, raw.get("defaults", {}), ("defaults",))
    defaults = _validate(loaded, AssetSpec, defaults_raw, ("defaults",))

    providers: dict[str, ProviderConfig] = {}
    for name, table in _table(loaded, raw.get("providers", {}), ("providers",)).items():
        providers[name] = _validate(loaded, ProviderConfig, table, ("providers", name))

    assets: dict[str, AssetSpec] = {}
    for asset_id, table in _table(loaded, raw.get("assets", {}), ("assets",)).items():
        if not ASSET_ID.match(asset_id):
            raise loaded.error(
                "asset ids use lowercase letters, digits, '-' and '_' (and start with a letter or digit); rename it",
                "assets", asset_id,
            )
        table = _table(loaded, table, ("assets", asset_id))
        merged = {**defaults_raw, **table}
        spec = _validate(loaded, AssetSpec, merged, ("assets", asset_id), own_keys=set(table))
        if spec.prompt is None:
            raise loaded.error("an asset needs a prompt; add prompt = \"...\"", "assets", asset_id)
        assets[asset_id] = spec

    loaded.manifest = Manifest(project=project, defaults=defaults, providers=providers, assets=assets)
    _check_provider_names(loaded)
    return loaded


def _table(loaded: LoadedManifest, value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise loaded.error(f"must be a table, not {type(value).__name__}", *path)
    return value


def _validate(loaded: LoadedManifest, model: type[BaseModel], raw: dict[str, Any], path: tuple[str, ...],
              own_keys: set[str] | None = None) -> Any:
    raw = _table(loaded, raw, path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        where = path
        if own_keys is not None and loc and loc[0] not in own_keys:
            where = ("defaults",)  # the offending value came from [defaults]
        if err["type"] == "extra_forbidden":
            message = _unknown(loc[-1], model.model_fields, "key") if len(loc) == 1 else f"unknown key {loc[-1]!r}"
        else:
            message = _reword(err)
        raise loaded.error(message, *where, *loc) from exc


def _unknown(key: str, known: Any, what: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
    return f"unknown {what} {key!r}{hint}"


def _reword(err: dict[str, Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{value!r} is not allowed; use {expected}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{value!r}: {err['msg'].lower()}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{value!r} is the wrong type: {err['msg'].lower()}"
    return err["msg"]


def _check_provider_names(loaded: LoadedManifest) -> None:
    m = loaded.manifest
    from .providers import PROVIDER_CLASSES

    known = set(m.providers) | set(PROVIDER_CLASSES)

    def check(name: str | None, *path: str) -> None:
        if name is not None and name not in known:
            raise loaded.error(_unknown(name, sorted(known), "provider") + "; add a [providers.NAME] table", *path)

    check(m.project.provider, "project", "provider")
    for name, cfg in m.providers.items():
        check(cfg.fallback, "providers", name, "fallback")
        if cfg.fallback == name:
            raise loaded.error("a provider cannot fall back to itself", "providers", name, "fallback")
        fallback = m.providers.get(cfg.fallback or "")
        if cfg.fallback == "local" or (fallback is not None and fallback.type == "local"):
            raise loaded.error("the local placeholder renderer cannot stand in for Seedream; "
                               "fall back to another Seedream host", "providers", name, "fallback")
    for asset_id, spec in m.assets.items():
        check(spec.provider, "assets", asset_id, "provider")
