"""The lock: deterministic, versioned, and merge-friendly (acceptance 12, with real git)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from assetbuild.errors import LockfileError
from assetbuild.store.lockfile import Lockfile

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

MANIFEST = """
[defaults]
size = "32x32"
[assets.alpha]
prompt = "alpha"
[assets.beta]
prompt = "beta"

[assets.gamma]
prompt = "gamma"
[assets.delta]
prompt = "delta"
"""


def git(root, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
                               "HOME": str(root), "PATH": "/usr/bin:/bin:/usr/local/bin"}).stdout


def test_branches_regenerating_different_assets_merge_cleanly(project):
    project.manifest(MANIFEST)
    assert project.run("build").exit_code == 0
    root = project.root
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    git(root, "checkout", "-qb", "one")
    project.manifest(MANIFEST.replace('"beta"', '"beta, blue"'))
    assert project.run("build").exit_code == 0
    git(root, "commit", "-qam", "beta")
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-qb", "two")
    project.manifest(MANIFEST.replace('"gamma"', '"gamma, green"'))
    assert project.run("build").exit_code == 0
    git(root, "commit", "-qam", "gamma")
    git(root, "merge", "-q", "--no-edit", "one")  # check=True: a conflict fails the test
    lock = (root / "assetbuild.lock").read_text()
    assert "<<<<<<<" not in lock
    merged = MANIFEST.replace('"beta"', '"beta, blue"').replace('"gamma"', '"gamma, green"')
    project.manifest(merged)
    check = project.run("check")
    assert check.exit_code == 0, check.output


def test_lock_is_deterministic_and_sorted(project):
    project.manifest(MANIFEST)
    project.run("build")
    path = project.root / "assetbuild.lock"
    text = path.read_text()
    lock = Lockfile.load(path)
    assert lock.dumps() == text
    headers = [line for line in text.splitlines() if line.startswith("[assets.") and "." not in line[8:-1]]
    assert headers == sorted(headers)
    assert text.splitlines()[1] == "version = 1"


def test_lock_of_unknown_version_is_refused(tmp_path):
    path = tmp_path / "assetbuild.lock"
    path.write_text("version = 99\n")
    with pytest.raises(LockfileError, match="lock version 99"):
        Lockfile.load(path)


def _entry(fp: str) -> Any:
    from assetbuild.store.lockfile import LockEntry, OutputRecord

    return LockEntry(fingerprint=fp, provider="local", model_id="local", built="2026-11-22T00:00:00Z", cost_usd=0.0,
                     inputs={"prompt": "p", "references": [], "params": {}},
                     outputs=(OutputRecord(f"assets/{fp}.png", fp * 4, 8, 8),))


def test_the_journal_replays_on_the_lock_it_continues_and_a_torn_line_ends_it(tmp_path):
    from assetbuild.store.lockfile import Lockfile

    path, journal = tmp_path / "assetbuild.lock", tmp_path / "cache" / "journal.jsonl"
    lock = Lockfile.load(path, journal=journal)
    lock.record("a", _entry("a" * 16))
    lock.save()  # the lock as a build started from it
    assert not journal.exists()
    lock = Lockfile.load(path, journal=journal)
    lock.record("b", _entry("b" * 16))
    lock.record("c", _entry("c" * 16))
    lock.prune(["a"])
    with open(journal, "a") as fh:
        fh.write('{"id": "d", "entry": {"fingerpr')  # a kill in the middle of a line
    # ...killed here: the lock file still holds only "a"
    again = Lockfile.load(path, journal=journal)
    assert sorted(again.entries) == ["b", "c"] and again.replayed == 3
    assert "[assets.a]" in path.read_text() and "[assets.b]" not in path.read_text()
    again.save_if_changed()
    assert sorted(Lockfile.load(path, journal=journal).entries) == ["b", "c"] and not journal.exists()


def test_a_journal_of_another_lock_is_not_replayed(tmp_path):
    from assetbuild.store.lockfile import Lockfile

    path, journal = tmp_path / "assetbuild.lock", tmp_path / "journal.jsonl"
    lock = Lockfile.load(path, journal=journal)
    lock.record("a", _entry("a" * 16))
    path.write_text('version = 1\n\n[assets]\n')  # e.g. a git checkout of another lock meanwhile
    assert Lockfile.load(path, journal=journal).entries == {}


def test_recording_an_asset_does_not_rewrite_the_lock(tmp_path):
    from assetbuild.store.lockfile import Lockfile

    path, journal = tmp_path / "assetbuild.lock", tmp_path / "journal.jsonl"
    lock = Lockfile.load(path, journal=journal)
    for i in range(50):
        lock.record(f"n{i}", _entry(f"{i:016d}"))
    assert not path.exists()  # written once, at the end
    assert len(journal.read_text().splitlines()) == 51
    lock.save_if_changed()
    assert len(Lockfile.load(path).entries) == 50


def _aged(path) -> None:
    """Set the file's mtime back past the 2 s racy window, so its memo may be kept."""
    import os
    import time

    old = time.time() - 60
    os.utime(path, (old, old))


def test_the_lock_memo_gives_the_entries_the_lock_itself_gives(tmp_path):
    from assetbuild.store.lockfile import Lockfile

    path, memo = tmp_path / "assetbuild.lock", tmp_path / "cache" / "lock.json"
    lock = Lockfile.load(path)
    for i in range(3):
        lock.record(f"n{i}", _entry(f"{i:016d}"))
    lock.save()
    _aged(path)
    parsed = Lockfile.load(path, memo=memo).entries  # parses the TOML, writes the memo
    assert memo.exists()
    memo_text = memo.read_text()
    again = Lockfile.load(path, memo=memo).entries  # from the memo
    assert again == parsed == Lockfile.load(path).entries
    assert memo.read_text() == memo_text


def test_a_damaged_or_foreign_lock_memo_is_not_used(tmp_path):
    import json

    from assetbuild.store.lockfile import Lockfile

    path, memo = tmp_path / "assetbuild.lock", tmp_path / "lock.json"
    lock = Lockfile.load(path)
    lock.record("a", _entry("a" * 16))
    lock.save()
    _aged(path)
    Lockfile.load(path, memo=memo)
    head, ids, row = memo.read_text().split("\n")
    assert json.loads(ids) == ["a"]
    damaged = json.loads(row)
    damaged[7] = "not rows"  # a damaged memo (its digest no longer holds): the lock is read instead
    memo.write_text(f"{head}\n{ids}\n{json.dumps(damaged)}")
    assert Lockfile.load(path, memo=memo).entries["a"].outputs[0].path == "assets/aaaaaaaaaaaaaaaa.png"
    memo.write_text(f"{head}\n{ids}\n{row}\n{row}")  # a row too many
    assert Lockfile.load(path, memo=memo).entries["a"].outputs[0].path == "assets/aaaaaaaaaaaaaaaa.png"
    memo.write_text("{")
    assert list(Lockfile.load(path, memo=memo).entries) == ["a"]
    lock = Lockfile.load(path)
    lock.record("b", _entry("b" * 16))
    lock.save()  # another lock (new mtime and size): the old memo is not its
    assert sorted(Lockfile.load(path, memo=memo).entries) == ["a", "b"]


def test_the_lock_memo_decodes_an_entry_when_asked_for(tmp_path):
    """Entries read from the memo are decoded one by one, when asked for, and act as a dict."""
    from assetbuild.store.lockfile import Entries, Lockfile, by_fingerprint

    path, memo = tmp_path / "assetbuild.lock", tmp_path / "lock.json"
    lock = Lockfile.load(path)
    for name in ("a", "b", "c"):
        lock.record(name, _entry(name * 16))
    lock.save()
    _aged(path)
    expected = Lockfile.load(path).entries
    Lockfile.load(path, memo=memo)
    entries = Lockfile.load(path, memo=memo).entries
    assert isinstance(entries, Entries)
    assert sum(v.__class__ is bytes for v in entries._rows.values()) == 3  # nothing decoded yet
    assert entries["b"] == expected["b"] and entries.get("zz") is None and "c" in entries and len(entries) == 3
    assert sum(v.__class__ is bytes for v in entries._rows.values()) == 2
    assert by_fingerprint(entries) == by_fingerprint(dict(expected)) == {e.fingerprint: [k] for k, e in expected.items()}
    assert sum(v.__class__ is bytes for v in entries._rows.values()) == 2  # read off the rows
    assert dict(entries) == dict(expected) and list(entries) == ["a", "b", "c"]
    del entries["a"]
    entries["d"] = expected["c"]
    assert list(entries) == ["b", "c", "d"] and entries.pop("d") == expected["c"]


def test_an_old_version_lock_is_migrated_and_rewritten_at_the_current_version(tmp_path):
    """A lock written by the previous version (here, one that called cost_usd ``cost``) is read
    through the migration step from its version, counts as changed, is written back at the
    current version by the next save, and is not memoised as if it were current."""
    from assetbuild.store.lockfile import LOCK_VERSION, Lockfile

    path, memo = tmp_path / "assetbuild.lock", tmp_path / "cache" / "lock.json"
    lock = Lockfile.load(path)
    lock.record("hero", _entry("a" * 16))
    lock.save()
    current, expected = path.read_text(), Lockfile.load(path).entries
    old = current.replace(f"version = {LOCK_VERSION}", f"version = {LOCK_VERSION - 1}").replace("cost_usd", "cost")
    path.write_text(old)
    _aged(path)

    def rename_cost(data: dict) -> dict:
        assets = {aid: {("cost_usd" if k == "cost" else k): v for k, v in table.items()}
                  for aid, table in data["assets"].items()}
        return {**data, "assets": assets}

    with pytest.raises(LockfileError, match=f"lock version {LOCK_VERSION - 1} is not"):
        Lockfile.load(path)  # no step from that version: one line, as before
    migrated = Lockfile.load(path, memo=memo, migrations={LOCK_VERSION - 1: rename_cost})
    assert migrated.migrated_from == LOCK_VERSION - 1 and not migrated.is_current()
    assert migrated.entries == expected and not memo.exists()
    migrated.save_if_changed()
    assert path.read_text() == current  # rewritten at the current version, byte for byte
    assert Lockfile.load(path).migrated_from is None


def test_migrations_run_one_version_at_a_time_from_the_locks_own():
    from assetbuild.store.lockfile import migrate

    steps = {1: lambda d: {**d, "seen": d["seen"] + [1]}, 2: lambda d: {**d, "seen": d["seen"] + [2]}}
    assert migrate({"seen": []}, 1, migrations=steps, current=3) == {"seen": [1, 2], "version": 3}
    assert migrate({"seen": []}, 2, migrations=steps, current=3) == {"seen": [2], "version": 3}
    assert migrate({"seen": []}, 0, migrations=steps, current=3) is None  # older than any step


def test_the_planner_compares_inputs_as_the_lock_records_them():
    """One shape: an input the lock table leaves out (to_toml) and the default it reads back
    (from_toml) compare equal in the planner; a real difference does not."""
    from assetbuild.plan.planner import changes
    from assetbuild.store.lockfile import LockEntry

    entry = _entry("b" * 16)
    written = LockEntry.from_toml(entry.to_toml())  # no kind, no params, no candidates in the table
    inputs = {**written.inputs, "recipe": 1, "kind": "generate", "params": {}, "candidates": 1,
              "references": []}
    same = {**inputs, "recipe": written.inputs["recipe"]}
    assert [r.code for r in changes(written, same)] == ["fingerprint-changed"]  # no input differs
    assert "candidates-changed" in [r.code for r in changes(written, {**inputs, "candidates": 2})]
    assert "params-changed" in [r.code for r in changes(written, {**inputs, "params": {"x": 1}})]
