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

import bisect
import fnmatch
import hashlib
import json
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import UsageError
from ..store.files import read_manifest, write_atomic
from .nodes import Node, Ref, RefSite

REWRITE_AFTER = 100  # nodes a prompt edit changed, past which the memo is written anew for the edited manifest
MEMO_VERSION = 11  # 2: nodes carry kind and steps (derived assets); 3: the [cache] table; 4: the key on line 1;
#                   5: candidates; 6: batch and output_format; 7: the manifest's tables (an edit re-expands
#                   only the assets it touched); 8: the tables' layout (a prompt edit takes the memo's nodes);
#                   9: one row per node, decoded when asked for, with each node's upstream and the files checked;
#                   10: the manifest's text after the rows, as it is; 11: a CRC-32 of the rows and text


def _version() -> str:
    from .. import __version__

    return __version__


@dataclass
class Blueprint:
    path: Path  # the manifest
    nodes: Mapping[str, Node]  # manifest order (a dict, or the memo's Nodes, decoded when asked for)
    order: tuple[str, ...]  # build order
    settings: dict[str, Any]  # the [project] table, validated, with defaults
    providers: dict[str, dict[str, Any]]  # each [providers.NAME] table as written (validated)
    cache: dict[str, Any] = field(default_factory=dict)  # the [cache] table, validated, with defaults
    _configs: dict[str, Any] = field(default_factory=dict, repr=False)
    _unsaved: tuple[Path, str] | None = field(default=None, repr=False)
    _tables: tuple[str, str] | None = field(default=None, repr=False)  # (salt, manifest text) for the memo
    # The memo's header (layout, files, folders, upstream) where it still holds: written back
    # with each node's row as the memo had it (Nodes.row) but the changed ones
    _header: dict[str, Any] | None = field(default=None, repr=False)
    # (the key of the memo this blueprint was made from, the nodes it made anew or changed,
    # each with the digest of its record): a plan takes the nodes it did not touch as the
    # memo's (run/stamp.UpToDate). None: made from the manifest alone.
    changed_from: tuple[str, dict[str, str]] | None = field(default=None, repr=False)  # id -> row_digest
    key: str | None = field(default=None, repr=False)  # the memo key of this manifest (None: no memo folder)
    # How it was made: "manifest" (the full path), "memo" (the memo's own manifest), "prompts"
    # (the memo's nodes, some prompts filled in anew) or "tables" (some asset tables expanded again)
    made_by: str = field(default="manifest", repr=False)
    # The memo key of a manifest whose nodes have the same ids, outputs and references as
    # these (the memo's own, or the one a prompt edit was made from); None: not known
    files_from: str | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent.resolve()

    # -- making one -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, *, memo_dir: Path | None, provider_override: str | None = None,
             rewrite_after: int = REWRITE_AFTER) -> "Blueprint":
        """The blueprint of the manifest at ``path``: the memo's in ``memo_dir`` where it holds
        (see _recall), else made anew. After a prompt edit of more than ``rewrite_after``
        nodes, the memo is written anew for the edited manifest."""
        data, text = read_manifest(path)
        salt = b"\0".join([_version().encode(), (provider_override or "").encode(), str(MEMO_VERSION).encode()])
        key = hashlib.sha256(b"\0".join([data, salt])).hexdigest()
        memo = None
        blueprint = None
        if memo_dir is not None:
            memo = memo_dir / f"blueprint-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}.json"
            blueprint = cls._recall(memo, key, path, text, provider_override, hashlib.sha256(salt).hexdigest())
            if blueprint is not None and blueprint.changed_from is not None and blueprint.changed_from[0] == key:
                blueprint.key = key
                return blueprint  # the memo's own manifest
        if blueprint is None:
            blueprint = cls.from_manifest(path, text, provider_override)
        if memo is not None:
            blueprint.key = key
            blueprint._tables = (hashlib.sha256(salt).hexdigest(), text)
            if blueprint.files_from is None:
                blueprint.files_from = key  # its nodes are this manifest's
            if blueprint.made_by != "prompts" or len(blueprint.changed_from[1]) > rewrite_after:  # type: ignore[index]
                blueprint._unsaved = (memo, key)  # written by remember(), once the files it names were read
            # else a few prompts changed: the memo stays the manifest's it was made from, and the
            # next load fills those prompts in again (about 20 ms at 10,000 assets), which costs
            # less than writing the memo anew (about 50 ms)
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
        """Line 1: the key (a memo of another manifest is told by it, without reading on);
        line 2: the header (order, tables, the manifest's layout, each node's id and upstream,
        the reference files and output folders _files_still_fit checks); then one JSON row per
        node, so a node is decoded only when asked for (:class:`Nodes`); then the manifest's
        text as it is (read only to compare an edited manifest with it)."""
        ids = list(self.nodes)
        if self._header is not None:
            header = dict(self._header)
        else:
            files, folders = _files_and_folders(self.nodes.values())
            header = {"upstream": {nid: list(n.upstream) for nid, n in self.nodes.items() if n.upstream},
                      "files": files, "folders": folders}
            if self._tables is not None:
                header["layout"] = _layout(self._tables[1])
        header.update(order=list(self.order), settings=self.settings, providers=self.providers, cache=self.cache,
                      ids=ids)
        header.pop("text", None)
        text = b""
        if self._tables is not None:
            header["salt"] = self._tables[0]
            text = self._tables[1].encode("utf-8")
        nodes = self.nodes
        row = nodes.row if isinstance(nodes, Nodes) else (lambda nid: None)
        try:
            rows = [row(nid) or json.dumps(_encode(nodes[nid]), separators=(",", ":")).encode("utf-8") for nid in ids]
            body = b"\n".join([*rows, text])
            header["crc32"] = zlib.crc32(body)  # rows are decoded later, one by one: a damaged memo is told at once
            write_atomic(memo, b"\n".join([key.encode("ascii"), json.dumps(header, separators=(",", ":")).encode("utf-8"),
                                           body]))
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
                first = fh.readline(100).rstrip(b"\n").decode("ascii")
                header = json.loads(fh.readline())
                ids = header["ids"]
                body = fh.read()
            if not isinstance(ids, list) or zlib.crc32(body) != header["crc32"]:
                return None
            rows = body.split(b"\n", len(ids))
            if len(rows) != len(ids) + 1:
                return None
            nodes = Nodes(dict(zip(ids, rows)), header["upstream"])
            if first != key:
                if header.get("salt") != salt:
                    return None
                header["text"] = rows[-1].decode("utf-8")
                blueprint = cls._retable(path, header, nodes, text, provider_override)
                if blueprint is None:
                    return None
                blueprint.changed_from = (first, blueprint.changed_from[1] if blueprint.changed_from else {})
                if blueprint.made_by == "prompts":  # only prompts changed: the memo's nodes' files
                    blueprint.files_from = first
                return blueprint
            blueprint = cls(path, nodes, tuple(header["order"]), header["settings"], header["providers"],
                            header["cache"], _header=header, changed_from=(key, {}), files_from=key,
                            made_by="memo")
            return blueprint if _files_still_fit(blueprint.root, header["files"], header["folders"]) else None
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None

    @classmethod
    def _retable(cls, path: Path, memo: dict[str, Any], nodes: "Nodes", text: str,
                 provider_override: str | None) -> "Blueprint | None":
        """The blueprint of ``text`` where it differs from the memo's manifest only inside
        ``[assets.X]`` tables, each keeping its header and its number of lines (so every
        other table's line numbers, which references carry, hold); None: take the full path.

        An edit that changes only prompts (the same keys, every other value the same) takes
        the memo's nodes of those assets with the new prompt filled in (:func:`_prompt_edit`):
        nothing else of a node, and no other node, depends on a prompt's text. Any other edit
        expands the changed assets and every asset downstream of them again, from the
        manifest with every other asset's table blanked out (their lines kept empty) except
        the tables upstream of those (what a reference resolves against): that is the full
        path on a few tables. The upstream ones must come out as the memo has them, and the
        graph checks run on all the nodes; anything else (a table added, removed or moved,
        [project], [defaults], [providers] or any other table edited, multi-line strings, a
        problem found) takes the full path, which says what is wrong the usual way."""
        old_text = memo["text"]
        layout = memo.get("layout")
        edit = _edit(old_text, text, layout) if layout is not None else None
        if edit is not None:
            prompts = _prompt_edit(layout, *edit)
            if prompts is not None:
                return cls._with_prompts(path, memo, nodes, prompts)
        return cls._reexpanded(path, old_text, list(nodes.values()), text, provider_override)

    @classmethod
    def _with_prompts(cls, path: Path, memo: dict[str, Any], nodes: "Nodes",
                      prompts: dict[str, tuple[str, str]]) -> "Blueprint | None":
        """The memo's blueprint with each asset of ``prompts`` (asset -> (old prompt, new
        prompt)) holding the new prompt; None where the memo's nodes of those assets are not
        the old prompt filled in, or the new one cannot be filled in (the full path says why).
        Only those assets' nodes are decoded (a node's id is its asset's, or ``asset[...]``)."""
        from .templates import render

        changed: dict[str, str] = {}
        for nid in nodes:
            asset = nid.partition("[")[0]
            if asset not in prompts:
                continue
            node = nodes[nid]
            old, new = prompts[asset]
            values = dict(node.variant)
            try:
                if node.asset != asset or node.kind != "generate" or render(old, values) != node.prompt:
                    return None
                edited = _frozen(Node, dict(node.__dict__, prompt=render(new, values)))
            except (ValueError, KeyError):
                return None
            nodes.replace(edited)
            changed[nid] = row_digest(edited)
        if not changed:
            return None
        blueprint = cls(path, nodes, tuple(memo["order"]), memo["settings"], memo["providers"], memo["cache"],
                        _header=memo, changed_from=("", changed), made_by="prompts")
        return blueprint if _files_still_fit(blueprint.root, memo["files"], memo["folders"]) else None

    @classmethod
    def _reexpanded(cls, path: Path, old_text: str, old_list: list[Node], text: str,
                    provider_override: str | None) -> "Blueprint | None":
        """_retable for any edit inside asset tables: the changed assets and their dependents
        expanded again (see there)."""
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
        old_nodes = {n.id: n for n in old_list}  # (the memo's nodes, once worth it)
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
        changed_ids = {nid: row_digest(node) for nid, node in nodes.items() if old_nodes.get(nid) != node}
        blueprint = cls(path, nodes, tuple(order), *_tables_of(loaded), changed_from=("", changed_ids),
                        made_by="tables")
        return blueprint if blueprint._files_still_fit() else None

    def upstream(self, nid: str) -> Sequence[str]:
        """The ids of the nodes ``nid`` reads (Node.upstream), without decoding it from the memo."""
        nodes = self.nodes
        return nodes.upstream(nid) if isinstance(nodes, Nodes) else nodes[nid].upstream

    def _files_still_fit(self) -> bool:
        """What loading checked of the file system still holds (see :func:`_files_still_fit`)."""
        return _files_still_fit(self.root, *_files_and_folders(self.nodes.values()))

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


def _files_and_folders(nodes: Iterable[Node]) -> tuple[list[str], list[str]]:
    """The reference files and the output folders of ``nodes`` (what _files_still_fit checks)."""
    files: dict[str, None] = {}
    folders: dict[str, None] = {}
    for node in nodes:
        files.update(dict.fromkeys(r.path for r in node.references if r.path is not None))
        folders.update(dict.fromkeys(o.rpartition("/")[0] for o in node.outputs))
    return list(files), list(folders)


def _files_still_fit(root_path: Path, files: list[str], folders: list[str]) -> bool:
    """Every reference file is still a regular file (not a link) and no output folder became
    a link or a file."""
    root = os.path.join(os.fspath(root_path), "")
    return (all(_is(root + f, stat.S_ISREG) for f in files)
            and all(_is(root + f, stat.S_ISDIR, missing_ok=True) for f in folders))


class Nodes(Mapping[str, Node]):
    """A blueprint's nodes by id, in manifest order, read from the memo: each is decoded from
    its row when first asked for (a plan that takes most nodes as up to date, run/stamp.UpToDate,
    decodes the few it decides), and its upstream ids are known without decoding it."""

    __slots__ = ("_raw", "_decoded", "_upstream", "_replaced")

    def __init__(self, rows: dict[str, bytes], upstream: dict[str, list[str]]):
        self._raw = rows  # id -> its memo row
        self._decoded: dict[str, Node] = {}
        self._upstream = upstream  # id -> the ids it reads (only nodes that read one)
        self._replaced: set[str] = set()

    def __getitem__(self, nid: str) -> Node:
        node = self._decoded.get(nid)
        if node is None:
            node = self._decoded[nid] = _decode(json.loads(self._raw[nid]))
        return node

    def __contains__(self, nid: object) -> bool:
        return nid in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"Nodes({len(self._raw)})"

    def upstream(self, nid: str) -> Sequence[str]:
        """Node.upstream of ``nid`` from the memo's header (a node replaced keeps its upstream)."""
        found = self._upstream.get(nid)
        if found is None:
            if nid not in self._raw:
                raise KeyError(nid)
            return ()
        return found

    def row(self, nid: str) -> bytes | None:
        """The node's memo row, unless it was replaced."""
        return None if nid in self._replaced else self._raw[nid]

    def replace(self, node: Node) -> None:
        """``node`` instead of the memo's node of its id (the same upstream and files)."""
        self._decoded[node.id] = node
        self._replaced.add(node.id)


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


def _layout(text: str) -> list[list[Any]] | None:
    """Where each table of ``text`` starts (its first line, from 0), the asset it belongs to
    (None: another table, or the comments before the first) and its header's key, as the
    memo keeps them; None where _tables cannot cut the text plainly."""
    tables = _tables(text)
    if tables is None:
        return None
    layout: list[list[Any]] = []
    line = 0
    for owner, head, lines, _ in tables:
        m = _HEADER.match(head.rstrip("\r"))
        layout.append([line, owner, m.group(1) if m else ""])
        line += lines
    return layout


def _edit(old_text: str, text: str, layout: list[list[Any]]) -> tuple[list[str], list[str], list[int]] | None:
    """(the old text's lines, the new text's, the tables of ``layout`` whose lines differ)
    where ``text`` keeps every line that starts a table, and its number of lines, so the old
    text's layout is the new one's; None otherwise, or where no table changed."""
    if '"""' in text or "'''" in text:
        return None
    old_lines, new_lines = old_text.split("\n"), text.split("\n")
    if len(old_lines) != len(new_lines):
        return None
    starts = [start for start, _, _ in layout]
    touched: dict[int, None] = {}
    for i, a, b in zip(range(len(new_lines)), old_lines, new_lines):
        if a != b:
            if a.lstrip().startswith("[") or b.lstrip().startswith("["):
                return None  # a header (or a line that may read as one) moved or changed
            touched[bisect.bisect_right(starts, i) - 1] = None
    return (old_lines, new_lines, list(touched)) if touched else None


def _prompt_edit(layout: list[list[Any]], old_lines: list[str], new_lines: list[str],
                 touched: list[int]) -> dict[str, tuple[str, str]] | None:
    """Asset -> (old prompt, new prompt) where each touched table is an ``[assets.X]`` table
    that, read on its own, holds the same keys as before with the same values but for
    ``prompt``, a string before and after, and not blank after; else None."""
    try:
        import tomli as toml  # as manifest.py reads the manifest
    except ImportError:  # pragma: no cover
        import tomllib as toml  # type: ignore[no-redef]

    prompts: dict[str, tuple[str, str]] = {}
    for t in touched:
        start, owner, key = layout[t]
        if owner is None or key != f"assets.{owner}":
            return None  # not an asset's own table ([assets.X.params], [[assets.X.steps]], ...)
        end = layout[t + 1][0] if t + 1 < len(layout) else len(new_lines)
        try:
            old = toml.loads("\n".join(old_lines[start:end]))["assets"][owner]
            new = toml.loads("\n".join(new_lines[start:end]))["assets"][owner]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(old, dict) or not isinstance(new, dict) or list(old) != list(new):
            return None
        before, after = old.get("prompt"), new.get("prompt")
        if not isinstance(before, str) or not isinstance(after, str) or not after.strip():
            return None
        if any(repr(old[k]) != repr(new[k]) for k in new if k != "prompt"):  # repr: 1 and 1.0 differ
            return None
        prompts[owner] = (before, after)
    return prompts


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


def row_digest(node: Node) -> str:
    """A digest of everything the memo keeps of ``node``: two nodes with the same digest are
    the same (run/stamp.UpToDate compares the nodes two manifests changed from one memo)."""
    return hashlib.sha256(json.dumps(_encode(node), separators=(",", ":")).encode("utf-8")).hexdigest()[:32]


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
