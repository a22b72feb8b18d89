"""``assetbuild cache info|push|pull|verify|gc`` on real caches: a file:// remote (and one S3
run against moto), and real git for ``gc --git-revs``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from assetbuild.store.hashing import sha256_bytes
from tests.conftest import ProjectDir
from tests.test_remote import S3, SMALL, fake_aws  # noqa: F401  (fake_aws: an autouse fixture)

NO_REMOTE = {"ASSETBUILD_CACHE_REMOTE": ""}


def make(tmp_path: Path, name: str = "p", remote: Path | None = None) -> ProjectDir:
    project = ProjectDir(tmp_path / name, tmp_path / f"{name}-cache")
    project.manifest(SMALL)
    if remote is not None:
        project.env["ASSETBUILD_CACHE_REMOTE"] = remote.as_uri()
    return project


def files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` by name, with its size, read off the disk."""
    return {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}


def info(project: ProjectDir, **env: str) -> dict:
    res = project.run("cache", "info", "--json", env=env)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.output)


def build(project: ProjectDir, *args: str, env: dict[str, str] | None = None) -> dict:
    res = project.run("build", "--json", *args, env=env)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.output)


def test_info_counts_results_blobs_and_bytes_locally_and_remotely(tmp_path):
    remote = tmp_path / "remote"
    project = make(tmp_path, remote=remote)
    build(project)
    got = info(project)
    blobs = files(tmp_path / "p-cache" / "blobs")
    assert got["local"]["records"] == 2 and got["local"]["blobs"] == len(blobs) == 2
    assert got["local"]["bytes"] == sum(blobs.values())
    assert got["remote"] == {"url": remote.as_uri(), "records": 2, "blobs": 2,
                             "bytes": sum(files(remote / "blobs").values())}
    text = project.run("cache", "info").output
    assert "2 result(s), 2 blob(s)" in text and remote.as_uri() in text
    assert info(project, **NO_REMOTE)["remote"] is None


def test_push_uploads_what_the_remote_lacks_once(tmp_path):
    remote = tmp_path / "remote"
    project = make(tmp_path, remote=remote)
    build(project, env=NO_REMOTE)  # built with no remote: nothing shared yet
    assert not remote.exists()
    res = project.run("cache", "push")
    assert res.exit_code == 0 and "push: 2 result(s), 2 blob(s)" in res.output
    assert len(files(remote / "records")) == 2 and len(files(remote / "blobs")) == 2
    assert "push: 0 result(s), 0 blob(s)" in project.run("cache", "push").output
    # what was pushed is what a clone restores
    other = make(tmp_path, "other", remote=remote)
    assert build(other)["restored"] == 2 and other.calls.total == 0


def test_pull_fetches_what_the_lock_references_so_an_offline_build_restores_it(tmp_path):
    remote = tmp_path / "remote"
    first = make(tmp_path, "first", remote=remote)
    build(first)
    second = make(tmp_path, "second", remote=remote)
    (second.root / "assetbuild.lock").write_bytes((first.root / "assetbuild.lock").read_bytes())
    res = second.run("cache", "pull")
    assert res.exit_code == 0 and "pull: 2 result(s), 2 blob(s)" in res.output
    assert "pull: 0 result(s)" in second.run("cache", "pull").output
    summary = build(second, "--offline", env=NO_REMOTE)
    assert summary["restored"] == 2 and second.calls.total == 0


def test_pull_and_push_without_a_remote_say_how_to_set_one(tmp_path):
    project = make(tmp_path)
    for command in ("push", "pull"):
        res = project.run("cache", command)
        assert res.exit_code == 2 and "[cache] remote" in res.stderr and "ASSETBUILD_CACHE_REMOTE" in res.stderr


def test_verify_removes_damaged_blobs_locally_and_remotely(tmp_path):
    remote = tmp_path / "remote"
    project = make(tmp_path, remote=remote)
    build(project)
    assert project.run("cache", "verify", "--remote").exit_code == 0
    local_blob = next((tmp_path / "p-cache" / "blobs").rglob("*"))
    while local_blob.is_dir():
        local_blob = next(local_blob.iterdir())
    remote_blob = sorted(p for p in (remote / "blobs").rglob("*") if p.is_file())[-1]
    local_blob.write_bytes(b"bit rot")
    remote_blob.write_bytes(b"bit rot")
    res = project.run("cache", "verify")
    assert res.exit_code == 1 and f"damaged    local blob {local_blob.name}" in res.output
    assert not local_blob.exists() and remote_blob.exists()  # without --remote, the remote is not read
    res = project.run("cache", "verify", "--remote")
    assert res.exit_code == 1 and f"damaged    remote blob {remote_blob.name}" in res.output
    assert not remote_blob.exists()
    assert project.run("cache", "verify", "--remote").exit_code == 0


def fingerprints(cache: Path) -> set[str]:
    from assetbuild.store.cache import Cache

    c = Cache(cache)
    try:
        return set(c.records())
    finally:
        c.close()


def test_gc_keeps_what_the_lock_references_and_dry_run_says_what_would_go(tmp_path):
    remote = tmp_path / "remote"
    project = make(tmp_path, remote=remote)
    build(project)
    old = fingerprints(tmp_path / "p-cache")
    project.manifest(SMALL.replace('prompt = "one"', 'prompt = "one, again"'))
    build(project)  # one and (its dependent) two are new: the old results are unreferenced now
    new = fingerprints(tmp_path / "p-cache") - old
    assert len(old) == 2 and len(new) == 2
    before = files(tmp_path / "p-cache" / "blobs")
    res = project.run("cache", "gc", "--dry-run", "--remote")
    assert res.exit_code == 0
    doomed = {line.split()[-1] for line in res.output.splitlines() if line.startswith("would remove local blob")}
    assert len(doomed) == 2 and doomed <= set(before)
    assert f"{sum(before[sha] for sha in doomed)} bytes" in res.output
    assert {line.split()[-1] for line in res.output.splitlines()
            if line.startswith("would remove local result")} == old
    assert files(tmp_path / "p-cache" / "blobs") == before  # a dry run removes nothing
    res = project.run("cache", "gc", "--remote")
    assert res.exit_code == 0
    assert fingerprints(tmp_path / "p-cache") == new
    assert set(files(tmp_path / "p-cache" / "blobs")) == set(before) - doomed
    assert {p.stem for p in (remote / "records").iterdir()} == new
    assert set(files(remote / "blobs")) == set(before) - doomed
    # what is kept still restores everything, with no provider call
    for path in (project.root / "assets").iterdir():
        path.unlink()
    assert build(project, env=NO_REMOTE)["restored"] == 2 and project.calls.total == 0


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True,
                   capture_output=True)


def test_gc_with_git_revs_keeps_what_earlier_commits_locked(tmp_path):
    project = make(tmp_path)
    git(project.root, "init", "-q")
    build(project)
    first = fingerprints(tmp_path / "p-cache")
    git(project.root, "add", "assetbuild.toml", "assetbuild.lock")
    git(project.root, "commit", "-q", "-m", "first")
    project.manifest(SMALL.replace('prompt = "one"', 'prompt = "one, again"'))
    build(project)
    git(project.root, "commit", "-q", "-am", "second")
    project.manifest(SMALL.replace('prompt = "one"', 'prompt = "one, a third time"'))
    build(project)  # not committed: the working tree's lock
    third = fingerprints(tmp_path / "p-cache") - first
    assert len(fingerprints(tmp_path / "p-cache")) == 6

    assert project.run("cache", "gc", "--git-revs", "2").exit_code == 0
    assert fingerprints(tmp_path / "p-cache") == first | third  # the lock, HEAD and HEAD~1
    assert project.run("cache", "gc", "--git-revs", "1").exit_code == 0
    kept = fingerprints(tmp_path / "p-cache")
    assert not kept & first and len(kept) == 4  # HEAD's ("second") and the working tree's
    assert project.run("cache", "gc").exit_code == 0
    assert len(fingerprints(tmp_path / "p-cache")) == 2


def test_gc_git_revs_outside_git_is_one_line(tmp_path):
    project = make(tmp_path)
    build(project)
    res = project.run("cache", "gc", "--git-revs", "3")
    assert res.exit_code == 2 and res.stderr.startswith("error: --git-revs:") and len(res.stderr.splitlines()) == 1


def test_the_cache_commands_work_against_s3(tmp_path):
    s3 = S3()
    try:
        project = make(tmp_path)
        project.env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_ENDPOINT_URL": s3.endpoint,  # the standard variable, as in CI
                            "ASSETBUILD_CACHE_REMOTE": f"s3://{s3.bucket}/team"})
        build(project, env=NO_REMOTE)
        assert "push: 2 result(s), 2 blob(s)" in project.run("cache", "push").output
        got = info(project)["remote"]
        assert got["records"] == 2 and got["blobs"] == 2
        assert got["bytes"] == sum(s3.client().head_object(Bucket=s3.bucket, Key=k)["ContentLength"]
                                   for k in s3.keys() if "/blobs/" in k)
        assert project.run("cache", "verify", "--remote").exit_code == 0
        project.manifest(SMALL.replace('prompt = "two"', 'prompt = "two, again"'))
        build(project)
        res = project.run("cache", "gc", "--remote")
        assert res.exit_code == 0 and "gc remote: removed 1 result(s) and 1 blob(s)" in res.output
        assert len([k for k in s3.keys() if "/records/" in k]) == 2
    finally:
        s3.stop()


@pytest.mark.parametrize("command", [["info"], ["push"], ["pull"], ["verify", "--remote"], ["gc", "--remote"]])
def test_a_cache_command_on_a_stopped_server_fails_with_one_line(tmp_path, command):
    s3 = S3()
    s3.stop()
    project = make(tmp_path)
    project.env.update({"AWS_ENDPOINT_URL": s3.endpoint, "ASSETBUILD_CACHE_REMOTE": f"s3://{s3.bucket}/team"})
    build(project, env=NO_REMOTE)
    if command == ["pull"]:  # with the results at hand, pull asks the remote nothing
        shutil.rmtree(tmp_path / "p-cache")
    res = project.run("cache", *command)
    assert res.exit_code == 1
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")] == \
        [res.stderr.strip().splitlines()[-1]]
    assert "remote cache s3://team-assets/team" in res.stderr


def test_sha256_named_blobs_really_are_their_hash(tmp_path):
    project = make(tmp_path)
    build(project)
    for path in (tmp_path / "p-cache" / "blobs").rglob("*"):
        if path.is_file():
            assert sha256_bytes(path.read_bytes()) == path.name
