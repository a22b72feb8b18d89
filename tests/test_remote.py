"""The shared remote cache, for real: moto's S3 server on 127.0.0.1 (and file:// folders)
shared by two clones with separate local caches; remotes that are down, slow or deny
writes; the ``cache`` commands; and the remote layer's own rules (write-once, off after the
first failure)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from assetbuild.store.cache import Cache, CacheRecord
from assetbuild.errors import RemoteError
from assetbuild.store.hashing import fingerprint_of, sha256_bytes
from assetbuild.store.remote import Remote, RemoteSpec, RemoteStore
from tests.conftest import REPO, ProjectDir, png

KIT_ASSETS = 14  # generated (paid) assets of examples/brand-kit
KIT_DERIVED = 12  # derived from them: made locally, cached and shared like the rest
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
SMALL = """
[project]
provider = "local"
[defaults]
size = "32x32"
[assets.one]
prompt = "one"
[assets.two]
prompt = "two"
references = ["@one"]
"""


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials in the process environment too, so nothing ever looks further
    (a profile, an instance role on a link-local address)."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                "ASSETBUILD_CACHE_REMOTE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_AWS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


class S3:
    """moto's S3 server in this process, on a free port of 127.0.0.1, with one bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        httpx.post(f"{self.endpoint}/moto-api/reset")  # moto's state is per process: start empty
        self.bucket = "team-assets"
        self.client().create_bucket(Bucket=self.bucket)
        self.running = True

    def client(self, **creds: str) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=creds.get("key", "testing"),
                            aws_secret_access_key=creds.get("secret", "testing"))

    def keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False


@pytest.fixture
def s3() -> Iterator[S3]:
    server = S3()
    try:
        yield server
    finally:
        if server.running:  # moto's IAM checks are process-wide: never leave them on
            httpx.post(f"{server.endpoint}/moto-api/reset-auth", content=b"inf")
        server.stop()


def clone(tmp_path: Path, name: str) -> ProjectDir:
    """A fresh copy of examples/brand-kit with its own empty local cache."""
    root = tmp_path / name
    shutil.copytree(REPO / "examples" / "brand-kit", root,
                    ignore=shutil.ignore_patterns("assets", "assetbuild.lock", ".assetbuild"))
    return ProjectDir(root, tmp_path / f"{name}-cache")


def share(project: ProjectDir, remote: str, *, endpoint: str | None = None, timeout_s: float = 2.0,
          creds: dict[str, str] | None = None) -> None:
    """Point the project at a remote in its manifest, with credentials in its environment."""
    table = f'\n[cache]\nremote = "{remote}"\ntimeout_s = {timeout_s}\n'
    if endpoint:
        table += f'endpoint_url = "{endpoint}"\n'
    path = project.root / "assetbuild.toml"
    path.write_text(path.read_text(encoding="utf-8") + table, encoding="utf-8")
    project.env.update(creds if creds is not None else FAKE_AWS)


def build(project: ProjectDir, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    res = project.run("build", "--json", *args, env=env)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.output), res.stderr


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning")]


def outputs(project: ProjectDir) -> dict[str, bytes]:
    folder = project.root / "assets"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- two clones, one bucket (acceptance 3) -------------------------------------------------

def test_a_second_clone_builds_the_whole_kit_from_the_bucket_with_no_provider_calls(tmp_path, s3):
    first, second = clone(tmp_path, "first"), clone(tmp_path, "second")
    for p in (first, second):
        share(p, f"s3://{s3.bucket}/kit", endpoint=s3.endpoint)
    summary, stderr = build(first)
    assert summary["generated"] == KIT_ASSETS and first.calls.total == KIT_ASSETS
    assert warnings(stderr) == []
    keys = s3.keys()
    assert len([k for k in keys if k.startswith("kit/records/")]) == KIT_ASSETS + KIT_DERIVED
    assert all(k.startswith(("kit/records/", "kit/blobs/")) for k in keys)

    summary, stderr = build(second)
    assert second.calls.total == 0
    assert summary["restored"] == KIT_ASSETS + KIT_DERIVED and summary["generated"] == 0 and warnings(stderr) == []
    assert outputs(second) == outputs(first)
    assert (second.root / "assetbuild.lock").read_bytes() == (first.root / "assetbuild.lock").read_bytes()
    assert second.run("check").exit_code == 0
    # what came from the bucket is now in the second clone's own cache: no remote needed any more
    for path in [p for p in (second.root / "assets").rglob("*") if p.is_file()]:
        path.unlink()
    summary, _ = build(second, env={"ASSETBUILD_CACHE_REMOTE": ""})
    assert summary["restored"] == KIT_ASSETS + KIT_DERIVED and second.calls.total == 0


def test_credentials_that_cannot_write_still_build_with_one_warning(tmp_path, s3):
    iam = __import__("boto3").client("iam", endpoint_url=s3.endpoint, region_name="us-east-1",
                                     aws_access_key_id="testing", aws_secret_access_key="testing")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
    }))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    reader = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
              "AWS_DEFAULT_REGION": "us-east-1"}
    httpx.post(f"{s3.endpoint}/moto-api/reset-auth", content=b"0")  # moto checks IAM from now on
    with pytest.raises(Exception, match="AccessDenied"):  # the fixture's point: this user cannot write
        s3.client(key=reader["AWS_ACCESS_KEY_ID"], secret=reader["AWS_SECRET_ACCESS_KEY"]).put_object(
            Bucket=s3.bucket, Key="probe", Body=b"x")

    project = clone(tmp_path, "reader")
    share(project, f"s3://{s3.bucket}/kit", endpoint=s3.endpoint, creds=reader)
    summary, stderr = build(project)
    assert summary["generated"] == KIT_ASSETS and summary["failed"] == 0
    found = warnings(stderr)
    assert len(found) == 1 and "access denied" in found[0] and "local cache only" in found[0]
    httpx.post(f"{s3.endpoint}/moto-api/reset-auth", content=b"inf")
    assert s3.keys() == []


def bounded_build(project: ProjectDir) -> tuple[dict[str, Any], str, float]:
    started = time.monotonic()
    summary, stderr = build(project)
    return summary, stderr, time.monotonic() - started


def test_a_stopped_server_degrades_to_local_with_one_warning_in_bounded_time(tmp_path, s3):
    project = ProjectDir(tmp_path / "p", tmp_path / "p-cache")
    project.manifest(SMALL)
    share(project, f"s3://{s3.bucket}/kit", endpoint=s3.endpoint, timeout_s=2.0)
    s3.stop()  # nothing listens on that port any more
    summary, stderr, took_s = bounded_build(project)
    assert summary["generated"] == 2 and summary["failed"] == 0
    found = warnings(stderr)
    assert len(found) == 1 and "remote cache s3://team-assets/kit" in found[0]
    assert took_s < 3 * 2.0


def test_a_server_that_never_answers_degrades_with_one_warning_in_bounded_time(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # takes connections and never answers them
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        project = ProjectDir(tmp_path / "p", tmp_path / "p-cache")
        project.manifest(SMALL)
        share(project, "s3://slow/kit", endpoint=f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=2.0)
        summary, stderr, took_s = bounded_build(project)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    assert summary["generated"] == 2
    found = warnings(stderr)
    assert len(found) == 1 and "timed out" in found[0]
    assert took_s < 3 * 2.0  # one request's timeout, not one per asset or per retry


# -- file:// -------------------------------------------------------------------------------

def test_a_file_remote_is_shared_and_the_env_var_overrides_the_manifest(tmp_path):
    first, second = clone(tmp_path, "first"), clone(tmp_path, "second")
    share(first, "file:///nowhere/overridden")
    remote = {"ASSETBUILD_CACHE_REMOTE": (tmp_path / "shared").as_uri()}
    summary, _ = build(first, env=remote)
    assert summary["generated"] == KIT_ASSETS
    assert len(list((tmp_path / "shared" / "records").iterdir())) == KIT_ASSETS + KIT_DERIVED
    assert not Path("/nowhere").exists()
    summary, _ = build(second, env=remote)
    assert summary["restored"] == KIT_ASSETS + KIT_DERIVED and second.calls.total == 0
    assert not list((tmp_path / "shared").rglob("*.tmp-*"))  # temp files were renamed into place


def test_a_file_remote_that_cannot_be_written_builds_with_one_warning(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    project = ProjectDir(tmp_path / "p", tmp_path / "p-cache")
    project.manifest(SMALL)
    share(project, (tmp_path / "a-file" / "remote").as_uri())
    summary, stderr = build(project)
    assert summary["generated"] == 2
    assert len(warnings(stderr)) == 1


def test_plan_shows_the_warning_once_and_the_build_says_nothing_more(tmp_path, s3):
    project = ProjectDir(tmp_path / "p", tmp_path / "p-cache")
    project.manifest(SMALL)
    share(project, f"s3://{s3.bucket}/kit", endpoint=s3.endpoint, timeout_s=1.0)
    s3.stop()
    res = project.run("plan")
    assert res.exit_code == 0 and len(warnings(res.stderr)) == 1 and "generate" in res.output


# -- configuration -------------------------------------------------------------------------

@pytest.mark.parametrize("table, key", [
    ('remote = "http://bucket/x"', "cache.remote"),
    ('remote = "s3://key:secret@bucket/x"', "cache.remote"),
    ('remote = "file://relative/x"', "cache.remote"),
    ('endpoint_url = "minio:9000"', "cache.endpoint_url"),
    ("timeout_s = 0", "cache.timeout_s"),
    ('remtoe = "s3://b"', "cache.remtoe"),
])
def test_a_bad_cache_table_is_one_located_line(project, table, key):
    project.manifest(SMALL + f"\n[cache]\n{table}\n")
    res = project.run("plan")
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: assetbuild.toml:13: {key}: ")


def test_a_bad_env_remote_is_one_line(project):
    project.manifest(SMALL)
    res = project.run("plan", env={"ASSETBUILD_CACHE_REMOTE": "ftp://host/x"})
    assert res.exit_code == 2 and res.stderr.startswith("error: ASSETBUILD_CACHE_REMOTE='ftp://host/x'")


def test_a_noop_build_with_a_remote_imports_no_remote_library(project, tmp_path):
    project.manifest(SMALL)
    share(project, (tmp_path / "shared").as_uri())
    assert project.run("build").exit_code == 0
    for path in project.root.rglob("*"):  # past the racy-mtime window, so the memos are trusted
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns - 10**10, st.st_mtime_ns - 10**10))
    code = ("import sys; from assetbuild.api import Project; "
            f"r = Project.load({str(project.root)!r}).build(); "
            "print(r.to_json()['up_to_date'], sorted(m for m in ('fsspec', 's3fs', 'botocore', 'aiohttp') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **project.env}).stdout
    assert out.split(maxsplit=1) == ["2", "[]\n"]


# -- the remote layer's rules --------------------------------------------------------------

class FailingFs:
    """An fsspec filesystem stand-in whose every call fails, counted."""

    async_impl = False

    def __init__(self, exc: Exception):
        self.exc = exc
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            raise self.exc

        return fail


def test_a_lookup_on_s3_is_one_request(s3):
    """Each request is a turn at a busy store (a shared cache is asked ~10 times per asset
    built): looking up a record or a blob asks once, found or not (s3fs alone would HEAD
    before a GET, and LIST after a HEAD that found nothing)."""
    store = RemoteStore(RemoteSpec(f"s3://{s3.bucket}/p", endpoint_url=s3.endpoint), dict(os.environ))
    fs = store._filesystem()
    asked: list[str] = []
    send = fs._call_s3

    async def counted(method: str, *args: Any, **kwargs: Any) -> Any:  # the real request, noted
        asked.append(method)
        return await send(method, *args, **kwargs)

    fs._call_s3 = counted
    original = png(color=(1, 2, 3))
    sha, fp = sha256_bytes(original), "f" * 64
    record = CacheRecord(originals=(sha,), provider="a", model_id="m", built="t").to_dict()
    assert store.get_record(fp) is None and not store.has_blob(sha)
    assert asked == ["get_object", "head_object"]
    store.put_blob(sha, original)
    store.put_record(fp, record)
    asked.clear()
    assert store.get_record(fp)["originals"] == [sha] and store.has_blob(sha) and store.get_blob(sha) == original
    assert asked == ["get_object", "head_object", "get_object"]


def test_after_the_first_failure_the_remote_is_off_with_one_warning():
    fs = FailingFs(ConnectionRefusedError("connection refused"))
    told: list[str] = []
    remote = Remote(RemoteStore(RemoteSpec("s3://b/p"), {}, fs=fs), told.append)
    assert remote.get_record("f" * 64) is None
    assert remote.get_blob("a" * 64) is None
    remote.share("f" * 64, {"originals": ["a" * 64]}, lambda sha: b"x")
    assert fs.calls == 1 and remote.off
    assert len(told) == 1 and "ConnectionRefusedError" in told[0]


def test_foreign_errors_stop_at_the_remote_layer():
    store = RemoteStore(RemoteSpec("s3://b/p"), {}, fs=FailingFs(PermissionError("AccessDenied")))
    with pytest.raises(RemoteError, match="access denied"):
        store.get_record("f" * 64)
    store = RemoteStore(RemoteSpec("s3://b/p"), {}, fs=FailingFs(ValueError("odd")))
    with pytest.raises(RemoteError, match="ValueError"):
        store.put_blob("a" * 64, b"x")


def test_records_are_written_once_and_completed_once(tmp_path):
    store = RemoteStore(RemoteSpec((tmp_path / "r").as_uri()), {})
    original, image, other = png(color=(1, 2, 3)), png(color=(4, 5, 6)), png(color=(7, 8, 9))
    blobs = {sha256_bytes(b): b for b in (original, image, other)}
    fp = "f" * 64
    bare = CacheRecord(originals=(sha256_bytes(original),), provider="a", model_id="m", built="t")
    assert store.share(fp, bare.to_dict(), blobs.get).record
    assert not store.share(fp, bare.to_dict(), blobs.get).record  # already there
    complete = bare.with_images([sha256_bytes(image)])
    assert store.share(fp, complete.to_dict(), blobs.get).record  # completes the one without images
    rival = CacheRecord(originals=(sha256_bytes(other),), provider="b", model_id="m", built="t",
                        images=(sha256_bytes(other),))
    assert not store.share(fp, rival.to_dict(), blobs.get).record  # never replaces a complete record
    assert store.get_record(fp)["images"] == [sha256_bytes(image)]
    # a record whose blobs are not all at hand is kept back: the remote never names a blob it lacks
    missing = CacheRecord(originals=("0" * 64,), provider="a", model_id="m", built="t")
    assert not store.share("e" * 64, missing.to_dict(), blobs.get).record
    assert store.get_record("e" * 64) is None


def test_a_damaged_remote_blob_is_never_restored(tmp_path):
    store = RemoteStore(RemoteSpec((tmp_path / "r").as_uri()), {})
    data = png()
    sha = sha256_bytes(data)
    store.put_blob(sha, data)
    (tmp_path / "r" / "blobs" / sha[:2] / sha).write_bytes(b"garbage")
    cache = Cache(tmp_path / "local")
    cache.connect(store)
    assert cache.get_blob(sha) is None and not cache.has_blob(sha)


def test_concurrent_writers_leave_one_whole_record(tmp_path):
    images = [png(color=(i, i, i)) for i in range(8)]
    inputs = {"recipe": 1, "kind": "generate", "prompt": "race", "references": []}
    fp = fingerprint_of(inputs)  # a record proves its name with the inputs it carries
    caches = []
    for i in range(2):
        cache = Cache(tmp_path / f"local{i}")
        cache.connect(RemoteStore(RemoteSpec((tmp_path / "r").as_uri()), {}))
        shas = [cache.put_blob(img) for img in images]
        caches.append((cache, CacheRecord(originals=tuple(shas), provider=f"w{i}", model_id="m", built="t",
                                          images=tuple(shas), inputs=inputs)))
    threads = [threading.Thread(target=c.put_result, args=(fp, r)) for c, r in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = Cache(tmp_path / "reader")
    reader.connect(RemoteStore(RemoteSpec((tmp_path / "r").as_uri()), {}))
    record = reader.result(fp)
    assert record is not None and record.provider in ("w0", "w1")
    assert [reader.get_blob(sha) for sha in record.images] == images
