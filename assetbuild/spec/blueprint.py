"""The build graph as plain data: every node (manifest order), the build order, and the
project settings and provider tables a build needs.

It is made from the manifest (tomllib -> pydantic models -> expand -> the graph checks in
graph.py), or, when the manifest's bytes and assetbuild's version are those it was made
from, read back from a JSON memo in the cache folder: a no-op build then imports neither
pydantic nor tomllib and validates nothing twice. What the memo cannot know (the files the
manifest names) is checked again with one lstat each; anything off takes the full path, which
reports it the usual way.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError
from ..store.files import read_manifest, write_atomic
from .nodes import Node, Ref, RefSite

MEMO_VERSION = 7  # 2: nodes carry kind and steps (derived assets); 3: the [cache] table; 4: the key on line 1;
#                   5: candidates; 6: batch and output_format; 7: the manifest's tables (an edit re-expands
#                   only the assets it touched)


def _version() -> str:
    from .. import __version__

    return __version__


@dataclass
class Blueprint:
    path: Path  # the manifest
    nodes: dict[str, Node]  # manifest order
    order: tuple[str, ...]  # build order
    settings: dict[str, Any]  # the [project] table, validated, with defaults
    providers: dict[str, dict[str, Any]]  # each [providers.NAME] table as written (validated)
    cache: dict[str, Any] = field(default_factory=dict)  # the [cache] table, validated, with defaults
    _configs: dict[str, Any] = field(default_factory=dict, repr=False)
    _unsaved: tuple[Path, str] | None = field(default=None, repr=False)
    _tables: tuple[str, str] | None = field(default=None, repr=False)  # (salt, manifest text) for the memo

    @property
    def root(self) -> Path:
        return self.path.parent.resolve()

    # -- making one -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, *, memo_dir: Path | None, provider_override: str | None = None) -> "Blueprint":
        data, text = read_manifest(path)
        salt = b"\0".join([_version().encode(), (provider_override or "").encode(), str(MEMO_VERSION).encode()])
        key = hashlib.sha256(b"\0".join([data, salt])).hexdigest()
        memo = None
        blueprint = None
        if memo_dir is not None:
            memo = memo_dir / f"blueprint-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}.json"
            remembered = cls._recall(memo, key, path, text, provider_override, hashlib.sha256(salt).hexdigest())
            if isinstance(remembered, Blueprint):
                return remembered
            blueprint = remembered
        if blueprint is None:
            blueprint = cls.from_manifest(path, text, provider_override)
        if memo is not None:
            blueprint._tables = (hashlib.sha256(salt).hexdigest(), text)
            blueprint._unsaved = (memo, key)  # written by remember(), once the files it names were read
        return blueprint

    def remember(self) -> None:
        """Write the memo of a blueprint made anew, once a plan has read and accepted the files
        the manifest names (a refused reference or ``from`` file writes nothing, issue 17)."""
        if self._unsaved is not None:
            memo, key = self._unsaved
            self._unsaved = None
            self._remember(memo, key)

    @classmethod
    def from_manifest(cls, path: Path, text: str, provider_override: str | None) -> "Blueprint":
        """The full path: parse, validate, expand and check the graph."""
        from .graph import BuildGraph

        loaded, nodes = _expanded(path, text, provider_override)
        graph = BuildGraph(loaded, nodes)
        return cls(path, nodes, tuple(graph.order), *_tables_of(loaded))

    def _remember(self, memo: Path, key: str) -> None:
        """The key on the first line, then the blueprint as JSON: a memo of another manifest is
        told by its first line, without parsing the rest."""
        body = {"order": list(self.order), "settings": self.settings, "providers": self.providers,
                "cache": self.cache, "nodes": [_encode(n) for n in self.nodes.values()]}
        if self._tables is not None:
            body["salt"], body["text"] = self._tables
        try:
            write_atomic(memo, f"{key}\n{json.dumps(body, separators=(',', ':'))}".encode("utf-8"))
        except (OSError, TypeError, ValueError):
            pass  # a memo is an optimisation only

    @classmethod
    def _recall(cls, memo: Path, key: str, path: Path, text: str, provider_override: str | None,
                salt: str) -> "Blueprint | None":
        """The memo's blueprint where the manifest is the one it was made from; else, where
        only some ``[assets.X]`` tables changed, a blueprint re-expanding just those (see
        _retable); None: take the full path."""
        try:
            with open(memo, "rb") as fh:
                same = fh.readline(100).rstrip(b"\n") == key.encode()
                body = json.loads(fh.read())
            if not same and (body.get("salt") != salt or not isinstance(body.get("text"), str)):
                return None
            if not same:
                return cls._retable(path, body["text"], body["nodes"], text, provider_override)
            nodes = {n.id: n for n in (_decode(item) for item in body["nodes"])}
            blueprint = cls(path, nodes, tuple(body["order"]), body["settings"], body["providers"], body["cache"])
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None
        return blueprint if blueprint._files_still_fit() else None

    @classmethod
    def _retable(cls, path: Path, old_text: str, old_items: list[Any], text: str,
                 provider_override: str | None) -> "Blueprint | None":
        """The blueprint of ``text`` where it differs from the memo's manifest ``old_text`` only
        inside ``[assets.X]`` tables, each keeping its header and its number of lines (so every
        other table's line numbers, which references carry, hold). The changed assets and
        every asset downstream of them are expanded again, from the manifest with every other
        asset's table blanked out (their lines kept empty) except the tables upstream of those
        (what a reference resolves against): that is the full path on a few tables. The
        upstream ones must come out as the memo has them, and the graph checks run on all the
        nodes; anything else (a table added, removed or moved, [project], [defaults],
        [providers] or any other table edited, multi-line strings, a problem found) takes the
        full path, which says what is wrong the usual way."""
        old, new = _tables(old_text), _tables(text)
        if old is None or new is None or len(old) != len(new):
            return None
        changed: set[str] = set()
        for (owner, head, lines, body), (owner2, head2, lines2, body2) in zip(old, new):
            if owner != owner2 or head != head2 or lines != lines2:
                return None
            if body != body2:
                if owner is None:
                    return None  # [project], [defaults], [providers], ...: everything may change
                changed.add(owner)
        if not changed:
            return None
        old_nodes = {n.id: n for n in (_decode(item) for item in old_items)}  # (the memo's nodes, once worth it)
        by_asset: dict[str, list[Node]] = {}
        for node in old_nodes.values():
            by_asset.setdefault(node.asset, []).append(node)
        owners = [owner for owner, _, _, _ in new if owner is not None]
        if set(owners) != set(by_asset):
            return None
        owner_of = {nid: n.asset for nid, n in old_nodes.items()}
        downstream: dict[str, set[str]] = {}
        upstream: dict[str, set[str]] = {}
        for node in old_nodes.values():
            for up in node.upstream:
                downstream.setdefault(owner_of[up], set()).add(node.asset)
                upstream.setdefault(node.asset, set()).add(owner_of[up])
        again = _closure(changed, downstream)  # expanded anew
        named = {name for owner, _, _, body in new if owner in changed for name in _NAMED.findall(body)}
        # read to resolve references (the memo's, and any an edited table names now): must match the memo
        kept = _closure(again | (named & set(by_asset)), upstream) - again
        sub = "".join(body if owner is None or owner in again or owner in kept else "\n" * lines
                      for owner, _, lines, body in new)  # every line where it was
        from .graph import BuildGraph

        try:
            loaded, fresh = _expanded(path, sub, provider_override)
            expanded: dict[str, list[Node]] = {}
            for node in fresh.values():
                expanded.setdefault(node.asset, []).append(node)
            if set(expanded) != again | kept or any(expanded[a] != by_asset[a] for a in kept):
                return None
            nodes = {n.id: n for asset in dict.fromkeys(owners)
                     for n in (expanded[asset] if asset in again else by_asset[asset])}
            if len(nodes) > loaded.manifest.limits.max_variants:
                return None
            order = BuildGraph(loaded, nodes).order
        except Exception:  # noqa: BLE001 - an optimisation only: the full path reports any problem
            return None
        blueprint = cls(path, nodes, tuple(order), *_tables_of(loaded))
        return blueprint if blueprint._files_still_fit() else None

    def _files_still_fit(self) -> bool:
        """What loading checked of the file system still holds: every reference is a regular
        file (not a link) and no output folder became a link or a file."""
        root = os.path.join(os.fspath(self.root), "")
        files: set[str] = set()
        folders: set[str] = set()
        for node in self.nodes.values():
            for ref in node.references:
                if ref.path is not None:
                    files.add(ref.path)
            for output in node.outputs:
                folders.add(output.rpartition("/")[0])
        return (all(_is(root + f, stat.S_ISREG) for f in files)
                and all(_is(root + f, stat.S_ISDIR, missing_ok=True) for f in folders))

    # -- reading it -------------------------------------------------------------------------

    def provider_config(self, name: str) -> Any:
        """The validated ProviderConfig of a configured provider, or a built-in type used by
        name with its defaults (pydantic is imported only here, when a provider is needed)."""
        if name not in self._configs:
            from .models import ProviderConfig

            self._configs[name] = ProviderConfig.model_validate(self.providers.get(name) or {"type": name})
        return self._configs[name]

    def fallback_of(self, name: str) -> str | None:
        return (self.providers.get(name) or {}).get("fallback")

    def edges(self) -> list[tuple[str, str]]:
        return sorted((up, n.id) for n in self.nodes.values() for up in n.upstream)

    def match(self, target: str) -> list[str]:
        """Node ids a TARGET names: an asset id, a variant id (or subset, ``sneaker[color=red]``) or a glob."""
        hits = [nid for nid, n in self.nodes.items()
                if nid == target or n.asset == target or fnmatch.fnmatchcase(nid, target)
                or fnmatch.fnmatchcase(n.asset, target)]
        return hits or _variant_subset(self.nodes, target)

    def one(self, target: str, command: str) -> str:
        """The node id ``target`` names for a command that takes one asset (explain, pick,
        adopt); a UsageError naming the command if it names none or several."""
        if target in self.nodes:
            return target
        matches = self.match(target)
        if not matches:
            raise UsageError(f"{command}: no asset matches {target!r}{self.did_you_mean(target)}; "
                             "`assetbuild ls` lists the ids")
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
            raise UsageError(f"{command} takes one asset; {target!r} names {len(matches)} ({shown}): name one")
        return matches[0]

    def did_you_mean(self, target: str) -> str:
        """``" (did you mean X?)"`` naming the asset ids closest to an unknown ``target`` (by
        spelling, or holding it: ``poster`` -> ``event-poster``); "" if none is close."""
        import difflib

        ids = sorted({n.asset for n in self.nodes.values()} | set(self.nodes))
        close = difflib.get_close_matches(target, ids, n=3, cutoff=0.6)
        close += [i for i in ids if target and target in i and i not in close and "[" not in i]
        if not close:
            return ""
        shown = close[:3]
        return f" (did you mean {', '.join(shown[:-1]) + ' or ' if len(shown) > 1 else ''}{shown[-1]}?)"

    def select(self, targets: Iterable[str]) -> list[str]:
        """Node ids for TARGETS and their upstream, in build order (all nodes if none)."""
        targets = list(targets)
        if not targets:
            return list(self.order)
        wanted: set[str] = set()
        for target in targets:
            hits = self.match(target)
            if not hits:
                raise UsageError(f"no asset matches {target!r}{self.did_you_mean(target)}; "
                                 "`assetbuild ls` lists the ids")
            todo = list(hits)
            while todo:
                nid = todo.pop()
                if nid not in wanted:
                    wanted.add(nid)
                    todo.extend(self.nodes[nid].upstream)
        return [nid for nid in self.order if nid in wanted]


def _expanded(path: Path, text: str, provider_override: str | None) -> tuple[Any, dict[str, Node]]:
    """The manifest ``text`` parsed, validated and expanded (a LoadedManifest and its nodes)."""
    from .expand import expand
    from .manifest import parse_manifest
    from .models import BUILT_IN_PROVIDERS

    loaded = parse_manifest(text, path)
    if provider_override is not None and provider_override not in loaded.manifest.providers \
            and provider_override not in BUILT_IN_PROVIDERS:
        raise UsageError(f"--provider {provider_override}: no [providers.{provider_override}] table "
                         f"and no built-in provider of that name")
    return loaded, expand(loaded, provider_override=provider_override)


def _tables_of(loaded: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """The blueprint's settings, provider tables and [cache] table, from a loaded manifest."""
    m = loaded.manifest
    return (m.project.model_dump(), {name: cfg.model_dump(exclude_unset=True) for name, cfg in m.providers.items()},
            m.cache.model_dump())


# A table header line of the manifest as _tables splits it, and the tables it tells apart: an
# asset's (``[assets.X]``, ``[assets.X.params]``, ``[[assets.X.steps]]``) and the others'.
_HEADER = re.compile(r"^[ \t]*\[\[?[ \t]*([A-Za-z0-9_.-]+?)[ \t]*\]\]?[ \t]*(?:#.*)?$")
_ASSET = re.compile(r"^assets\.([a-z0-9][a-z0-9_-]*)(?:\.[A-Za-z0-9_-]+)*$")
_NAMED = re.compile(r"@([a-z0-9][a-z0-9_-]*)")  # what a table may reference (or merely mention)
_BRACKET_LINE = re.compile(r"^[ \t]*\[", re.M)
_OTHER = re.compile(r"^(?:project|defaults|limits|cache|providers\.[A-Za-z0-9_-]+)(?:\.[A-Za-z0-9_-]+)*$")


def _tables(text: str) -> list[tuple[str | None, str, int, str]] | None:
    """The manifest cut before each table header: (the asset the table belongs to, None for
    any other table, the header line, its number of lines, its text), the text before the
    first header (comments and blank lines only) a table of None. None where the text is not
    that plain: a multi-line string (a line in it may look like a header), a line starting
    with ``[`` that is not a plain header (a nested array spread over lines), a quoted or
    dotted-with-spaces header, an ``[assets]`` table, keys before the first header."""
    if '"""' in text or "\'\'\'" in text:
        return None
    starts = [m.start() for m in _BRACKET_LINE.finditer(text)]
    if any(line.strip() and not line.lstrip().startswith("#") for line in text[:starts[0] if starts else None].splitlines()):
        return None  # keys at the top level, before any table
    tables: list[tuple[str | None, str, int, str]] = []
    first = starts[0] if starts else len(text)
    tables.append((None, "", text.count("\n", 0, first), text[:first]))
    for at, end in zip(starts, [*starts[1:], len(text)]):
        body = text[at:end]
        head = body.partition("\n")[0]
        m = _HEADER.match(head.rstrip("\r"))
        if m is None:
            return None
        asset = _ASSET.match(m.group(1))
        if asset is None and not _OTHER.match(m.group(1)):
            return None
        tables.append((asset.group(1) if asset else None, head, body.count("\n"), body))
    return tables


def _closure(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    """``start`` and everything reachable from it along ``edges``."""
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _is(path: str, kind: Any, *, missing_ok: bool = False) -> bool:
    try:
        return bool(kind(os.lstat(path).st_mode))
    except FileNotFoundError:
        return missing_ok
    except OSError:
        return False


def _variant_subset(nodes: dict[str, Node], target: str) -> list[str]:
    """``sneaker[color=red]`` names every variant of sneaker with color=red."""
    if not target.endswith("]") or "[" not in target:
        return []
    asset, _, sel = target[:-1].partition("[")
    pairs = dict(p.split("=", 1) for p in sel.split(",") if "=" in p)
    return [nid for nid, n in nodes.items()
            if n.asset == asset and all(dict(n.variant).get(k.strip()) == v.strip() for k, v in pairs.items())]


def _encode(node: Node) -> list[Any]:
    return [node.id, node.asset, [list(kv) for kv in node.variant], node.prompt, node.provider, node.provider_type,
            node.model, node.size, node.width, node.height, node.count, node.seed, node.watermark, dict(node.params),
            [[r.label, r.path, r.node, r.index, list(r.paths),
              None if r.site is None else [r.site.file, r.site.line, r.site.key, r.site.max_pixels]]
             for r in node.references], list(node.outputs), node.kind, [dict(s) for s in node.steps], node.candidates,
            node.batch, node.output_format]


_new = object.__new__
_set = object.__setattr__


def _frozen(cls: type, fields: dict[str, Any]) -> Any:
    """An instance of the frozen dataclass ``cls`` holding ``fields`` (every field, by name),
    made without its ``__init__``, which sets each field with its own ``object.__setattr__``:
    reading 10,000 nodes back, that is most of the time. What the memo holds is what that
    ``__init__`` was given before."""
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    return obj


def _decode(item: list[Any]) -> Node:
    (nid, asset, variant, prompt, provider, ptype, model, size, width, height, count, seed, watermark, params,
     refs, outputs, kind, steps, candidates, batch, output_format) = item
    references = tuple([
        _frozen(Ref, {"label": label, "path": path, "node": node, "index": index, "paths": tuple(paths),
                      "site": None if site is None else _frozen(RefSite, dict(zip(_SITE_FIELDS, site)))})
        for label, path, node, index, paths, site in refs])
    return _frozen(Node, {
        "id": nid, "asset": asset, "variant": tuple([(k, v) for k, v in variant]), "prompt": prompt,
        "provider": provider, "provider_type": ptype, "model": model, "size": size, "width": width, "height": height,
        "count": count, "seed": seed, "watermark": watermark, "params": params, "references": references,
        "outputs": tuple(outputs), "kind": kind, "steps": tuple(steps),
        "candidates": candidates, "batch": batch, "output_format": output_format})


_SITE_FIELDS = ("file", "line", "key", "max_pixels")
