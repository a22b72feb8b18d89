"""Trust only what assetbuild wrote (issue 17): a lock, another branch's lock or an old
commit's lock names files; assetbuild deletes only what the one deletion rule allows (a
regular file under output_dir, reached without a symlink, that no manifest in the folder
claims or reads, and whose bytes the local cache index says assetbuild wrote at that path).

The hostile-lock corpus (tests/data/hostile-locks/corpus.toml) goes through build, clean,
clean --git-revs and a build after a merge through the real git merge driver."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ProjectDir, png
from tests.test_team import git_env

DATA = Path(__file__).parent / "data" / "hostile-locks"
CORPUS = tomllib.loads((DATA / "corpus.toml").read_text(encoding="utf-8"))["entry"]
ACTED = [e for e in CORPUS if not e.get("loader")]  # entries the lock loader reads
REFUSED = [e for e in CORPUS if e.get("loader")]  # entries the lock loader refuses as a whole

MANIFEST = """\
[project]
output_dir = "{od}"

[defaults]
size = "48x32"

[assets.hero]
prompt = "a hero"
output = "{pre}hero.png"
{refs}
{extra}
"""

EXTRA = """\
[assets.logo]
prompt = "a logo"
output = "{pre}logo.png"

[assets.old]
prompt = "an old one"
output = "{pre}old.png"
"""

WEB = """\
[project]
output_dir = "{od}"

[defaults]
size = "48x32"

[assets.web]
prompt = "the web banner"
output = "{pre}web.png"
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Hostile:
    """The corpus's project: built once with logo and old, then logo and old removed from the
    manifest, hero reading brand/palette.png and assets/logo.png, and a sibling web.toml."""

    def __init__(self, tmp: Path, od: str):
        self.tmp = tmp
        self.od = od
        self.pre = "assets/" if od == "." else ""
        self.outside = tmp / "outside"
        self.env = git_env(tmp)
        self.p = ProjectDir(tmp / "proj", tmp / "cache")
        self.p.root.mkdir()
        self.git("init", "-q", "-b", "main")
        self.p.manifest(MANIFEST.format(od=od, pre=self.pre, refs="", extra=EXTRA.format(pre=self.pre)))
        self.p.write("web.toml", WEB.format(od=od, pre=self.pre))
        for args in (("build",), ("-f", "web.toml", "build")):
            res = self.p.run(*args)
            assert res.exit_code == 0, res.output + res.stderr
        root = self.p.root
        self.p.write("brand/palette.png", (root / "assets/hero.png").read_bytes())  # a copy of an output
        self.p.write("brand/notes.txt", "the brand's notes\n")
        self.p.write("assets/hand-made.png", png(48, 32, (1, 2, 3)))
        self.p.write("assets/sub/inside.txt", "a folder's file\n")
        self.outside.mkdir()
        (self.outside / "victim.png").write_bytes(png(48, 32, (9, 9, 9)))
        (self.outside / "hard.png").write_bytes(png(48, 32, (8, 8, 8)))
        (tmp / "victim2.png").write_bytes(png(48, 32, (7, 7, 7)))
        os.symlink(self.outside, root / "assets" / "link")
        os.symlink(self.outside / "victim.png", root / "assets" / "victim-link.png")
        os.link(self.outside / "hard.png", root / "assets" / "hardlink.png")
        self.p.write(".gitattributes", "")
        self.p.manifest(MANIFEST.format(od=od, pre=self.pre, extra="",
                                        refs='references = ["brand/palette.png", "assets/logo.png"]'))

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.tmp / "proj", env=self.env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def place(self, text: str) -> str:
        return text.replace("{outside}", str(self.outside))

    def entries(self, corpus: list[dict]) -> str:
        """Lock tables of gone assets, one per corpus entry, each carrying the sha256 of the
        bytes it names (so the hash alone would not keep the file)."""
        tables = []
        for i, entry in enumerate(corpus):
            target = Path(self.place(entry.get("sha_of", entry["path"])))
            target = target if target.is_absolute() else self.p.root / target
            digest = sha(target) if target.is_file() else "0" * 64
            tables.append(f'[assets."hostile-{i:02d}"]\nfingerprint = "{"f" * 64}"\nprovider = "local"\n\n'
                          f'[[assets."hostile-{i:02d}".outputs]]\npath = {json.dumps(self.place(entry["path"]))}\n'
                          f'sha256 = "{digest}"\nwidth = 48\nheight = 32\n')
        return "\n".join(tables)

    def poison(self, corpus: list[dict]) -> None:
        lock = self.p.root / "assetbuild.lock"
        lock.write_text(lock.read_text(encoding="utf-8") + "\n" + self.entries(corpus), encoding="utf-8")

    def files(self) -> dict[str, str]:
        """Every file and link under the temp folder but the cache and git's object store."""
        found = {}
        for folder, dirs, names in os.walk(self.tmp):
            dirs[:] = [d for d in dirs if d not in ("cache", "objects", "logs")]
            for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                path = os.path.join(folder, name)
                found[os.path.relpath(path, self.tmp)] = os.readlink(path) if os.path.islink(path) else "file"
        return found


def removed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return set(before) - set(after)


OWNED = {"proj/assets/old.png"}  # the one leftover assetbuild wrote: the rule still removes it


@pytest.fixture(params=["assets", "."])
def hostile(request, tmp_path) -> Hostile:
    return Hostile(tmp_path, request.param)


def test_the_corpus_has_twenty_entries_or_more():
    assert len(CORPUS) >= 20 and len(ACTED) >= 15


def test_build_removes_only_what_assetbuild_wrote(hostile):
    hostile.poison(ACTED)
    before = hostile.files()
    res = hostile.p.run("build")
    assert res.exit_code == 0, res.output + res.stderr
    assert removed(before, hostile.files()) == OWNED
    out = res.output
    for kept in ("assets/logo.png", "assets/web.png", "brand/palette.png", "assets/hand-made.png",
                 "assets/link/victim.png", "assets/victim-link.png", "assetbuild.toml", ".git/config"):
        assert kept in out, out  # each kept file named, one line each
    assert hostile.p.run("build").exit_code == 0  # the next build still reads assets/logo.png


def test_clean_removes_only_what_assetbuild_wrote(hostile):
    hostile.poison(ACTED)
    before = hostile.files()
    res = hostile.p.run("clean")
    assert res.exit_code == 0, res.output + res.stderr
    assert removed(before, hostile.files()) == OWNED


def test_clean_with_git_revs_removes_only_what_assetbuild_wrote(hostile):
    lock = hostile.p.root / "assetbuild.lock"
    clean = lock.read_text(encoding="utf-8")
    hostile.poison(ACTED)
    hostile.commit("a lock from a branch")
    lock.write_text(clean, encoding="utf-8")  # today's lock is clean; history holds the hostile one
    hostile.commit("the lock again")
    before = hostile.files()
    res = hostile.p.run("clean", "--git-revs", "5")
    assert res.exit_code == 0, res.output + res.stderr
    assert removed(before, hostile.files()) == OWNED


@pytest.mark.parametrize("entry", REFUSED, ids=[e["name"] for e in REFUSED])
def test_a_lock_entry_the_loader_refuses_removes_nothing(tmp_path, entry):
    hostile = Hostile(tmp_path, ".")
    hostile.poison([entry])
    before = hostile.files()
    for args in (("build",), ("clean",)):
        res = hostile.p.run(*args)
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output + res.stderr
        assert "hostile-00" in res.stderr
    assert removed(before, hostile.files()) == set()


@pytest.mark.slow
def test_a_hostile_branch_merged_through_the_driver_removes_nothing_assetbuild_did_not_write(tmp_path):
    hostile = Hostile(tmp_path, ".")
    res = hostile.p.run("init", "--git")
    assert res.exit_code == 0, res.output + res.stderr
    hostile.commit("base")
    hostile.git("checkout", "-q", "-b", "pr")
    hostile.poison(ACTED)  # a pull request that adds lock tables (the symlinks are committed too)
    hostile.commit("pr: lock tables")
    hostile.git("checkout", "-q", "main")
    manifest = hostile.p.root / "assetbuild.toml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + '\n[assets.extra]\nprompt = "more"\n'
                        f'output = "{hostile.pre}extra.png"\n', encoding="utf-8")
    assert hostile.p.run("build").exit_code == 0
    hostile.commit("main: extra")
    hostile.git("merge", "--no-edit", "pr")  # both sides changed the lock: the driver merges it
    lock = (hostile.p.root / "assetbuild.lock").read_text(encoding="utf-8")
    assert "hostile-00" in lock and "<<<<<<<" not in lock
    before = hostile.files()
    res = hostile.p.run("build")
    assert res.exit_code == 0, res.output + res.stderr
    assert removed(before, hostile.files()) == set()  # main's build before the merge removed old.png
    assert not (hostile.p.root / "assets/old.png").exists()


# -- item 2: prune never removes a file a manifest in the folder still reads or claims ------------

LOGO_KIT = """\
[project]
output_dir = "assets"

[defaults]
size = "48x32"

[assets.hero]
prompt = "a hero"
{refs}
{logo}
"""


def test_a_removed_asset_whose_file_a_reference_now_reads_is_kept(project):  # item 2(a)
    project.manifest(LOGO_KIT.format(refs="", logo='[assets.logo]\nprompt = "a logo"'))
    assert project.run("build").exit_code == 0
    logo = project.read("assets/logo.png")
    project.manifest(LOGO_KIT.format(refs='references = ["assets/logo.png"]', logo=""))
    res = project.run("build")
    assert res.exit_code == 0, res.output + res.stderr
    assert project.read("assets/logo.png") == logo
    assert "keeps assets/logo.png: assetbuild.toml reads it (hero: assets/logo.png)" in res.output
    res = project.run("build")
    assert res.exit_code == 0, res.output + res.stderr  # not "reference file assets/logo.png does not exist"


def test_an_asset_moved_to_another_manifest_in_the_folder_keeps_its_output(project):  # item 2(b)
    banner = '[assets.banner]\nprompt = "a banner"'
    project.manifest(LOGO_KIT.format(refs="", logo=banner))
    assert project.run("build").exit_code == 0
    image = project.read("assets/banner.png")
    project.manifest(LOGO_KIT.format(refs="", logo=""))
    project.write("web.toml", LOGO_KIT.replace("hero", "web-hero").format(refs="", logo=banner))
    res = project.run("build")  # assetbuild.toml, before web.toml was ever built
    assert res.exit_code == 0, res.output + res.stderr
    assert project.read("assets/banner.png") == image
    assert "keeps assets/banner.png: web.toml: an output of banner" in res.output
    res = project.run("-f", "web.toml", "build", "--json")
    assert res.exit_code == 0 and project.calls.assets == {"web-hero"}, res.output + res.stderr
    assert project.read("assets/banner.png") == image


def test_a_sibling_manifest_that_cannot_be_loaded_keeps_every_file(project):
    project.manifest(LOGO_KIT.format(refs="", logo='[assets.logo]\nprompt = "a logo"'))
    assert project.run("build").exit_code == 0
    project.manifest(LOGO_KIT.format(refs="", logo=""))
    project.write("web.toml", "[assets.banner\nprompt = broken")
    project.write("pyproject.toml", '[tool.x]\nname = "not a manifest"\n')
    res = project.run("build")
    assert res.exit_code == 0, res.output + res.stderr
    assert (project.root / "assets/logo.png").exists()
    assert "web.toml cannot be loaded" in res.output


# -- item 3: report -o never writes over a file it does not own ------------------------------------

@pytest.mark.parametrize("target", ["assetbuild.toml", "assetbuild.lock", "assets/hero.png", "brand/palette.png",
                                    "notes.txt", "page.htm"])
def test_report_refuses_to_write_over_what_it_does_not_own(project, target):
    project.manifest(LOGO_KIT.format(refs='references = ["brand/palette.png"]', logo=""))
    project.write("brand/palette.png", png(32, 32))
    project.write("notes.txt", "mine\n")
    assert project.run("build").exit_code == 0
    before = (project.root / target).read_bytes() if (project.root / target).exists() else None
    res = project.run("report", "-o", target)
    assert res.exit_code == 2, res.output + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and target in res.stderr and "--force" in res.stderr
    after = (project.root / target).read_bytes() if (project.root / target).exists() else None
    assert after == before


def test_report_force_writes_where_it_is_told(project):
    project.manifest(LOGO_KIT.format(refs="", logo=""))
    project.write("notes.txt", "mine\n")
    assert project.run("build").exit_code == 0
    assert project.run("report", "-o", "notes.txt", "--force").exit_code == 0
    assert project.read("notes.txt").lower().startswith(b"<!doctype html>")
    assert project.run("report", "-o", "review.html").exit_code == 0


def test_report_refuses_a_link_to_the_manifest(project):
    project.manifest(LOGO_KIT.format(refs="", logo=""))
    assert project.run("build").exit_code == 0
    os.symlink(project.root / "assetbuild.toml", project.root / "page.html")
    res = project.run("report", "-o", "page.html")
    assert res.exit_code == 2 and "assetbuild.toml" in res.stderr, res.output + res.stderr
    assert b"<!DOCTYPE" not in project.read("assetbuild.toml")


# -- item 4: adopt reads only a regular file inside the project -----------------------------------

def test_adopt_refuses_a_symlinked_output_and_reads_nothing(project, tmp_path):
    project.manifest(LOGO_KIT.format(refs="", logo=""))
    assert project.run("build").exit_code == 0
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(48, 32, (66, 66, 66)))
    out = project.root / "assets/hero.png"
    out.unlink()
    os.symlink(secret, out)
    res = project.run("adopt", "hero")
    assert res.exit_code == 2, res.output + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "assets/hero.png" in res.stderr and "symlink" in res.stderr
    blobs = [p.name for p in (tmp_path / "cache" / "blobs").rglob("*") if p.is_file()]
    assert sha(secret) not in blobs
    assert sha(secret) not in project.read("assetbuild.lock").decode()


def test_adopt_refuses_an_output_folder_that_became_a_link_outside(project, tmp_path):
    project.manifest("""\
[project]
output_dir = "assets"
[defaults]
size = "48x32"
[assets.hero]
prompt = "a hero"
output = "sub/hero.png"
""")
    assert project.run("build").exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hero.png").write_bytes(png(48, 32, (5, 5, 5)))
    sub = project.root / "assets/sub"
    (sub / "hero.png").unlink()
    sub.rmdir()
    os.symlink(outside, sub)
    res = project.run("adopt", "hero")
    assert res.exit_code == 2, res.output + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "assets/sub" in res.stderr, res.stderr
    blobs = [p.name for p in (tmp_path / "cache" / "blobs").rglob("*") if p.is_file()]
    assert sha(outside / "hero.png") not in blobs


# -- item 12: a refusal writes nothing ------------------------------------------------------------

REFS = Path(__file__).parent / "data" / "references"


@pytest.mark.parametrize("name", ["empty.png", "text.png", "bomb-20000x20000.png", "html-error-page.png"])
@pytest.mark.parametrize("how", ['prompt = "x"\nreferences = ["brand/bad.png"]',
                                 'from = "brand/bad.png"\nsteps = [{ op = "fit", size = "16x16" }]'])
def test_a_refused_reference_or_from_file_writes_nothing(project, name, how):
    project.manifest(f'[defaults]\nsize = "32x32"\n[assets.a]\n{how}\n')
    project.write("brand/bad.png", (REFS / name).read_bytes())
    cache = Path(project.env["ASSETBUILD_CACHE_DIR"])
    for command in ("plan", "build", "check"):
        res = project.run(command)
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output + res.stderr
        assert "brand/bad.png" in res.stderr
        assert not cache.exists() or not any(cache.rglob("*")), sorted(cache.rglob("*"))
    assert sorted(p.name for p in project.root.rglob("*")) == ["assetbuild.toml", "bad.png", "brand"]


def test_a_pruned_entry_with_a_forged_fingerprint_is_not_indexed_as_its_result(project):
    """Prune indexes a removed asset's images under its fingerprint (a revert restores them),
    but only when the entry's inputs hash to that fingerprint: a lock cannot make the cache
    serve one image as another asset's result."""
    from assetbuild.store.cache import Cache

    project.manifest(LOGO_KIT.format(refs="", logo='[assets.logo]\nprompt = "a logo"'))
    assert project.run("build").exit_code == 0
    lock = project.root / "assetbuild.lock"
    text = lock.read_text(encoding="utf-8")
    real = tomllib.loads(text)["assets"]["logo"]["fingerprint"]
    lock.write_text(text.replace(real, "f" * 64), encoding="utf-8")
    project.manifest(LOGO_KIT.format(refs="", logo=""))
    res = project.run("build")
    assert res.exit_code == 0, res.output + res.stderr
    assert not (project.root / "assets/logo.png").exists()  # assetbuild wrote it: it still goes
    cache = Cache(Path(project.env["ASSETBUILD_CACHE_DIR"]))
    try:
        assert cache.local_result("f" * 64) is None
        assert cache.local_result(real) is not None  # its real result stays
    finally:
        cache.close()
