"""The shared remote cache is data someone else wrote (issue 17 items 5 and 6): against
moto's S3 server on 127.0.0.1, a record is acted on only when it proves what it claims (its
inputs hash to its name, its images' bytes hash to their names), the committed lock's sha256
wins over any record, optional HMAC signing with a team secret, and a bucket that does not
exist fails the cache commands. Attacks: a substituted record, a record pointing at another
project's blobs, a replayed old record, a substituted blob."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from assetbuild.store.hashing import sha256_bytes
from tests.conftest import ProjectDir
from tests.test_remote import S3, fake_aws, s3, share, warnings  # noqa: F401  (fixtures)

KIT = """
[project]
provider = "local"
[defaults]
size = "32x32"
[assets.a]
prompt = "a red fox"
[assets.b]
prompt = "a blue whale"
[assets.c]
prompt = "a poster with the fox"
references = ["@a"]
"""
PREFIX = "kit"
KEY = {"ASSETBUILD_REMOTE_SIGNING_KEY": "team-secret-0123456789"}


def clone(tmp_path: Path, name: str, s3: S3, *, kit: str = KIT, lock_from: ProjectDir | None = None,
          env: dict[str, str] | None = None) -> ProjectDir:
    """A fresh checkout: the manifest (and the committed lock, if given), its own empty cache."""
    root = tmp_path / name
    root.mkdir()
    project = ProjectDir(root, tmp_path / f"{name}-cache")
    project.manifest(kit)
    share(project, f"s3://{s3.bucket}/{PREFIX}", endpoint=s3.endpoint)
    project.env.update(env or {})
    if lock_from is not None:
        (root / "assetbuild.lock").write_bytes((lock_from.root / "assetbuild.lock").read_bytes())
    return project


def build(project: ProjectDir, *args: str) -> tuple[dict[str, Any], str]:
    res = project.run("build", "--json", *args)
    assert res.exit_code == 0, res.stderr + res.output
    return json.loads(res.output), res.stderr


def lock(project: ProjectDir) -> dict[str, Any]:
    return tomllib.loads((project.root / "assetbuild.lock").read_text())["assets"]


def record_key(project: ProjectDir, asset: str) -> str:
    return f"{PREFIX}/records/{lock(project)[asset]['fingerprint']}.json"


def get(s3: S3, key: str) -> bytes:
    return s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()


def put(s3: S3, key: str, data: bytes) -> None:
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=data)


@pytest.fixture
def first(tmp_path: Path, s3: S3) -> ProjectDir:
    """A teammate who built the kit and shared it: 3 paid images in the bucket."""
    project = clone(tmp_path, "first", s3)
    summary, stderr = build(project)
    assert summary["generated"] == 3 and warnings(stderr) == []
    return project


def test_a_substituted_record_is_never_restored_and_verify_and_check_name_it(tmp_path, s3, first):
    a_png, b_png = first.read("assets/a.png"), first.read("assets/b.png")
    put(s3, record_key(first, "a"), get(s3, record_key(first, "b")))  # b's record under a's name

    # A fresh clone without the lock: a is made again, never restored as b's image.
    bare = clone(tmp_path, "bare", s3)
    summary, stderr = build(bare)
    assert bare.read("assets/a.png") != b_png and bare.read("assets/a.png") == a_png
    assert bare.calls.by_asset == {"a": 1}
    told = warnings(stderr)
    assert len(told) == 1 and "substituted record" in told[0] and lock(first)["a"]["fingerprint"][:12] in told[0]

    # That build shared its proven record in place of the substituted one; substitute it again.
    assert json.loads(get(s3, record_key(first, "a")))["images"] == [sha256_bytes(a_png)]
    put(s3, record_key(first, "a"), get(s3, record_key(first, "b")))
    # With the committed lock: the lock's sha256 wins; a is restored from its blob, nothing paid,
    # the lock is not rewritten with b's hash and c (a's dependent) is not regenerated.
    locked = clone(tmp_path, "locked", s3, lock_from=first)
    check = locked.run("check")
    assert check.exit_code == 1 and "substituted record" in check.stderr
    summary, _ = build(locked)
    assert locked.calls.total == 0 and summary["restored"] == 3
    assert locked.read("assets/a.png") == a_png
    assert (locked.root / "assetbuild.lock").read_bytes() == (first.root / "assetbuild.lock").read_bytes()
    assert locked.run("check").exit_code == 0

    # cache verify --remote names the record and removes it (a proven one can then be shared).
    res = locked.run("cache", "verify", "--remote")
    assert res.exit_code == 1, res.output + res.stderr
    assert f"unproven   remote record {lock(first)['a']['fingerprint']}: its inputs hash to another" in res.output
    assert "substituted record" in res.output and "3 record(s) checked, 1 not proven" in res.output
    assert first.run("cache", "push").exit_code == 0
    assert json.loads(get(s3, record_key(first, "a")))["images"] == [sha256_bytes(a_png)]


def test_cache_pull_takes_the_locks_images_over_a_substituted_record(tmp_path, s3, first):
    a_png = first.read("assets/a.png")
    put(s3, record_key(first, "a"), get(s3, record_key(first, "b")))
    forged = json.loads(get(s3, record_key(first, "b")))
    forged["inputs"] = json.loads(get(s3, record_key(first, "c")))["inputs"]  # c's name proven, b's images
    put(s3, record_key(first, "c"), json.dumps(forged).encode())
    locked = clone(tmp_path, "locked", s3, lock_from=first)
    res = locked.run("cache", "pull")
    assert res.exit_code == 0, res.output + res.stderr
    summary, _ = build(locked, "--offline")  # everything from the local cache now
    assert locked.calls.total == 0 and summary["restored"] == 3
    assert locked.read("assets/a.png") == a_png and locked.read("assets/c.png") == first.read("assets/c.png")
    assert locked.run("check").exit_code == 0


def test_a_record_pointing_at_another_projects_blobs_loses_to_the_lock_and_to_the_signature(tmp_path, s3):
    signed = clone(tmp_path, "signed", s3, env=KEY)
    build(signed)
    a_png = signed.read("assets/a.png")
    other = clone(tmp_path, "other", s3, kit=KIT.replace("a red fox", "someone else's logo"),
                  env={"ASSETBUILD_REMOTE_SIGNING_KEY": "another-teams-secret"})
    build(other)
    theirs = sha256_bytes(other.read("assets/a.png"))
    # a record with a's own inputs (so its name checks out) naming the other project's image
    forged = json.loads(get(s3, record_key(signed, "a")))
    forged.update(originals=[theirs], images=[theirs])
    put(s3, record_key(signed, "a"), json.dumps(forged).encode())

    locked = clone(tmp_path, "locked", s3, lock_from=signed)  # no key: the lock alone wins
    build(locked)
    assert locked.read("assets/a.png") == a_png and locked.calls.total == 0
    keyed = clone(tmp_path, "keyed", s3, env=KEY)  # no lock: the signature catches it
    summary, stderr = build(keyed)
    assert keyed.read("assets/a.png") == a_png and keyed.calls.by_asset == {"a": 1}
    told = warnings(stderr)
    assert len(told) == 1 and "wrongly signed" in told[0]


def test_a_replayed_old_record_under_a_new_name_is_ignored(tmp_path, s3):
    old = clone(tmp_path, "old", s3, env=KEY)
    build(old)
    old_a = old.read("assets/a.png")
    old_record = get(s3, record_key(old, "a"))
    new_kit = KIT.replace("a red fox", "a red fox, second take")
    new = clone(tmp_path, "new", s3, kit=new_kit, env=KEY)
    build(new)
    for env in (KEY, {}):  # the signature binds the name; without a key the inputs do
        put(s3, record_key(new, "a"), old_record)  # the old, validly signed record replayed as the new one
        fresh = clone(tmp_path, f"fresh{len(env)}", s3, kit=new_kit, env=env)
        summary, stderr = build(fresh)
        assert fresh.read("assets/a.png") != old_a and fresh.calls.by_asset == {"a": 1}
        assert any("record" in w and "ignored" in w for w in warnings(stderr))


def test_a_substituted_blob_is_never_written_as_an_output(tmp_path, s3, first):
    a_png, b_png = first.read("assets/a.png"), first.read("assets/b.png")
    sha = sha256_bytes(a_png)
    put(s3, f"{PREFIX}/blobs/{sha[:2]}/{sha}", b_png)
    for name, lock_from in (("bare", None), ("locked", first)):
        fresh = clone(tmp_path, name, s3, lock_from=lock_from)
        build(fresh)
        assert fresh.read("assets/a.png") == a_png and fresh.calls.by_asset == {"a": 1}
    res = first.run("cache", "verify", "--remote")
    assert res.exit_code == 1 and f"damaged    remote blob {sha}" in res.output


def test_with_a_signing_key_unsigned_records_are_ignored_with_one_warning_and_signed_ones_restore(
        tmp_path, s3, first):
    keyed = clone(tmp_path, "keyed", s3, env=KEY)
    summary, stderr = build(keyed)  # the bucket holds the unsigned records of `first`
    assert keyed.calls.total == 3
    told = warnings(stderr)
    assert len(told) == 1 and "unsigned, and ASSETBUILD_REMOTE_SIGNING_KEY is set" in told[0]
    assert "team-secret" not in stderr
    record = json.loads(get(s3, record_key(keyed, "a")))  # replaced by a signed, proven one
    assert len(record["sig"]) == 64 and record["inputs"]["prompt"] == "a red fox"
    again = clone(tmp_path, "again", s3, env=KEY)
    summary, stderr = build(again)
    assert again.calls.total == 0 and summary["restored"] == 3 and warnings(stderr) == []
    assert again.run("build").exit_code == 0  # a no-op build leaves its stamp
    secret = KEY["ASSETBUILD_REMOTE_SIGNING_KEY"].encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert written == []  # the key is never written anywhere (lock, cache index, stamp, records)
    assert not any(secret in get(s3, k) for k in s3.keys())
    wrong = clone(tmp_path, "wrong", s3, env={"ASSETBUILD_REMOTE_SIGNING_KEY": "not-the-team-secret"})
    summary, stderr = build(wrong)
    assert wrong.calls.total == 3 and len(warnings(stderr)) == 1 and "wrongly signed" in stderr


def test_a_bucket_that_does_not_exist_fails_the_cache_commands_in_one_line(tmp_path, s3):
    project = ProjectDir(tmp_path / "p", tmp_path / "p-cache")
    project.root.mkdir()
    project.manifest(KIT)
    share(project, "s3://no-such-bucket/kit", endpoint=s3.endpoint)
    for args in (("cache", "info"), ("cache", "info", "--json"), ("cache", "verify", "--remote"),
                 ("cache", "gc", "--remote", "--dry-run"), ("cache", "push"), ("cache", "pull")):
        res = project.run(*args)
        assert res.exit_code == 2, (args, res.output, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "no-such-bucket" in res.stderr, (args, res.stderr)
        assert "does not exist" in res.stderr and "0 result(s)" not in res.output


def test_the_no_op_stamp_never_holds_the_signing_key():
    # The stamp (run/stamp.py) remembers every ASSETBUILD_* setting to know when to answer a
    # no-op build from it: by their hash, since one of them is the team secret.
    from assetbuild.run.stamp import _context

    context = _context(dict(KEY), [])
    assert KEY["ASSETBUILD_REMOTE_SIGNING_KEY"] not in context and "team-secret" not in context
    assert context != _context({"ASSETBUILD_REMOTE_SIGNING_KEY": "another"}, [])  # still tells them apart


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                  b'{"inputs": {"references": 7}, "originals": ["x"]}', b"\xff\xfe not json",
                                  b'{"inputs": {"recipe": 1, "references": []}, "originals": "abc", "sig": 5}'],
                         ids=["nested", "nested-inputs", "wrong-types", "not-utf8", "odd-fields"])
def test_a_malformed_record_is_ignored_never_a_traceback(tmp_path, s3, first, body):
    put(s3, record_key(first, "a"), body)
    for env in ({}, KEY):
        fresh = clone(tmp_path, f"fresh{len(env)}", s3, env=env)
        summary, stderr = build(fresh)
        assert fresh.calls.by_asset.get("a") == 1 and "Traceback" not in stderr  # (with a key: b, c unsigned too)
        assert fresh.read("assets/a.png") == first.read("assets/a.png")
        put(s3, record_key(first, "a"), body)  # the build shared a proven one in its place: break it again
    res = first.run("cache", "verify", "--remote")
    assert res.exit_code == 1 and "Traceback" not in res.output + res.stderr
