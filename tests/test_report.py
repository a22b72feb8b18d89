"""`assetbuild report`: one self-contained HTML page (thumbnails as data URIs, links relative,
no external URL), every asset with its status and reasons, candidates with the pick marked,
and `--since REV` read from a real git repository."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import tomli_w
from PIL import Image

from assetbuild.store.cache import Cache
from tests.conftest import ProjectDir, png

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST = """\
[project]
provider = "local"
[defaults]
size = "64x64"
[assets.logo]
prompt = "a fox logo"
[assets.hero]
prompt = "a hero with the logo"
references = ["@logo", "brand/palette.png"]
size = "96x64"
[assets.shoe]
prompt = "a {color} shoe"
matrix = { color = ["red", "navy"] }
[assets.hero-thumb]
from = "@hero"
steps = [{ op = "fit", size = "32x32", mode = "cover" }, { op = "format", format = "webp", quality = 80 }]
"""
NODES = ["logo", "hero", "shoe[color=red]", "shoe[color=navy]", "hero-thumb"]


class Page(HTMLParser):
    """What a parsed report holds: every tag with its attributes, and the text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, **match: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(m in a.get(k.replace("_", "-"), "").split()
                                                           if k == "class" else a.get(k.replace("_", "-")) == m
                                                           for k, m in match.items())]

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


def section(text: str, asset: str) -> str:
    """The HTML of one asset's section."""
    found = re.search(r'<section class="asset [a-z]+" id="[^"]*" data-asset="%s">' % re.escape(asset), text)
    assert found, asset
    return text[found.start():text.index("</section>", found.start())]


@pytest.fixture
def built(project: ProjectDir) -> ProjectDir:
    project.manifest(MANIFEST)
    project.write("brand/palette.png", png(24, 24, (200, 80, 10)))
    assert project.run("build").exit_code == 0
    return project


def report(project: ProjectDir, *args: str) -> tuple[str, Page]:
    res = project.run("report", *args)
    assert res.exit_code == 0, res.stderr
    out = Path(args[args.index("-o") + 1]) if "-o" in args else project.root / "assetbuild-report.html"
    if not out.is_absolute():
        out = project.root / out
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


def decoded(uri: str) -> Image.Image:
    assert uri.startswith("data:image/webp;base64,"), uri[:40]
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    im.load()
    return im


def test_the_page_holds_every_asset_with_thumbnails_inline_and_no_external_url(built: ProjectDir):
    text, page = report(built)
    assert [a["data-asset"] for a in page.all("section", **{"class": "asset"})] == NODES
    images = page.all("img")
    assert len(images) >= len(NODES)
    for img in images:
        assert img["loading"] == "lazy"
        assert decoded(img["src"]).width == int(img["width"]) > 0
    # Nothing outside the file: no scripts, stylesheets or fonts to fetch, no absolute URL.
    assert not page.all("script") and not page.all("link")
    assert "http://" not in text and "https://" not in text and "url(" not in text
    for a in page.all("a"):
        href = a["href"]
        if href.startswith("#"):
            assert href[1:] in page.ids, href
        else:
            assert "://" not in href and not href.startswith("/"), href
            assert (built.root / unquote(href)).is_file(), href
    # The summary, and what made each asset.
    assert "0" == text.split('id="stale-count">')[1].split("<")[0]
    hero = section(text, "hero")
    assert "a hero with the logo" in hero and "96x64" in hero and "local" in hero
    assert 'href="assets/hero.png"' in hero
    assert 'href="brand/palette.png"' in hero  # a reference file: its thumbnail links to it
    assert f'href="#{page.all("section", data_asset="logo")[0]["id"]}"' in hero  # an @reference: to its asset
    thumb = section(text, "hero-thumb")
    assert "fit" in thumb and "webp" in thumb and "assets/hero-thumb.webp" in thumb
    # Lineage: what it reads, what reads it.
    assert "read by" in hero and "hero-thumb" in hero.split("read by")[1]


def test_a_stale_asset_is_flagged_with_the_planners_reasons(built: ProjectDir):
    built.manifest(MANIFEST.replace("a fox logo", "a fox logo at dawn"))
    text, page = report(built)
    logo, hero = section(text, "logo"), section(text, "hero")
    assert 'class="asset stale"' in logo and 'data-code="prompt-changed"' in logo and "prompt changed" in logo
    assert 'data-code="upstream-changed"' in hero and "upstream logo changed" in hero
    assert 'class="asset ok"' in section(text, "shoe[color=red]")
    assert text.split('id="stale-count">')[1].split("<")[0] == "3"  # logo, hero, hero-thumb
    (built.root / "assets" / "shoe-red.png").unlink()
    text, _ = report(built)
    red = section(text, "shoe[color=red]")
    assert "output assets/shoe-red.png missing" in red and "output missing" in red


def test_the_output_option_writes_there_with_links_relative_to_it(built: ProjectDir):
    text, page = report(built, "-o", "review/kit.html")
    assert (built.root / "review" / "kit.html").is_file() and not (built.root / "assetbuild-report.html").exists()
    files = [a["href"] for a in page.all("a") if not a["href"].startswith("#")]
    assert "../assets/logo.png" in files
    for href in files:
        assert (built.root / "review" / unquote(href)).resolve().is_file(), href


def lock_with(project: ProjectDir, asset: str, **keys: object) -> None:
    """Write candidate keys into one asset's lock table, as `candidates`/`pick`/`adopt` do."""
    path = project.root / "assetbuild.lock"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["assets"][asset].update(keys)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def test_candidates_are_shown_with_the_pick_marked_and_an_adopted_edit_named(built: ProjectDir, tmp_path: Path):
    cache = Cache(tmp_path / "cache")
    kept = [cache.put_blob(png(40, 30, (i * 60, 20, 90))) for i in range(2)]
    cache.close()
    gone = "f" * 64  # a candidate whose bytes are not in this cache
    lock_with(built, "hero", candidates=3, candidate_images=[kept[0], kept[1], gone], pick=2)
    lock_with(built, "logo", adopted="ab" * 32)
    text, page = report(built)
    hero = section(text, "hero")
    assert "Candidates (3)" in hero
    candidates = page.all("figure", **{"class": "candidate"})
    assert len(candidates) == 3
    picked = page.all("figure", **{"class": "picked"})
    assert len(picked) == 1 and "candidate 2 \u2713 picked" in hero
    assert hero.count("not in the local cache") == 1
    for img in page.all("img", alt="candidate 1"):
        assert decoded(img["src"]).size == (40, 30)
    logo = section(text, "logo")
    assert 'class="badge adopted"' in logo and "adopted" in logo
    assert "adopted" not in section(text, "shoe[color=red]")


def test_candidate_keys_of_the_wrong_shape_never_break_the_page(built: ProjectDir):
    lock_with(built, "hero", candidate_images="nope", pick="x", adopted=3)
    res = built.run("report")
    if res.exit_code == 2:  # the lock's own checks refuse them: one line naming the key
        assert res.stderr.count("\n") == 1 and "assetbuild.lock: assets.hero." in res.stderr
        return
    assert res.exit_code == 0, res.stderr
    text = (built.root / "assetbuild-report.html").read_text(encoding="utf-8")
    assert "Candidates" not in text and not Page(text).all("figure", **{"class": "candidate"})


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
                           *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


def test_since_shows_new_removed_and_changed_assets_old_beside_new(built: ProjectDir):
    root = built.root
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text(".assetbuild/\nassetbuild-report.html\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "kit")
    old_logo = (root / "assets" / "logo.png").read_bytes()
    built.manifest(MANIFEST.replace("a fox logo", "a fox logo at dawn").replace('[assets.shoe]', '[assets.sock]')
                   .replace("a {color} shoe", "a {color} sock"))
    assert built.run("build").exit_code == 0
    text, page = report(built)  # default: since HEAD
    changes = page.all("article", **{"class": "change"})
    kinds = [(c["data-asset"], c["class"].split()[1]) for c in changes]
    assert kinds[:4] == [("sock[color=red]", "new"), ("sock[color=navy]", "new"),
                         ("shoe[color=navy]", "removed"), ("shoe[color=red]", "removed")]
    assert kinds[4:] == [("logo", "changed"), ("hero", "changed"), ("hero-thumb", "changed")]
    start = text.index('<article class="change changed" data-asset="logo">')
    card = text[start:text.index("</article>", start)]
    assert "prompt changed" in card and "before (HEAD)" in card and "now" in card
    old, new = card.split('class="side new"')
    old_img = Page(old).all("img")[0]
    new_img = Page(new).all("img")[0]
    assert decoded(old_img["src"]).tobytes() == decoded_thumb(old_logo).tobytes()  # git's copy, not the file now
    assert old_img["src"] != new_img["src"]
    hero = text[text.index('data-asset="hero">'):]
    assert "upstream logo changed" in hero.split("</article>")[0]
    # Committed: nothing changed since HEAD; an older revision still shows the change.
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "dawn")
    text, page = report(built)
    assert "No asset changed." in text and not page.all("article")
    text, page = report(built, "--since", "HEAD~1")
    assert len(page.all("article", **{"class": "changed"})) == 3


def decoded_thumb(data: bytes) -> Image.Image:
    from assetbuild.commands.report import THUMB_PX, _thumbnail

    thumb = _thumbnail(data, THUMB_PX)
    assert thumb is not None
    return decoded(thumb.uri)


def test_since_names_a_bad_revision_in_one_line(built: ProjectDir):
    res = built.run("report", "--since", "HEAD")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "--since HEAD" in res.stderr and "not in a git repository" in res.stderr
    git(built.root, "init", "-q")
    res = built.run("report", "--since", "nope")
    assert res.exit_code == 2 and "no commit 'nope'" in res.stderr and res.stderr.count("\n") == 1
    res = built.run("report")  # no commit yet, no --since: the page, without a comparison
    assert res.exit_code == 0 and "no comparison" in res.stderr
    assert "No comparison with a commit" in (built.root / "assetbuild-report.html").read_text()


def test_an_output_that_is_not_an_image_gets_a_placeholder(built: ProjectDir):
    (built.root / "assets" / "logo.png").write_bytes(b"\x89PNG but cut short")
    text, _ = report(built)
    logo = section(text, "logo")
    assert "not an image this page can show" in logo and "modified by hand" in logo


def test_since_reads_git_when_the_project_is_a_subfolder_of_the_repository(built: ProjectDir):
    top = built.root.parent
    git(top, "init", "-q")
    (top / ".gitignore").write_text("cache/\n*.html\n")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "kit")
    old_shoe = (built.root / "assets" / "shoe-red.png").read_bytes()
    (built.root / "assets" / "shoe-red.png").unlink()
    built.manifest(MANIFEST.replace("a {color} shoe", "a {color} boot"))
    assert built.run("build", "shoe*").exit_code == 0
    text, page = report(built)
    changed = [a["data-asset"] for a in page.all("article", **{"class": "changed"})]
    assert changed == ["shoe[color=red]", "shoe[color=navy]"]
    start = text.index('<article class="change changed" data-asset="shoe[color=red]">')
    old = text[start:text.index('class="side new"', start)]
    assert decoded(Page(old).all("img")[0]["src"]).tobytes() == decoded_thumb(old_shoe).tobytes()


def test_an_uncommitted_lock_means_no_comparison_not_every_asset_new(built: ProjectDir):
    git(built.root, "init", "-q")
    (built.root / "README").write_text("a repository whose kit is not committed yet\n")
    git(built.root, "add", "README")
    git(built.root, "commit", "-q", "-m", "start")
    res = built.run("report")
    assert res.exit_code == 0 and "assetbuild.lock is not in git" in res.stderr
    text = (built.root / "assetbuild-report.html").read_text(encoding="utf-8")
    assert "Changes since" not in text and "assetbuild.lock is not in git" in text
    git(built.root, "add", "assetbuild.lock", "assets")  # added in this change: every asset is new
    text, page = report(built)
    assert [a["data-asset"] for a in page.all("article", **{"class": "new"})] == NODES
    text, page = report(built, "--since", "HEAD")
    assert len(page.all("article", **{"class": "new"})) == len(NODES)


def test_a_report_path_that_cannot_be_written_is_one_line(built: ProjectDir):
    (built.root / "blocker").write_text("a file where a folder would have to be\n")
    res = built.run("report", "-o", "blocker/kit.html")
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "cannot write the report" in res.stderr
    res = built.run("report", "-o", "assets")
    assert res.exit_code == 2 and "is a folder" in res.stderr


def test_an_output_that_is_a_git_lfs_pointer_says_so(built: ProjectDir):
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12345\n"
    (built.root / "assets" / "logo.png").write_bytes(pointer)
    text, _ = report(built)
    assert "a Git LFS pointer: run git lfs pull" in section(text, "logo")
    assert "https://" not in text


def test_the_default_page_is_named_after_the_manifest(built: ProjectDir):
    (built.root / "web.toml").write_text(MANIFEST.replace("a fox logo", "a web logo"), encoding="utf-8")
    res = built.run("-f", "web.toml", "report")
    assert res.exit_code == 0, res.stderr
    web = (built.root / "web-report.html").read_text(encoding="utf-8")
    assert "a web logo" in web and not (built.root / "assetbuild-report.html").exists()
