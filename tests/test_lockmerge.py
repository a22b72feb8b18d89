"""The lock's merge driver and `lock resolve` (issue 9): per-asset 3-way merges, conflict
markers, and a lock rebuilt from what is on disk. Real git runs in tests/test_team.py."""

from __future__ import annotations

import json
from pathlib import Path

from assetbuild.cli import main
from assetbuild.store.lockfile import LockEntry, Lockfile, OutputRecord, read_entries
from assetbuild.commands.lockmerge import merge_entries, merge_files, same, split_conflict

KIT = """
[project]
output_dir = "assets"
[defaults]
size = "48x32"
[assets.a]
prompt = "asset a, first take"
[assets.d]
prompt = "a poster with a"
references = ["@a"]
"""


def entry(fp: str, sha: str = "", built: str = "2026-01-01T00:00:00Z", path: str = "assets/x.png") -> LockEntry:
    return LockEntry(fingerprint=fp, provider="local", model_id="local", built=built, cost_usd=0.0,
                     inputs={"recipe": 1, "prompt": fp, "references": [], "params": {}},
                     outputs=(OutputRecord(path, sha or fp * 4, 8, 8),))


def write_lock(path: Path, entries: dict[str, LockEntry]) -> Path:
    Lockfile(path, entries).save()
    return path


# -- the per-asset merge ------------------------------------------------------------------------

def test_an_asset_changed_on_one_side_takes_that_side():
    base = {"a": entry("a0"), "b": entry("b0"), "c": entry("c0")}
    ours = {"a": entry("a1"), "b": entry("b0"), "c": entry("c0")}
    theirs = {"a": entry("a0"), "b": entry("b1"), "c": entry("c0")}
    merged = merge_entries(base, ours, theirs)
    assert {k: e.fingerprint for k, e in merged.entries.items()} == {"a": "a1", "b": "b1", "c": "c0"}
    assert merged.ours == ["a"] and merged.theirs == ["b"] and merged.conflicts == []


def test_the_same_build_on_both_sides_is_no_conflict_whenever_it_was_made():
    base = {"a": entry("a0")}
    merged = merge_entries(base, {"a": entry("a1", built="2026-01-02T00:00:00Z")},
                           {"a": entry("a1", built="2026-01-03T00:00:00Z")})
    assert merged.conflicts == [] and merged.entries["a"].built == "2026-01-02T00:00:00Z"


def test_both_sides_changing_one_asset_differently_is_a_conflict_that_keeps_ours():
    merged = merge_entries({"a": entry("a0")}, {"a": entry("a1")}, {"a": entry("a2")})
    assert merged.conflicts == ["a"] and merged.entries["a"].fingerprint == "a1"


def test_additions_and_deletions_merge_per_asset():
    base = {"gone": entry("g0"), "kept": entry("k0"), "edited": entry("e0")}
    ours = {"kept": entry("k0"), "edited": entry("e0"), "new": entry("n1")}  # ours deleted "gone", added "new"
    theirs = {"gone": entry("g0"), "kept": entry("k0"), "edited": entry("e1"), "other": entry("o1")}
    merged = merge_entries(base, ours, theirs)
    assert sorted(merged.entries) == ["edited", "kept", "new", "other"]
    assert merged.entries["edited"].fingerprint == "e1" and merged.conflicts == []


def test_deleted_on_one_side_and_changed_on_the_other_is_a_conflict_that_keeps_the_change():
    merged = merge_entries({"a": entry("a0")}, {}, {"a": entry("a1")})
    assert merged.conflicts == ["a"] and merged.entries["a"].fingerprint == "a1"


def test_added_on_both_sides_differently_is_a_conflict():
    merged = merge_entries({}, {"a": entry("a1")}, {"a": entry("a2")})
    assert merged.conflicts == ["a"]


def test_same_compares_fingerprint_and_output_bytes():
    assert same(None, None) and not same(entry("a"), None)
    assert not same(entry("a", sha="1" * 64), entry("a", sha="2" * 64))


# -- the driver ---------------------------------------------------------------------------------

def test_the_driver_writes_a_valid_merged_lock_over_ours_and_exits_0(tmp_path, capsys):
    base = write_lock(tmp_path / "base", {"a": entry("a0"), "b": entry("b0")})
    ours = write_lock(tmp_path / "ours", {"a": entry("a1"), "b": entry("b0")})
    theirs = write_lock(tmp_path / "theirs", {"a": entry("a0"), "b": entry("b1")})
    code = run_cli("lock", "merge", str(base), str(ours), str(theirs))
    assert code == 0
    merged = read_entries(ours)
    assert merged["a"].fingerprint == "a1" and merged["b"].fingerprint == "b1"
    assert "1 asset(s) from ours, 1 from theirs" in capsys.readouterr().err


def test_a_conflict_exits_1_with_a_valid_lock_and_says_lock_resolve(tmp_path, capsys):
    base = write_lock(tmp_path / "base", {"a": entry("a0")})
    ours = write_lock(tmp_path / "ours", {"a": entry("a1")})
    theirs = write_lock(tmp_path / "theirs", {"a": entry("a2")})
    assert run_cli("lock", "merge", str(base), str(ours), str(theirs)) == 1
    assert read_entries(ours)["a"].fingerprint == "a1"  # still a lock assetbuild reads
    err = capsys.readouterr().err
    assert "changed on both sides (a)" in err and "assetbuild lock resolve" in err


def test_a_lock_changed_on_one_side_only_is_that_side_byte_for_byte(tmp_path):
    base = write_lock(tmp_path / "base", {"a": entry("a0")})
    ours = write_lock(tmp_path / "ours", {"a": entry("a0")})
    theirs = write_lock(tmp_path / "theirs", {"a": entry("a1"), "b": entry("b1")})
    assert merge_files(base, ours, theirs).conflicts == []
    assert ours.read_bytes() == theirs.read_bytes()
    again = write_lock(tmp_path / "again", {"a": entry("a2")})
    assert merge_files(base, again, base).conflicts == [] and read_entries(again)["a"].fingerprint == "a2"


def test_a_lock_added_on_both_sides_has_an_empty_base(tmp_path):
    (tmp_path / "base").write_bytes(b"")
    ours = write_lock(tmp_path / "ours", {"a": entry("a1")})
    theirs = write_lock(tmp_path / "theirs", {"b": entry("b1")})
    merged = merge_files(tmp_path / "base", ours, theirs)
    assert merged.conflicts == [] and sorted(read_entries(ours)) == ["a", "b"]


def test_an_unreadable_side_leaves_ours_untouched_and_exits_1(tmp_path, capsys):
    base = write_lock(tmp_path / "base", {"a": entry("a0")})
    ours = write_lock(tmp_path / "ours", {"a": entry("a1")})
    before = ours.read_bytes()
    (tmp_path / "theirs").write_text("version = 1\n[assets.a\n", encoding="utf-8")
    assert run_cli("lock", "merge", str(base), str(ours), str(tmp_path / "theirs")) == 1
    assert ours.read_bytes() == before
    assert "not a lock assetbuild can read" in capsys.readouterr().err


# -- conflict markers ---------------------------------------------------------------------------

def test_split_conflict_reads_both_sides_and_drops_a_diff3_base():
    text = "top\n<<<<<<< HEAD\nmine\n||||||| base\nold\n=======\nyours\n>>>>>>> branch\nbottom\n"
    assert split_conflict(text) == ("top\nmine\nbottom\n", "top\nyours\nbottom\n")
    assert split_conflict("no markers\n") is None


# -- resolve ------------------------------------------------------------------------------------

def test_resolve_takes_each_asset_from_the_side_whose_bytes_are_on_disk(project):
    project.manifest(KIT)
    assert project.run("build").exit_code == 0
    first_lock = (project.root / "assetbuild.lock").read_text()
    first = {p: project.read(p) for p in ("assets/a.png", "assets/d.png")}
    project.manifest(KIT.replace("first take", "second take"))
    assert project.run("build").exit_code == 0
    second_lock = (project.root / "assetbuild.lock").read_text()
    # A conflicted lock (our second take, their first), with their images and manifest on disk.
    (project.root / "assetbuild.lock").write_text(
        f"<<<<<<< HEAD\n{second_lock}=======\n{first_lock}>>>>>>> theirs\n", encoding="utf-8")
    project.manifest(KIT)
    for path, data in first.items():
        (project.root / path).write_bytes(data)
    plan = project.run("plan")
    assert plan.exit_code == 2 and "assetbuild lock resolve" in plan.stderr
    res = project.run("lock", "resolve", "--git-revs", "0")
    assert res.exit_code == 0, res.output + res.stderr
    assert "taken      a  (its files match the entry of theirs)" in res.output
    assert "git add" in res.output
    assert "<<<<<<<" not in (project.root / "assetbuild.lock").read_text()
    assert project.run("check").exit_code == 0
    assert project.run("build").exit_code == 0 and project.calls.total == 0


def test_resolve_keeps_an_edited_output_unmatched_so_the_build_names_it(project):
    project.manifest(KIT)
    project.run("build")
    (project.root / "assets/d.png").write_bytes(b"edited by hand")
    res = project.run("lock", "resolve", "--git-revs", "0")
    assert res.exit_code == 0 and "unmatched  d" in res.output
    plan = project.run("plan", "--json")
    codes = {a["asset"]: a["codes"] for a in json.loads(plan.output)["actions"]}
    assert codes["d"] == ["output-modified"] and codes["a"] == []


def test_resolve_outside_git_reads_the_lock_only(project):
    project.manifest(KIT)
    project.run("build")
    res = project.run("lock", "resolve")  # --git-revs 50 by default; not a repository: no commits to read
    assert res.exit_code == 0 and "read 1 lock(s)" in res.output


def test_resolve_refuses_a_lock_from_a_newer_assetbuild_and_leaves_it(project):  # issue 17 item 11
    project.manifest(KIT)
    assert project.run("build").exit_code == 0
    path = project.root / "assetbuild.lock"
    newer = path.read_text().replace("version = 1", "version = 2", 1)
    assert newer != path.read_text()
    path.write_text(newer)
    res = project.run("lock", "resolve", "--git-revs", "0")
    assert res.exit_code == 2, res.output + res.stderr
    assert "newer" in res.stderr and "upgrade assetbuild" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert path.read_text() == newer  # nothing discarded


def run_cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
