"""What git remembers of a project: its lock and its output files as earlier commits (and the
other side of a merge in progress) had them, read with ``git show REV:./PATH``.

``lock resolve`` takes its candidate lock entries from here, and fetches from here the images
of an entry whose files are no longer on disk (git keeps one side of a conflicted PNG only):
whatever a commit holds was paid for once and is never paid for again. Commands run in the
project's folder, so ``./PATH`` is relative to it wherever the repository's root is.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import LockfileError, UsageError
from .lockfile import LockEntry, entries_from_bytes

GIT_TIMEOUT_S = 30  # one git command
GIT_BATCH_TIMEOUT_S = 300  # one `git cat-file --batch` reading many files (a report's images)


@dataclass
class GitLock:
    """One commit's lock: ``rev`` as git names it (a commit id, ``MERGE_HEAD``)."""

    rev: str
    entries: dict[str, LockEntry]


class Git:
    """git, run in ``folder``: the one wrapper every git call goes through (locks in history,
    lock resolve, the report's comparison). Every failure to run it is one UsageError line."""

    def __init__(self, folder: Path, why: str = "this"):
        self.folder = folder
        self.why = why
        self._prefix: str | None = None  # the folder, relative to the repository's top

    def run(self, *args: str, text: bool = True, input: bytes | None = None,
            timeout_s: float = GIT_TIMEOUT_S) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["git", *args], cwd=self.folder, capture_output=True, text=text, input=input,
                                  timeout=timeout_s)
        except OSError as exc:
            raise UsageError(f"{self.why} needs git: {exc.strerror or exc}; install git") from exc
        except subprocess.TimeoutExpired as exc:
            raise UsageError(f"{self.why}: git {args[0]} took more than {timeout_s:g} s") from exc

    def is_repo(self) -> bool:
        """Whether ``folder`` is in a git repository with a commit; no git process is started
        where no ``.git`` is found above it (a plan outside a repository never runs git)."""
        if "GIT_DIR" not in os.environ and not any(
                (p / ".git").exists() for p in (self.folder.resolve(), *self.folder.resolve().parents)):
            return False
        try:
            return self.run("rev-parse", "--verify", "-q", "HEAD").returncode == 0
        except UsageError:
            return False

    def has_rev(self, rev: str) -> bool:
        return self.run("rev-parse", "--verify", "-q", rev).returncode == 0

    def commits(self, count: int, tips: tuple[str, ...] = ("HEAD",)) -> list[str]:
        """The last ``count`` commits reachable from ``tips`` (newest first)."""
        tips = tuple(t for t in tips if self.has_rev(t))
        if count <= 0 or not tips:
            return []
        done = self.run("rev-list", f"--max-count={count}", *tips)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["git failed"])[-1]
            raise UsageError(f"{self.why}: {self.folder} is not in a git repository with commits ({why})")
        return done.stdout.split()

    def show(self, rev: str, path: str) -> bytes | None:
        """The bytes of ``path`` (relative to the project folder) at ``rev``; None if absent."""
        done = self.run("show", f"{rev}:./{path}", text=False)
        return done.stdout if done.returncode == 0 else None

    def show_many(self, rev: str, paths: Iterable[str]) -> dict[str, bytes | None]:
        """The bytes of many files (relative to the project folder) at ``rev``, read with one
        ``git cat-file --batch``; None for each one the commit does not have."""
        paths = [p for p in dict.fromkeys(paths) if "\n" not in p]
        if not paths:
            return {}
        if self._prefix is None:
            self._prefix = self.run("rev-parse", "--show-prefix").stdout.strip()
        names = "".join(f"{rev}:{self._prefix}{p}\n" for p in paths).encode("utf-8")
        out = self.run("cat-file", "--batch", text=False, input=names, timeout_s=GIT_BATCH_TIMEOUT_S).stdout
        found: dict[str, bytes | None] = {}
        at = 0
        for path in paths:
            end = out.find(b"\n", at)
            header = out[at:end].split() if end >= 0 else []
            if len(header) == 3 and header[1] == b"blob" and header[2].isdigit():
                size = int(header[2])
                found[path] = out[end + 1:end + 1 + size]
                at = end + 1 + size + 1
            else:  # "<name> missing", a tree, or the output ended early
                found[path] = None
                at = end + 1 if end >= 0 else len(out)
        return found

    def commit_of(self, rev: str) -> tuple[str | None, str | None]:
        """The commit ``rev`` names, or None and why there is none (not a repository, no
        commits, no such revision, no git)."""
        if rev.startswith("-"):
            return None, f"{rev!r} is not a git revision"
        try:
            done = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
            if done.returncode == 0:
                return done.stdout.strip(), None
            if self.run("rev-parse", "--git-dir").returncode != 0:
                return None, f"{self.folder} is not in a git repository"
        except UsageError as exc:
            return None, f"git is not available ({exc})"
        return None, f"no commit {rev!r} in this repository"

    def tracks(self, path: str) -> bool:
        """Whether git tracks ``path`` now (in its index), committed or only added."""
        try:
            return self.run("ls-files", "--error-unmatch", "--", path).returncode == 0
        except UsageError:
            return False

    def lock_at(self, rev: str, lock_name: str) -> tuple[dict[str, LockEntry] | None, str | None]:
        """The lock at ``rev`` (None if it had none), or a note saying why it cannot be read."""
        data = self.show(rev, lock_name)
        if data is None:
            return None, None
        try:
            return entries_from_bytes(data, Path(lock_name)), None
        except LockfileError as exc:
            return None, f"{rev[:10]}: {exc} (skipped)"


def locks_in_history(folder: Path, lock_name: str, revs: int, *, merging: bool = False,
                     why: str = "--git-revs") -> tuple[list[GitLock], list[str]]:
    """The lock as each of the last ``revs`` commits had it (with ``merging``, the commits of
    the branch being merged in too, MERGE_HEAD's first), and a note per unreadable lock."""
    git = Git(folder, why)
    tips = ("MERGE_HEAD", "HEAD") if merging else ("HEAD",)
    seen: list[str] = []
    if merging and git.has_rev("MERGE_HEAD"):
        seen.append("MERGE_HEAD")
    seen += git.commits(revs, tips)
    locks: list[GitLock] = []
    notes: list[str] = []
    for rev in seen:
        entries, note = git.lock_at(rev, lock_name)
        if note:
            notes.append(note)
        if entries is not None:
            locks.append(GitLock(rev, entries))
    return locks, notes


def entries_in_history(folder: Path, lock_name: str, git_revs: int) -> tuple[list[dict[str, LockEntry]], list[str]]:
    """The lock's entries as each of the last ``git_revs`` commits had them (none for 0), and a
    note per commit whose lock could not be read (``--git-revs`` of clean and cache gc)."""
    if git_revs <= 0:
        return [], []
    if not Git(folder, "--git-revs").is_repo():
        raise UsageError(f"--git-revs: {folder} is not in a git repository with commits; "
                         "leave --git-revs out or commit first")
    locks, notes = locks_in_history(folder, lock_name, git_revs)
    return [lock.entries for lock in locks], notes
