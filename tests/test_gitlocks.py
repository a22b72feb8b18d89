"""store/gitlocks.py against a real git repository: what earlier commits (and the branch of a
merge in progress) held of the lock and the outputs, each failure one note or one line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from assetbuild.errors import UsageError
from assetbuild.plan.fingerprint import fingerprint, fingerprint_inputs
from assetbuild.spec.nodes import Node
from assetbuild.store.gitlocks import Git, locks_in_history
from assetbuild.store.hashing import sha256_bytes
from assetbuild.store.lockfile import LockEntry, Lockfile, OutputRecord

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def entry(prompt: str) -> LockEntry:
    node = Node(id="a", asset="a", variant=(), prompt=prompt, provider="local", provider_type="local", model="local",
                size="8x8", width=8, height=8, count=1, seed=None, watermark=False, params={}, references=(),
                outputs=("out/a.png",))
    inputs = fingerprint_inputs(node, [])
    return LockEntry(fingerprint(inputs), "local", "local", "2026-01-01T00:00:00Z", 0.0, inputs,
                     (OutputRecord("out/a.png", sha256_bytes(prompt.encode()), 8, 8),))


class Repo:
    def __init__(self, tmp: Path):
        self.root = tmp / "repo"
        self.project = self.root / "site"  # the project is a subfolder: ./PATH is relative to it
        self.project.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
                        GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_GLOBAL=str(tmp / "gitconfig"),
                        GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp))

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit_lock(self, prompt: str) -> str:
        lock = Lockfile(self.project / "assetbuild.lock")
        lock.record("a", entry(prompt))
        lock.save()
        (self.project / "out").mkdir(exist_ok=True)
        (self.project / "out" / "a.png").write_bytes(prompt.encode())
        self.git("add", "-A")
        self.git("commit", "-qm", prompt)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    r = Repo(tmp_path)
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", r.env["GIT_CONFIG_GLOBAL"])
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    r.git("init", "-q", "-b", "main")
    return r


def test_a_folder_outside_any_repository_is_not_one_and_starts_no_git(tmp_path):
    lonely = tmp_path / "lonely"
    lonely.mkdir()

    class Counting(Git):
        ran = 0

        def run(self, *args, **kw):
            Counting.ran += 1
            return super().run(*args, **kw)

    if any((p / ".git").exists() for p in lonely.resolve().parents):
        pytest.skip("the temporary folder is inside a git repository")
    assert Counting(lonely).is_repo() is False and Counting.ran == 0


def test_a_repository_without_commits_is_not_one_yet(repo):
    assert Git(repo.project).is_repo() is False
    repo.commit_lock("first")
    assert Git(repo.project).is_repo() is True


def test_commits_show_and_the_lock_at_each_revision(repo):
    first = repo.commit_lock("first")
    second = repo.commit_lock("second")
    git = Git(repo.project)
    assert git.commits(5) == [second, first] and git.commits(1) == [second] and git.commits(0) == []
    assert git.has_rev(first) and not git.has_rev("MERGE_HEAD")
    assert git.show(first, "out/a.png") == b"first"  # relative to the project folder, not the repo root
    assert git.show(first, "out/none.png") is None
    entries, note = git.lock_at(first, "assetbuild.lock")
    assert note is None and entries is not None
    assert (entries["a"].fingerprint, entries["a"].outputs) == (entry("first").fingerprint, entry("first").outputs)
    assert git.lock_at(first, "other.lock") == (None, None)


def test_an_unreadable_lock_in_history_is_a_note_and_the_others_are_read(repo):
    first = repo.commit_lock("first")
    (repo.project / "assetbuild.lock").write_text("<<<<<<< HEAD\nnot a lock\n")
    repo.git("commit", "-qam", "broken")
    broken = repo.git("rev-parse", "HEAD")
    third = repo.commit_lock("third")
    locks, notes = locks_in_history(repo.project, "assetbuild.lock", 10)
    assert [(g.rev, g.entries["a"].inputs["prompt"]) for g in locks] == [(third, "third"), (first, "first")]
    assert len(notes) == 1 and notes[0].startswith(f"{broken[:10]}: ") and notes[0].endswith("(skipped)")


def test_a_merge_in_progress_reads_the_other_branch_first(repo):
    repo.commit_lock("base")
    repo.git("checkout", "-qb", "theirs")
    theirs = repo.commit_lock("theirs")
    repo.git("checkout", "-q", "main")
    ours = repo.commit_lock("ours")
    subprocess.run(["git", "merge", "-q", "--no-edit", "theirs"], cwd=repo.root, env=repo.env, capture_output=True)
    assert Git(repo.project).has_rev("MERGE_HEAD")  # the lock conflicts: the merge waits
    locks, _ = locks_in_history(repo.project, "assetbuild.lock", 10, merging=True)
    assert locks[0].rev == "MERGE_HEAD" and locks[0].entries["a"].inputs["prompt"] == "theirs"
    assert {theirs, ours} <= {g.rev for g in locks}
    plain, _ = locks_in_history(repo.project, "assetbuild.lock", 10)
    assert theirs not in {g.rev for g in plain} and "MERGE_HEAD" not in {g.rev for g in plain}


def test_a_folder_without_commits_has_none_and_a_missing_git_is_one_line(tmp_path, monkeypatch):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "no-such-repo"))  # git must not find the test's own repo
    assert Git(lonely).commits(3) == [] and locks_in_history(lonely, "assetbuild.lock", 3) == ([], [])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UsageError, match=r"^--git-revs needs git: .*; install git$"):
        Git(lonely, "--git-revs").run("status")
    assert Git(lonely).is_repo() is False  # asked quietly: no git is no repository
