"""The HTML review page (``assetbuild report``): one self-contained file that opens offline.

What a person reviewing a kit wants on one page: a summary (assets, images, up to date /
stale, money spent per provider), then per asset its images as thumbnails linking to the
full files, its candidates with the pick marked, what made it (prompt or steps, size,
model, provider, cost, date), its references, its status with the planner's reasons, and
its lineage. With ``since`` (a git revision, by default HEAD) the page opens with what
changed since that commit, the old image beside the new one, read from git's copy of the
lock and of the outputs: what a reviewer looks at in a pull request.

Thumbnails are small WebP data URIs made with Pillow (``loading="lazy"``), so the page
stays light for a kit of hundreds of images and needs nothing but itself; every link is
relative to the page (to the full output files and to other assets' anchors). The page has
no script and no external URL.
"""

from __future__ import annotations

import base64
import html
import hashlib
import io
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

from ..errors import LockfileError, UsageError, UserError
from ..money import usd
from ..store.files import write_atomic
from ..store.hashing import sha256_bytes
from ..store.gitlocks import Git
from ..store.lockfile import LockEntry, entries_from_bytes
from ..plan.planner import Action, Decision, changes
from ..plan.reasons import Reason, prompt_change
from ..plan.wordiff import word_diff

if TYPE_CHECKING:  # pragma: no cover
    from .workspace import Workspace


REPORT_NAME = "assetbuild-report.html"
THUMB_PX = 160  # the longest side of an asset's thumbnail
SMALL_PX = 64  # a reference's or a candidate's thumbnail
WEBP_QUALITY = 72
WEBP_URI = "data:image/webp;base64,"
MEMO_VERSION = 1


# -- thumbnails -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Thumb:
    uri: str  # data:image/webp;base64,...
    width: int
    height: int


class Thumbs:
    """WebP thumbnails as data URIs, made once per image content (its sha256), both sizes
    from one decode, and remembered between reports in one memo file per project in the
    cache folder (rewritten with only what the last report used, so it stays the size of
    the project)."""

    SIZES = (THUMB_PX, SMALL_PX)

    def __init__(self, memo: Path | None = None):
        self.memo = memo
        self._made: dict[str, dict[int, Thumb] | None] = {}
        self._used: set[str] = set()
        self._remembered: dict[str, Any] = {}
        self._mutex = threading.Lock()
        if memo is not None:
            try:
                loaded = json.loads(memo.read_text(encoding="utf-8"))
                if isinstance(loaded, dict) and loaded.get("version") == MEMO_VERSION:
                    self._remembered = loaded.get("thumbs") or {}
            except (OSError, ValueError):
                pass

    def of(self, sha: str | None, data: Callable[[], bytes | None], px: int) -> Thumb | None:
        """The ``px`` thumbnail of the image whose sha256 is ``sha`` (``data`` reads its bytes,
        called only when neither this report nor the memo has made it yet); None if there is
        no such image or Pillow cannot read it."""
        if sha is None:
            return None
        made = self._get(sha, data)
        return None if made is None else made.get(px)

    def _get(self, sha: str, data: Callable[[], bytes | None]) -> dict[int, Thumb] | None:
        with self._mutex:
            self._used.add(sha)
            if sha in self._made:
                return self._made[sha]
            remembered = self._remembered.get(sha)
        made = _recall(remembered)
        if made is None:
            raw = data()
            if raw is None:
                return None
            made = _thumbnails(raw, self.SIZES)
        with self._mutex:
            self._made[sha] = made
        return made

    def prefetch(self, items: Iterable[tuple[str, Callable[[], bytes | None]]], jobs: int) -> None:
        """Make many at once (Pillow decodes and encodes outside the GIL)."""
        todo = {sha: read for sha, read in items if sha is not None and sha not in self._made}
        if len(todo) < 8 or jobs < 2:
            for sha, read in todo.items():
                self._get(sha, read)
            return
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda item: self._get(*item), todo.items()))

    def save(self) -> None:
        if self.memo is None:
            return
        body = {sha: [[px, t.uri, t.width, t.height] for px, t in made.items()]
                for sha, made in self._made.items() if made is not None and sha in self._used}
        try:
            write_atomic(self.memo, json.dumps({"version": MEMO_VERSION, "thumbs": body},
                                               separators=(",", ":")).encode("utf-8"))
        except (OSError, ValueError):
            pass  # a memo is an optimisation only


def _recall(item: Any) -> dict[int, Thumb] | None:
    try:
        made = {int(px): Thumb(str(uri), int(w), int(h)) for px, uri, w, h in item}
    except (TypeError, ValueError):
        return None
    return made if set(made) == set(Thumbs.SIZES) and all(t.uri.startswith(WEBP_URI) for t in made.values()) \
        else None


def _thumbnails(data: bytes, sizes: Sequence[int]) -> dict[int, Thumb] | None:
    """One decode of ``data``, reduced to each of ``sizes`` (largest first, each made from
    the one before), as WebP data URIs."""
    from PIL import Image, UnidentifiedImageError

    made: dict[int, Thumb] = {}
    try:
        with Image.open(io.BytesIO(data)) as im:
            big = max(sizes)
            im.draft("RGB", (big * 2, big * 2))  # JPEG: decode at a fraction of the size
            im = im.convert("RGBA" if _has_alpha(im) else "RGB")
            for px in sorted(sizes, reverse=True):
                im.thumbnail((px, px), Image.Resampling.BICUBIC, reducing_gap=2.0)
                out = io.BytesIO()
                im.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
                made[px] = Thumb(WEBP_URI + base64.b64encode(out.getvalue()).decode("ascii"), *im.size)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return made


def _thumbnail(data: bytes, px: int) -> Thumb | None:
    """One thumbnail of ``data`` (the tests compare against it)."""
    made = _thumbnails(data, (px,))
    return None if made is None else made[px]


def _has_alpha(im: Any) -> bool:
    return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


# -- git --------------------------------------------------------------------------------------

class GitRevision:
    """Files as the commit ``rev`` names had them (``git show REV:./path``), read from the
    project folder through store/gitlocks.Git (the one git wrapper), each file once. A git
    that cannot be run reads as files the commit does not have: the page never fails on it."""

    def __init__(self, folder: Path, rev: str):
        self.git = Git(folder, "report")
        self.rev = rev
        self.commit = ""
        self._shown: dict[str, bytes | None] = {}

    def resolve(self) -> str | None:
        """Find the commit ``rev`` names; else why there is none (not a repository, no
        commits, no such revision)."""
        commit, note = self.git.commit_of(self.rev)
        self.commit = commit or ""
        return note

    def show(self, path: str) -> bytes | None:
        """The bytes ``path`` (relative to the project folder) had at the commit, or None."""
        if path not in self._shown:
            self.show_many([path])
        return self._shown.get(path)

    def tracks(self, path: str) -> bool:
        """Whether git tracks ``path`` now (in its index), committed or only added."""
        return self.git.tracks(path)

    def show_many(self, paths: Iterable[str]) -> None:
        """Read many files of the commit with one ``git cat-file --batch``."""
        paths = [p for p in dict.fromkeys(paths) if p not in self._shown]
        try:
            self._shown.update(self.git.show_many(self.commit, paths))
        except UsageError:
            self._shown.update({p: None for p in paths})


# -- what the page shows ----------------------------------------------------------------------

def diff_html(old: str, new: str) -> str:
    """A prompt's word diff, old -> new: removed words in <del>, added ones in <ins>."""
    tags = {"=": "{}", "-": "<del>{}</del>", "+": "<ins>{}</ins>"}
    return '<span class="diff">' + "".join(tags[p.op].format(_e(p.text)) for p in word_diff(old, new)) + "</span>"


@dataclass
class Change:
    """An asset that differs from the commit ``since`` names."""

    asset: str
    kind: str  # "new" | "removed" | "changed"
    reasons: list[str]
    old: LockEntry | None
    new: LockEntry | None
    old_shas: list[str] = field(default_factory=list)  # old outputs' sha256, as the old lock says
    prompt: tuple[str, str] | None = None  # (old, new) where the prompt changed since


@dataclass
class ReportResult:
    path: Path
    size_bytes: int
    assets: int
    images: int
    up_to_date: int
    stale: int
    changes: list[Change] | None  # None: no comparison (see ``since_note``)
    since: str | None  # the revision compared with, as given
    since_note: str | None  # why there is no comparison


def candidates_of(entry: LockEntry | None) -> tuple[list[str], int | None, str | None]:
    """(candidate sha256s, the 1-based pick, the adopted sha256) of one asset's lock entry;
    empty when it has none."""
    if entry is None:
        return [], None, None
    shas = list(entry.candidate_images)
    pick = entry.pick if entry.pick is not None and 1 <= entry.pick <= max(len(shas), 1) else None
    return shas, pick, entry.adopted or None


def _read_old_lock(git: GitRevision, lock_name: str) -> dict[str, LockEntry]:
    """The lock as the commit had it, read as the lock file would be (store/lockfile)."""
    data = git.show(lock_name)
    if data is None:
        return {}  # the commit had no lock: everything is new
    try:
        return entries_from_bytes(data, Path(lock_name))
    except LockfileError as exc:
        raise UserError(f"--since {git.rev}: {exc}") from exc


class Page:
    """Builds the HTML of one report."""

    def __init__(self, project: "Workspace", out: Path, decisions: Sequence[Decision]):
        self.project = project
        self.root = project.root
        self.out_dir = out.parent
        self.nodes = project.nodes
        self.order = [nid for nid in project.blueprint.order]
        self.decisions = {d.id: d for d in decisions}
        self.lock = project.lock.entries
        key = hashlib.sha256(str(self.root).encode("utf-8")).hexdigest()[:16]
        self.thumbs = Thumbs(project.cache.dir / f"report-thumbs-{key}.json")
        self.anchors = _anchors(list(self.nodes) + sorted(set(self.lock) - set(self.nodes)))
        self.read_by: dict[str, list[str]] = {}
        for nid in self.order:
            for up in self.nodes[nid].upstream:
                self.read_by.setdefault(up, []).append(nid)
        self.parts: list[str] = []

    # -- small pieces ---------------------------------------------------------------------

    def href(self, rel: str) -> str:
        """A link from the page to a file of the project (relative, URL-quoted)."""
        target = os.path.relpath(self.root / rel, self.out_dir)
        return quote(Path(target).as_posix())

    def file_bytes(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except OSError:
            return None

    def file_thumb(self, rel: str, px: int) -> Thumb | None:
        return self.thumbs.of(self.project.hasher.hash(rel), lambda: self.file_bytes(rel), px)

    def prefetch(self) -> None:
        """Every thumbnail of the outputs and reference files, made in parallel."""
        paths = [p for n in self.nodes.values() for p in n.outputs]
        paths += [r.path for n in self.nodes.values() for r in n.references if r.path]
        items = [(self.project.hasher.hash(p), (lambda p=p: self.file_bytes(p))) for p in dict.fromkeys(paths)]
        self.thumbs.prefetch([(sha, read) for sha, read in items if sha is not None], os.cpu_count() or 1)

    def img(self, thumb: Thumb | None, alt: str, missing: str, css: str = "thumb") -> str:
        if thumb is None:
            return f'<span class="{css} placeholder" role="img" aria-label="{_e(alt)}">{_e(missing)}</span>'
        return (f'<img class="{css}" src="{thumb.uri}" width="{thumb.width}" height="{thumb.height}" '
                f'alt="{_e(alt)}" loading="lazy" decoding="async">')

    def output_figure(self, rel: str, caption: str | None = None) -> str:
        exists = self.project.hasher.hash(rel) is not None
        thumb = self.file_thumb(rel, THUMB_PX)
        why = "output missing"
        if exists and thumb is None:
            head = (self.file_bytes(rel) or b"")[:64]
            why = ("a Git LFS pointer: run git lfs pull" if head.startswith(b"version https://git-lfs")
                   else "not an image this page can show")
        image = self.img(thumb, rel, why)
        if exists:
            image = f'<a href="{self.href(rel)}">{image}</a>'
        return f'<figure>{image}<figcaption>{_e(caption or rel)}</figcaption></figure>'

    def blob_figure(self, sha: str, data: bytes | None, caption: str, css: str = "thumb",
                    missing: str = "not in the local cache", px: int = THUMB_PX, extra: str = "") -> str:
        thumb = self.thumbs.of(sha if data is not None else None, lambda: data, px)
        return (f'<figure class="{extra}">{self.img(thumb, caption, missing if data is None else "not an image", css)}'
                f'<figcaption>{_e(caption)}</figcaption></figure>')

    def asset_link(self, nid: str) -> str:
        return f'<a href="#{self.anchors.get(nid, "")}">{_e(nid)}</a>'

    # -- the page -------------------------------------------------------------------------

    def render(self, changes_: list[Change] | None, since: str | None, since_note: str | None,
               git: GitRevision | None) -> str:
        name = self.project.blueprint.settings.get("name") or self.root.name
        body = [f"<h1>{_e(name)} <small>assetbuild report</small></h1>", self.summary()]
        if changes_ is not None:
            body.append(self.changes(changes_, since or "", git))
        elif since_note:
            body.append(f'<p class="note">No comparison with a commit: {_e(since_note)}.</p>')
        body.append(self.index())
        body += [self.asset(nid) for nid in self.order]
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{_e(name)}: assetbuild report</title><style>{CSS}</style></head>\n<body>\n"
                + "\n".join(body) + "\n</body></html>\n")

    def summary(self) -> str:
        outputs = sum(len(n.outputs) for n in self.nodes.values())
        stale = sum(1 for d in self.decisions.values() if d.action is not Action.UP_TO_DATE)
        total = sum(e.cost_usd for e in self.lock.values())
        per: dict[str, float] = {}
        for e in self.lock.values():
            key = e.provider or "derived"
            per[key] = per.get(key, 0.0) + e.cost_usd
        rows = "".join(f"<tr><td>{_e(p)}</td><td>{usd(c)}</td></tr>" for p, c in sorted(per.items()))
        return (f'<section id="summary"><dl class="counts">'
                f'<div><dt>assets</dt><dd>{len(self.nodes)}</dd></div>'
                f'<div><dt>images</dt><dd>{outputs}</dd></div>'
                f'<div><dt>up to date</dt><dd>{len(self.decisions) - stale}</dd></div>'
                f'<div class="{"bad" if stale else ""}"><dt>stale</dt><dd id="stale-count">{stale}</dd></div>'
                f'<div><dt>cost so far</dt><dd id="total-cost">{usd(total)}</dd></div></dl>'
                f'<table class="providers"><thead><tr><th>provider</th><th>cost so far</th></tr></thead>'
                f'<tbody>{rows}</tbody></table></section>')

    def index(self) -> str:
        items = []
        for nid in self.order:
            d = self.decisions.get(nid)
            ok = d is not None and d.action is Action.UP_TO_DATE
            items.append(f'<li class="{"ok" if ok else "stale"}">{self.asset_link(nid)}</li>')
        return f'<nav id="index"><h2>Assets</h2><ul>{"".join(items)}</ul></nav>'

    def changes(self, found: list[Change], since: str, git: GitRevision | None) -> str:
        short = git.commit[:10] if git else ""
        head = f'<h2>Changes since {_e(since)} <small>{_e(short)}</small></h2>'
        if not found:
            return f'<section id="changes">{head}<p>No asset changed.</p></section>'
        if git is not None:
            git.show_many(o.path for ch in found if ch.old for o in ch.old.outputs)
        cards = []
        for ch in found:
            old = "".join(self.old_figure(git, o.path, o.sha256) for o in (ch.old.outputs if ch.old else ()))
            if ch.kind == "removed":
                new = '<p class="placeholder">removed</p>'
            elif ch.asset in self.nodes:
                new = "".join(self.output_figure(p) for p in self.nodes[ch.asset].outputs)
            else:
                new = ""
            if ch.kind == "new":
                old = '<p class="placeholder">did not exist</p>'
            reasons = "".join(f"<li>{_e(r)}</li>" for r in ch.reasons)
            if ch.prompt is not None:
                reasons += f'<li class="prompt-diff">prompt: {diff_html(*ch.prompt)}</li>'
            link = self.asset_link(ch.asset) if ch.asset in self.nodes else _e(ch.asset)
            cards.append(f'<article class="change {ch.kind}" data-asset="{_e(ch.asset)}"><h3>'
                         f'<span class="badge {ch.kind}">{ch.kind}</span> {link}</h3><ul class="reasons">{reasons}</ul>'
                         f'<div class="pair"><div class="side old"><h4>before ({_e(since)})</h4>{old}</div>'
                         f'<div class="side new"><h4>now</h4>{new}</div></div></article>')
        return f'<section id="changes">{head}<div class="change-list">{"".join(cards)}</div></section>'

    def old_figure(self, git: GitRevision | None, path: str, sha: str) -> str:
        data = git.show(path) if git else None
        if data is None:
            data = self.project.cache.local_blob(sha)
        elif sha256_bytes(data) != sha:  # git's copy is not what the lock recorded: show git's
            sha = sha256_bytes(data)
        return self.blob_figure(sha, data, path, missing="not in git at that commit nor in the local cache")

    def asset(self, nid: str) -> str:
        node = self.nodes[nid]
        d = self.decisions.get(nid)
        entry = self.lock.get(nid)
        ok = d is not None and d.action is Action.UP_TO_DATE
        status = ('' if ok else
                  f'<div class="status stale"><strong>stale: {_e(d.action.value if d else "not planned")}</strong>'
                  f'<ul class="reasons">{self.reasons(d.reasons if d else [], d.inputs if d else None)}</ul></div>')
        shas, pick, adopted = candidates_of(entry)
        badges = f'<span class="badge {"ok" if ok else "stale"}">{"up to date" if ok else "stale"}</span>'
        if adopted:
            badges += ' <span class="badge adopted" title="a hand edit, accepted with assetbuild adopt">adopted</span>'
        images = "".join(self.output_figure(p) for p in node.outputs)
        parts = [f'<section class="asset {"ok" if ok else "stale"}" id="{self.anchors[nid]}" data-asset="{_e(nid)}">'
                 f'<h2>{_e(nid)} {badges}</h2>', status,
                 f'<div class="cols"><div class="images main">{images}</div><div class="info">',
                 self.facts(node, entry, adopted), self.references(node, d), self.lineage(node), "</div></div>"]
        if shas:
            parts.append(self.candidates(nid, shas, pick))
        parts.append("</section>")
        return "".join(parts)

    def reasons(self, reasons: Iterable[Reason], inputs: dict[str, Any] | None = None) -> str:
        reasons = list(reasons)
        items = "".join(f'<li data-code="{_e(r.code)}">{_e(str(r))}</li>' for r in reasons)
        change = prompt_change(reasons, inputs)
        if change is not None:
            items += f'<li class="prompt-diff">prompt: {diff_html(*change)}</li>'
        return items

    def candidates(self, nid: str, shas: list[str], pick: int | None) -> str:
        from ..plan.reasons import shell_word

        figures = []
        for i, sha in enumerate(shas, start=1):
            picked = i == pick
            label = f"candidate {i}" + (" \u2713 picked" if picked else "")
            figure = self.blob_figure(sha, self.project.cache.local_blob(sha), label, css="thumb",
                                      extra="candidate picked" if picked else "candidate")
            # the command that makes it the output, to copy (the picked one: what it already is)
            command = f'<code class="pick" title="makes candidate {i} the output">assetbuild pick {_e(shell_word(nid))} {i}</code>'
            figures.append(figure.replace("</figcaption></figure>", f"<br>{command}</figcaption></figure>"))
        return (f'<div class="candidates"><h3>Candidates ({len(shas)})'
                f'{f", pick {pick}" if pick else ""}</h3><div class="images">{"".join(figures)}</div></div>')

    def facts(self, node: Any, entry: LockEntry | None, adopted: str | None) -> str:
        rows: list[tuple[str, str]] = []
        if node.derived:
            steps = "".join(f"<li><code>{_e(_step(s))}</code></li>" for s in node.steps)
            rows.append(("steps", f"<ol>{steps}</ol>"))
        else:
            rows.append(("prompt", f'<span class="prompt">{_e(node.prompt)}</span>'))
        if entry is not None and entry.outputs:
            sizes = sorted({f"{o.width}x{o.height}" for o in entry.outputs})
            rows.append(("size", _e(", ".join(sizes))))
        elif not node.derived:
            rows.append(("size", _e(f"{node.width}x{node.height}")))
        if not node.derived:
            model = node.model
            if entry is not None and entry.model_id and entry.model_id != node.model:
                model += f" ({entry.model_id})"
            rows.append(("model", _e(model)))
            rows.append(("provider", _e(node.provider)))
            if node.count > 1:
                rows.append(("count", str(node.count)))
        rows.append(("cost", usd(entry.cost_usd) if entry is not None else "not built"))
        if entry is not None and entry.built:
            rows.append(("built", _e(entry.built)))
        if adopted:
            rows.append(("adopted", f"<code>{_e(adopted[:16])}</code> (a hand edit kept by later builds)"))
        return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"

    def references(self, node: Any, d: Decision | None) -> str:
        if not node.references:
            return ""
        figures = []
        for i, ref in enumerate(node.references):
            label = ref.label
            if node.derived:
                label = ("from " if i == 0 else "overlay ") + label
            if ref.node is not None:
                paths = ref.paths if ref.index is None else ref.paths[:1]
                for path in paths[:4]:
                    thumb = self.file_thumb(path, SMALL_PX)
                    figures.append(f'<figure class="ref"><a href="#{self.anchors.get(ref.node, "")}">'
                                   f'{self.img(thumb, label, "not built", "small")}</a>'
                                   f'<figcaption>{_e(label)}</figcaption></figure>')
            else:
                exists = self.project.hasher.hash(ref.path or "") is not None
                thumb = self.file_thumb(ref.path or "", SMALL_PX)
                image = self.img(thumb, label, "missing", "small")
                if exists:
                    image = f'<a href="{self.href(ref.path or "")}">{image}</a>'
                figures.append(f'<figure class="ref">{image}<figcaption>{_e(label)}</figcaption></figure>')
        title = "source and overlays" if node.derived else "references"
        return f'<div class="refs"><h3>{title}</h3><div class="images">{"".join(figures)}</div></div>'

    def lineage(self, node: Any) -> str:
        reads = [self.asset_link(up) for up in node.upstream]
        reads += [f'<a href="{self.href(r.path)}">{_e(r.path)}</a>' for r in node.references if r.path]
        read_by = [self.asset_link(down) for down in self.read_by.get(node.id, [])]
        return (f'<dl class="lineage"><dt>reads</dt><dd>{", ".join(reads) or "nothing"}</dd>'
                f'<dt>read by</dt><dd>{", ".join(read_by) or "nothing"}</dd></dl>')


def find_changes(project: "Workspace", git: GitRevision, lock_name: str,
                 decisions: Mapping[str, Decision]) -> list[Change]:
    """Assets new, removed or changed since the commit: new and removed first, then changed,
    each group in build order."""
    old = _read_old_lock(git, lock_name)
    current = project.lock.entries
    order = list(project.blueprint.order)
    found: list[Change] = []
    for nid in order:
        if nid not in old:
            found.append(Change(nid, "new", ["not in the lock at that commit"], None, current.get(nid)))
    for nid in sorted(set(old) - set(project.nodes)):
        found.append(Change(nid, "removed", ["no longer in the manifest"], old[nid], None,
                            [o.sha256 for o in old[nid].outputs]))
    for nid in order:
        before = old.get(nid)
        if before is None:
            continue
        node = project.nodes[nid]
        now = current.get(nid)
        now_shas = [project.hasher.hash(p) for p in node.outputs]
        old_shas = [o.sha256 for o in before.outputs]
        paths_moved = [o.path for o in before.outputs] != list(node.outputs)
        d = decisions.get(nid)
        built_changed = now is not None and now.fingerprint != before.fingerprint
        planned_changed = d is not None and d.fingerprint is not None and d.fingerprint != before.fingerprint
        if not (built_changed or planned_changed or paths_moved or now_shas != old_shas):
            continue
        reasons: list[str] = []
        prompt = None
        if built_changed and now is not None:  # what the image now on disk was built from
            why = changes(before, now.inputs)
            reasons += [str(r) for r in why]
            prompt = prompt_change(why, now.inputs)
        if prompt is None and planned_changed and d is not None:  # what the next build will make it from
            prompt = prompt_change(changes(before, d.inputs), d.inputs) if d.inputs else None
        if paths_moved:
            reasons.append("output paths changed")
        o_shas, o_pick, o_adopted = candidates_of(before)
        n_shas, n_pick, n_adopted = candidates_of(now)
        if o_pick != n_pick and n_pick is not None:
            reasons.append(f"picked candidate {n_pick}" + (f" (was {o_pick})" if o_pick else ""))
        if n_adopted and n_adopted != o_adopted:
            reasons.append("a hand edit was adopted")
        if now_shas != old_shas and not paths_moved:
            reasons.append("image changed" if all(now_shas) else "output missing now")
        if d is not None and d.action is not Action.UP_TO_DATE:
            reasons.append("not rebuilt yet: " + "; ".join(str(r) for r in d.reasons))
        found.append(Change(nid, "changed", list(dict.fromkeys(reasons)), before, now, old_shas, prompt))
    return found


def owned_elsewhere(project: "Workspace", out: Path) -> str | None:
    """Why ``out`` (resolved) is not a file the report may write over, or None: the manifest,
    the lock, an output or a file the manifest reads, or a name that does not end in .html."""
    root = project.root
    lock = project.lock.path
    mine = {project.manifest_path.resolve(): f"the manifest {project.manifest_path.name}",
            lock.resolve(): f"the lock {lock.name}"}
    for node in project.nodes.values():
        for path in node.outputs:
            mine.setdefault((root / path).resolve(), f"{path}, an output of {node.id}")
        for ref in node.references:
            if ref.path is not None:
                mine.setdefault((root / ref.path).resolve(), f"{ref.path}, a file {node.id} reads")
    if out in mine:
        return f"is {mine[out]}"
    if not out.name.lower().endswith(".html"):
        return "does not end in .html"
    return None


def write_report(project: "Workspace", out: Path | None = None, *, since: str | None = None,
                 force: bool = False) -> ReportResult:
    """Write the report to ``out`` (default: assetbuild-report.html beside assetbuild.toml,
    web-report.html beside web.toml).
    It never writes over the manifest, the lock, an output or a reference, nor a file whose
    name does not end in .html, unless ``force``.
    ``since`` names a git revision to compare with; None compares with HEAD when the project
    is in a git repository with commits, and quietly leaves the comparison out otherwise (a
    revision given that git cannot read is a UsageError)."""
    if out is None:  # named after the manifest, like the lock: web.toml -> web-report.html
        out = project.manifest_path.parent / f"{project.manifest_path.stem}-report.html"
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"-o {out}: is a folder; name a file such as {out / REPORT_NAME}")
    shown = out
    out = out.resolve()
    why = None if force else owned_elsewhere(project, out)
    if why is not None:
        raise UsageError(f"-o {shown}: {why}; the report writes only its own .html file: name another, "
                         "or pass --force to write there anyway")
    plan = project.plan()
    decisions = {d.id: d for d in plan.decisions}
    lock_file = project.lock.path
    git: GitRevision | None = GitRevision(project.root, since or "HEAD")
    note = git.resolve()
    if note is not None:
        if since is not None:
            raise UsageError(f"--since {since}: {note}; name a commit (e.g. HEAD~1 or main), or leave --since out")
        git = None
    elif since is None and git.show(lock_file.name) is None and not git.tracks(lock_file.name):
        note = f"{lock_file.name} is not in git (commit it, and the outputs, to compare with a commit)"
        git = None
    found = None
    if git is not None:
        try:
            found = find_changes(project, git, lock_file.name, decisions)
        except UserError as exc:
            if since is not None:
                raise
            note, git = str(exc).replace("--since HEAD: ", "", 1), None  # HEAD's lock cannot be read
    page = Page(project, out, plan.decisions)
    page.prefetch()
    text = page.render(found, since or "HEAD", note, git)
    page.thumbs.save()
    data = text.encode("utf-8")
    try:
        write_atomic(out, data)
    except OSError as exc:
        raise UsageError(f"-o {out}: cannot write the report: {exc.strerror or exc}; name a file in a writable "
                         "folder") from exc
    try:
        os.chmod(out, 0o644)  # a page to open and share, not a secret (mkstemp made it 0600)
    except OSError:
        pass
    stale = sum(1 for d in plan.decisions if d.action is not Action.UP_TO_DATE)
    return ReportResult(out, len(data), len(project.nodes), sum(len(n.outputs) for n in project.nodes.values()),
                        len(plan.decisions) - stale, stale, found, since or "HEAD", note)


# -- helpers ----------------------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)




def _step(step: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in step.items())


def _anchors(ids: list[str]) -> dict[str, str]:
    """A stable HTML id per asset id: its characters outside [A-Za-z0-9_-] become '_', with a
    number added when two ids would meet."""
    made: dict[str, str] = {}
    taken: set[str] = set()
    for nid in ids:
        base = "asset-" + re.sub(r"[^A-Za-z0-9_-]", "_", nid)
        anchor, n = base, 2
        while anchor in taken:
            anchor, n = f"{base}-{n}", n + 1
        taken.add(anchor)
        made[nid] = anchor
    return made


CSS = """
:root{--fg:#1d1d1f;--muted:#6b6b73;--line:#e3e3e8;--ok:#1f7a3a;--bad:#b42318;--pick:#e8590c;--bg:#fafafa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;
 max-width:1200px;padding:16px 24px}
h1 small,h2 small{color:var(--muted);font-weight:normal;font-size:60%}
h2{font-size:18px;margin:0 0 6px}h3{font-size:14px;margin:10px 0 4px}h4{margin:0 0 6px;font-size:13px;color:var(--muted)}
.counts{display:flex;gap:12px;flex-wrap:wrap;margin:0 0 12px}
.counts div{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:110px}
.counts dt{color:var(--muted);font-size:12px}.counts dd{margin:0;font-size:22px;font-weight:600}
.counts .bad dd{color:var(--bad)}
table.providers{border-collapse:collapse;margin-bottom:16px}
table.providers td,table.providers th{border:1px solid var(--line);padding:3px 10px;text-align:left}
#index ul{columns:4 180px;padding-left:18px;margin:4px 0 16px}
#index li.stale a{color:var(--bad);font-weight:600}
.asset,.change{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;margin:0 0 14px}
.asset.stale{border-left:5px solid var(--bad)}.asset.ok{border-left:5px solid var(--ok)}
.badge{font-size:11px;border-radius:10px;padding:2px 8px;vertical-align:middle;color:#fff;background:var(--muted)}
.badge.ok{background:var(--ok)}.badge.stale,.badge.removed{background:var(--bad)}
.badge.new{background:#1565c0}.badge.changed{background:#8a5a00}.badge.adopted{background:#6a1b9a}
.status.stale{color:var(--bad)}.status.ok{color:var(--ok);margin:0}
.status ul.reasons{margin:2px 0 6px}
.diff del{background:#fdd;color:#900}.diff ins{background:#dfd;color:#060;text-decoration:none}
.images{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
figure{margin:0;max-width:172px}figcaption{font-size:11px;color:var(--muted);word-break:break-all}
img.thumb,img.small{display:block;background:#eee;border:1px solid var(--line);border-radius:4px;height:auto;max-width:100%}
.placeholder{display:flex;align-items:center;justify-content:center;text-align:center;background:repeating-linear-gradient(
 45deg,#f3f3f5,#f3f3f5 6px,#e9e9ee 6px,#e9e9ee 12px);color:var(--muted);font-size:11px;border-radius:4px;padding:6px}
span.thumb.placeholder{width:160px;height:100px}span.small.placeholder{width:64px;height:64px}
.candidate.picked img,.candidate.picked .placeholder{outline:3px solid var(--pick);outline-offset:2px}
.candidate.picked figcaption{color:var(--pick);font-weight:700}
code.pick{user-select:all;font-weight:400;word-break:normal;white-space:nowrap}
dl.facts,dl.lineage{display:grid;grid-template-columns:90px 1fr;gap:2px 10px;margin:10px 0 0}
dl.facts dt,dl.lineage dt{color:var(--muted)}dl.facts dd,dl.lineage dd{margin:0}dl.facts ol{margin:0;padding-left:18px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.side{border:1px dashed var(--line);border-radius:8px;padding:8px}.side.old{background:#fff8f6}.side.new{background:#f5fbf6}
.note{color:var(--muted)}
.change-list{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:0 14px}
.cols{display:grid;grid-template-columns:minmax(172px,auto) 1fr;gap:18px;align-items:start}
.images.main{max-width:540px}
@media (max-width:700px){.cols,.pair{grid-template-columns:1fr}}
""".replace("\n", "")
