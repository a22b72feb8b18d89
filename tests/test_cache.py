"""The cache: content-addressed blobs that heal, typed result records that fall back to the
host's originals, the in-flight job index, and a damaged index that says what to do."""

from __future__ import annotations

import pytest

from assetbuild.store.cache import Cache, CacheRecord
from assetbuild.errors import CacheError
from assetbuild.store.hashing import sha256_bytes


@pytest.fixture
def cache(tmp_path):
    c = Cache(tmp_path / "cache")
    yield c
    c.close()


def test_a_corrupt_blob_reads_as_missing_and_is_replaced_by_the_next_put(cache):
    sha = cache.put_blob(b"an image")
    path = next(p for p in (cache.dir / "blobs").rglob("*") if p.is_file())
    path.write_bytes(b"an imagf")
    assert cache.get_blob(sha) is None and not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"rotten")  # damaged again, and still there when the same bytes come back
    assert cache.put_blob(b"an image") == sha and cache.get_blob(sha) == b"an image"


def test_a_result_falls_back_to_the_originals_when_its_pngs_are_gone(cache):
    original, png = cache.put_blob(b"jpeg bytes"), cache.put_blob(b"png bytes")
    record = CacheRecord(originals=(original,), provider="h", model_id="m", built="t", cost_usd=0.03,
                         request_id="r1").with_images([png])
    cache.put_result("fp", record)
    assert cache.result("fp") == record
    cache._blob_path(png).unlink()
    assert cache.result("fp") == CacheRecord(originals=(original,), provider="h", model_id="m", built="t",
                                             cost_usd=0.03, request_id="r1")
    cache._blob_path(original).unlink()
    assert cache.result("fp") is None
    cache.drop_result("fp")
    assert cache.result("fp") is None


def test_a_malformed_record_is_not_a_result(cache):
    cache._set("fp:bad", {"images": 7})
    assert cache.result("bad") is None
    assert CacheRecord.from_dict("nonsense") is None


def test_the_job_index_keeps_jobs_until_they_are_forgotten(cache):
    assert list(cache.jobs.items()) == [] and cache.jobs.get("k") is None
    cache.jobs.put("evolink|url|fp1", {"id": "task-1"})
    cache.jobs.put("fal|url|fp2", {"id": "req-2"})
    cache.put_result("fp3", CacheRecord(originals=(sha256_bytes(b"x"),), provider="h", model_id="m", built="t"))
    assert dict(cache.jobs.items()) == {"evolink|url|fp1": {"id": "task-1"}, "fal|url|fp2": {"id": "req-2"}}
    cache.jobs.delete("evolink|url|fp1")
    assert cache.jobs.get("evolink|url|fp1") is None and [k for k, _ in cache.jobs.items()] == ["fal|url|fp2"]


def test_a_damaged_index_is_one_error_that_says_what_to_do(tmp_path):
    cache = Cache(tmp_path / "cache")
    cache.jobs.put("k", {"id": "1"})
    cache.close()
    for db in (tmp_path / "cache" / "index").glob("cache.db*"):
        db.write_bytes(b"not sqlite" * 50)
    damaged = Cache(tmp_path / "cache")
    with pytest.raises(CacheError, match="move it aside"):
        damaged.jobs.get("k")
