"""A team in git (issue 9, acceptance 1 and 2): real git, a bare origin and two clones, each
with its own empty cache. Each branch builds and pushes; one clone merges the other's work
(the merge driver on the lock, `lock resolve` where git conflicted), and the build after the
merge makes exactly as many provider calls as there are assets whose merged inputs neither
side built, with nothing blocked and no --force."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ProjectDir

pytestmark = pytest.mark.slow

# Each asset's prompt and references sit on lines of their own, apart from the others, so git
# merges edits of different assets in the manifest without a conflict.
KIT = """\
[project]
output_dir = "assets"

[defaults]
size = "48x32"

[assets.a]
prompt = "asset a, first take"

[assets.b]
prompt = "asset b, first take"

[assets.d1]
prompt = "a poster with a and b"
size = "48x32"
references = ["@a", "@b"]

[assets.d2]
prompt = "a banner with a"
size = "48x32"
references = ["@a"]
"""


def git_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_GLOBAL=str(tmp / "gitconfig"),
               GIT_CONFIG_NOSYSTEM="1", GIT_MERGE_AUTOEDIT="no", HOME=str(tmp),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


class Clone(ProjectDir):
    def __init__(self, root: Path, cache: Path, env: dict[str, str]):
        super().__init__(root, cache)
        self.git_env = env

    def git(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["git", *args], cwd=self.root, env=self.git_env, capture_output=True, text=True,
                              timeout=60)
        if ok:
            assert done.returncode == 0, f"git {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def build(self) -> dict:
        res = self.run("build", "--json")
        assert res.exit_code == 0, res.output + res.stderr
        return json.loads(res.output)

    def edit(self, old: str, new: str) -> None:
        path = self.root / "assetbuild.toml"
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new), encoding="utf-8")

    def empty_cache(self) -> None:
        shutil.rmtree(self.env["ASSETBUILD_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def team(tmp_path: Path) -> tuple[Clone, Clone]:
    """origin (bare) with the kit built and committed by a first clone; a second clone of it;
    both caches empty, both set up with `assetbuild init --git`."""
    env = git_env(tmp_path)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git")], env=env, check=True)
    first = Clone(tmp_path / "one", tmp_path / "cache-one", env)
    subprocess.run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(first.root)], env=env, check=True,
                   capture_output=True)
    first.git("checkout", "-q", "-b", "main")
    first.manifest(KIT)
    res = first.run("init", "--git")
    assert res.exit_code == 0, res.output + res.stderr
    assert (first.root / ".gitattributes").read_text() == "assetbuild.lock merge=assetbuild\n"
    assert first.build()["generated"] == 4
    first.commit("the kit")
    first.git("push", "-q", "origin", "main")
    first.empty_cache()
    second = Clone(tmp_path / "two", tmp_path / "cache-two", env)
    subprocess.run(["git", "clone", "-q", "-b", "main", str(tmp_path / "origin.git"), str(second.root)],
                   env=env, check=True, capture_output=True)
    assert second.run("init", "--git").exit_code == 0
    assert second.run("check").exit_code == 0
    return first, second


def merge_from_origin(clone: Clone) -> subprocess.CompletedProcess:
    clone.git("fetch", "-q", "origin")
    return clone.git("merge", "--no-edit", "origin/main", ok=False)


def finish(clone: Clone, merged: subprocess.CompletedProcess) -> None:
    """What a user does after `git merge`: if git conflicted, `lock resolve`, then add and commit."""
    if merged.returncode != 0:
        res = clone.run("lock", "resolve")
        assert res.exit_code == 0, res.output + res.stderr
        clone.commit("merge")


def test_both_branches_change_different_assets_upstream_of_shared_dependents(team):  # acceptance 1a
    one, two = team
    one.edit("asset a, first take", "asset a, second take")
    assert one.build()["generated"] == 3 and one.calls.assets == {"a", "d1", "d2"}
    one.commit("a: second take")
    two.edit("asset b, first take", "asset b, second take")
    assert two.build()["generated"] == 2 and two.calls.assets == {"b", "d1"}
    two.commit("b: second take")
    two.git("push", "-q", "origin", "main")

    merged = merge_from_origin(one)
    assert merged.returncode != 0  # d1 was rebuilt on both sides: its lock entry and its PNG conflict
    assert "changed on both sides (d1)" in merged.stdout + merged.stderr
    one.git("checkout", "--ours", "assets/d1.png")
    finish(one, merged)
    # Neither side built d1 from a's second take and b's second take: exactly that one call.
    summary = one.build()
    assert one.calls.total == 1 and one.calls.assets == {"d1"}
    assert summary["blocked"] == 0 and summary["failed"] == 0
    assert one.run("check").exit_code == 0


def test_both_branches_change_the_same_asset(team):  # acceptance 1b
    one, two = team
    one.edit("asset a, first take", "asset a, in red")
    assert one.build()["generated"] == 3
    one.commit("a in red")
    two.edit("asset a, first take", "asset a, in blue")
    assert two.build()["generated"] == 3
    two.commit("a in blue")
    two.git("push", "-q", "origin", "main")

    merged = merge_from_origin(one)
    assert merged.returncode != 0
    # The team settles on their blue; git leaves our red PNGs in the working tree.
    one.git("checkout", "--theirs", "assetbuild.toml")
    finish(one, merged)
    # Their side built a, d1 and d2 from exactly these inputs: their images come out of git,
    # not from the host (the other clone's cache is not shared).
    summary = one.build()
    assert one.calls.total == 0, one.calls.by_asset
    assert summary["blocked"] == 0 and summary["restored"] == 3
    assert one.read("assets/a.png") == two.read("assets/a.png")
    assert one.run("check").exit_code == 0


def test_a_rename_on_one_branch_and_an_edited_dependent_on_the_other(team):  # acceptance 1c and 2
    one, two = team
    old = one.read("assets/a.png")
    one.edit("[assets.a]", "[assets.a-web]")
    one.edit('references = ["@a", "@b"]', 'references = ["@a-web", "@b"]')
    one.edit('references = ["@a"]', 'references = ["@a-web"]')
    summary = one.build()  # an empty cache: the image is still on disk under the old name
    assert one.calls.total == 0
    assert summary["restored"] == 1 and summary["up_to_date"] == 3
    # This clone's cache never wrote a.png (only the lock says so): it is kept, named (issue 17),
    # and the user removes it, as the message says.
    assert one.read("assets/a-web.png") == old and one.read("assets/a.png") == old
    one.git("rm", "-q", "assets/a.png")
    assert one.run("check").exit_code == 0
    one.commit("a is a-web")
    two.edit("a poster with a and b", "a poster with a and b, at night")
    assert two.build()["generated"] == 1 and two.calls.assets == {"d1"}
    two.commit("d1 at night")
    two.git("push", "-q", "origin", "main")

    merged = merge_from_origin(one)
    assert merged.returncode == 0, merged.stdout + merged.stderr  # the driver merges the lock per asset
    finish(one, merged)
    summary = one.build()
    assert one.calls.total == 0, one.calls.by_asset  # their d1 has exactly the merged inputs
    assert summary["blocked"] == 0
    assert one.read("assets/d1.png") == two.read("assets/d1.png")
    assert not (one.root / "assets" / "a.png").exists()
    assert one.run("check").exit_code == 0


def test_a_png_taken_from_the_other_side_by_hand_says_lock_resolve(team):
    one, two = team
    one.edit("asset b, first take", "asset b, second take")
    one.build()
    one.commit("b")
    two.edit("asset b, first take", "asset b, third take")
    two.build()
    two.commit("b")
    two.git("push", "-q", "origin", "main")
    merged = merge_from_origin(one)
    assert merged.returncode != 0
    one.git("checkout", "--theirs", "assetbuild.toml", "assets/b.png", "assets/d1.png")
    one.git("add", "-A")  # the lock keeps our entries (the driver's choice): the PNGs are theirs
    plan = one.run("plan")
    assert "blocked" in plan.output and "assetbuild lock resolve" in plan.output
    assert one.run("lock", "resolve").exit_code == 0
    one.commit("merge")
    one.build()
    assert one.calls.total == 0 and one.run("check").exit_code == 0


def test_without_the_driver_lock_resolve_reads_the_conflict_markers(team):
    one, two = team
    one.git("config", "--remove-section", "merge.assetbuild")  # a clone that never ran `init --git`
    one.edit("asset a, first take", "asset a, second take")
    one.build()
    one.commit("a")
    two.edit("asset b, first take", "asset b, second take")
    two.build()
    two.commit("b")
    two.git("push", "-q", "origin", "main")
    merged = merge_from_origin(one)
    assert merged.returncode != 0
    assert "<<<<<<<" in (one.root / "assetbuild.lock").read_text(), merged.stdout + merged.stderr + one.git("config", "-l").stdout
    plan = one.run("plan")
    assert plan.exit_code == 2 and "assetbuild lock resolve" in plan.stderr
    one.git("checkout", "--theirs", "assets/d1.png")
    finish(one, merged)
    assert "<<<<<<<" not in (one.root / "assetbuild.lock").read_text()
    summary = one.build()
    assert one.calls.assets == {"d1"} and one.calls.total == 1 and summary["blocked"] == 0
    assert one.run("check").exit_code == 0


def test_init_git_outside_a_repository_writes_nothing(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    res = ProjectDir(folder, tmp_path / "cache").run("init", "--git")
    assert res.exit_code == 2 and "not in a git repository; run `git init` first" in res.stderr
    assert list(folder.iterdir()) == []


def test_init_git_on_an_existing_project_only_sets_up_git_once(tmp_path):
    env = git_env(tmp_path)
    clone = Clone(tmp_path / "p", tmp_path / "cache", env)
    clone.root.mkdir()
    clone.git("init", "-q")
    clone.manifest(KIT)
    clone.write(".gitattributes", "*.png binary\n")
    for _ in range(2):
        res = clone.run("-f", "assetbuild.toml", "init", "--git")
        assert res.exit_code == 0 and "already exists: left as it is" in res.output
    assert (clone.root / ".gitattributes").read_text() == "*.png binary\nassetbuild.lock merge=assetbuild\n"
    assert clone.git("config", "merge.assetbuild.driver").stdout.strip() == \
        f"{shlex.quote(sys.executable)} -m assetbuild lock merge %O %A %B"
    assert (clone.root / "assetbuild.toml").read_text() == KIT


def test_resolve_after_the_merge_was_committed_finds_the_other_side_in_history(team):
    one, two = team
    one.edit("asset a, first take", "asset a, in red")
    one.build()
    one.commit("a in red")
    two.edit("asset a, first take", "asset a, in blue")
    two.build()
    two.commit("a in blue")
    two.git("push", "-q", "origin", "main")
    merged = merge_from_origin(one)
    assert merged.returncode != 0
    one.git("checkout", "--theirs", "assetbuild.toml")
    one.commit("merge")  # committed before `lock resolve`: MERGE_HEAD is gone, their commit is in history
    assert not one.git("rev-parse", "-q", "--verify", "MERGE_HEAD", ok=False).stdout
    res = one.run("lock", "resolve")
    assert res.exit_code == 0 and "fetched    a" in res.output, res.output + res.stderr
    assert one.build()["blocked"] == 0 and one.calls.total == 0
    assert one.read("assets/a.png") == two.read("assets/a.png")


def test_the_merge_driver_works_without_assetbuild_on_path(team):  # issue 21, item 2
    """git from a GUI or an IDE, without the venv on PATH: the driver init --git recorded runs
    this interpreter by its full path, so a clean per-asset merge stays clean."""
    one, two = team
    driver = one.git("config", "merge.assetbuild.driver").stdout.strip()
    assert driver.startswith(shlex.quote(sys.executable) + " -m assetbuild ")
    one.edit('prompt = "a banner with a"', 'prompt = "a banner with a, wider"')
    assert one.build()["generated"] == 1
    one.commit("d2 wider")
    two.edit("asset b, first take", "asset b, second take")
    assert two.build()["generated"] == 2
    two.commit("b: second take")
    two.git("push", "-q", "origin", "main")

    bare = {**one.git_env, "PATH": "/usr/bin:/bin"}
    assert shutil.which("assetbuild", path=bare["PATH"]) is None  # the test means something
    one.git("fetch", "-q", "origin")
    merged = subprocess.run(["git", "merge", "--no-edit", "origin/main"], cwd=one.root, env=bare,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merged per asset" in merged.stdout + merged.stderr and "not found" not in merged.stderr
    lock = (one.root / "assetbuild.lock").read_text()
    assert "<<<<<<<" not in lock and "asset b, second take" in lock and "a banner with a, wider" in lock
    assert one.run("check").exit_code == 0
    assert one.build()["generated"] == 0 and one.calls.total == 0


def test_init_says_which_driver_it_records(tmp_path):
    env = git_env(tmp_path)
    clone = Clone(tmp_path / "p", tmp_path / "cache", env)
    clone.root.mkdir()
    clone.git("init", "-q")
    res = clone.run("init", "--git")
    assert res.exit_code == 0
    assert f"merge.assetbuild.driver '{shlex.quote(sys.executable)} -m assetbuild lock merge %O %A %B'" in res.output
    assert "without assetbuild on PATH" in res.output


def _conflicting_prompts(one: Clone, two: Clone, driver: bool = True) -> subprocess.CompletedProcess:
    """Both branches change d2's prompt, each builds it (one call each, separate caches); one
    merges the other's work: the manifest, the lock entry and the PNG of d2 conflict."""
    one.edit('prompt = "a banner with a"', 'prompt = "a banner with a, in red"')
    assert one.build()["generated"] == 1
    one.commit("d2 in red")
    two.edit('prompt = "a banner with a"', 'prompt = "a banner with a, in blue"')
    assert two.build()["generated"] == 1
    two.commit("d2 in blue")
    two.git("push", "-q", "origin", "main")
    merged = merge_from_origin(one)
    assert merged.returncode != 0
    assert ("changed on both sides (d2)" in merged.stdout + merged.stderr) is driver
    return merged


def test_a_merge_in_progress_takes_the_other_sides_image_from_git(team):  # issue 21, item 1
    one, two = team
    _conflicting_prompts(one, two)
    one.git("checkout", "--theirs", "assetbuild.toml")  # only the manifest is taken from the other side
    assert one.git("rev-parse", "-q", "--verify", "MERGE_HEAD").returncode == 0
    assert "<<<<<<<" not in (one.root / "assetbuild.lock").read_text()  # the driver wrote a valid lock

    plan = one.run("plan")
    assert plan.exit_code == 0
    assert "blocked    d2  (prompt changed; a merge is in progress and MERGE_HEAD built these inputs already: " \
           "run `assetbuild lock resolve`" in plan.output
    assert "merge in progress: run `assetbuild lock resolve` first" in plan.stderr
    build = one.run("build")
    assert build.exit_code == 1 and one.calls.total == 0  # never paid again, even by the free local renderer
    assert "run `assetbuild lock resolve` first" in build.stderr
    check = one.run("check")
    assert check.exit_code == 1 and check.output.splitlines()[-1].endswith(
        "a merge is in progress: run `assetbuild lock resolve` first (it takes what the other side built)")

    res = one.run("lock", "resolve")
    assert res.exit_code == 0 and "fetched    d2" in res.output, res.output + res.stderr
    summary = one.build()
    assert one.calls.total == 0 and summary["restored"] == 1 and summary["blocked"] == 0
    assert one.read("assets/d2.png") == two.read("assets/d2.png")
    assert one.run("check").exit_code == 0
    one.commit("merge")


def test_a_conflicted_lock_stops_plan_and_build_naming_lock_resolve(team):
    one, two = team
    (one.root / ".git" / "info" / "attributes").write_text("assetbuild.lock merge=text\n")  # markers, no driver
    _conflicting_prompts(one, two, driver=False)
    one.git("checkout", "--theirs", "assetbuild.toml")
    assert "<<<<<<<" in (one.root / "assetbuild.lock").read_text()
    for command in ("plan", "build"):
        res = one.run(command)
        assert res.exit_code == 2 and one.calls.total == 0
        assert res.stderr.strip().splitlines() == [
            "error: assetbuild.lock: has git conflict markers (a merge in progress): run `assetbuild lock resolve` "
            "first; it takes what either side built (from disk, or from git) instead of paying for it again"]
