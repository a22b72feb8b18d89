"""ApiframeProvider against the Apiframe emulator: real HTTP on 127.0.0.1, a fake clock. What
only Apiframe does: one job per image, each under its own Idempotency-Key (replayed on a rerun),
uploads, its validation and credit errors, purged jobs. What every host does (retries, the
timed-out submit retried under the same key, failed and refused jobs, broken downloads, resume,
concurrency, the key) is in test_provider_contract.py."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from assetbuild.errors import ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from assetbuild.store.imageinfo import inspect_image
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.apiframe import ApiframeProvider, idempotency_key, result_urls
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from tests.fakes.apiframe import ApiframeEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import reference, sizes

KEY = "test-key-SECRET-123"
ENV = {"APIFRAME_API_KEY": KEY}


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[ApiframeEmulator]:
    with ApiframeEmulator(api_key=KEY, clock=clock) as emulator:
        yield emulator


def make_provider(emu: ApiframeEmulator, clock: FakeClock, **config: Any) -> ApiframeProvider:
    return ApiframeProvider("af", ProviderConfig(type="apiframe", base_url=emu.base_url, **config),
                            env=ENV, clock=clock)


def make_request(**fields: Any) -> GenerationRequest:
    base: dict[str, Any] = dict(asset_id="hero", fingerprint="fp-hero", prompt="a red fox in snow",
                                model="seedream-4.0", width=1024, height=1024, size="1024x1024")
    return GenerationRequest(**{**base, **fields})


# -- what is sent ------------------------------------------------------------------------------


def test_text_to_image_sends_documented_fields(emu: ApiframeEmulator, clock: FakeClock) -> None:
    jobs = MemoryJobStore()
    result = make_provider(emu, clock).generate(make_request(), jobs)

    assert sizes(result) == [(1024, 1024)]
    assert (result.model_id, result.cost_usd) == ("seedream-4", 0.03)
    assert result.request_id == next(iter(emu.jobs))
    [submit] = emu.submits
    assert submit.json == {"model": "seedream-4", "prompt": "a red fox in snow",
                           "seedreamParams": {"size": "custom", "width": 1024, "height": 1024}}
    assert submit.headers["x-api-key"] == KEY and "authorization" not in submit.headers
    assert submit.headers["content-type"] == "application/json"
    assert submit.headers["idempotency-key"] == idempotency_key("seedream-4", "fp-hero", 0)
    assert len(submit.headers["idempotency-key"]) <= 255
    assert [r.route for r in emu.requests] == ["submit", "job", "job", "result"]  # QUEUED, COMPLETED
    assert all("x-api-key" not in r.headers for r in emu.calls("result"))  # no key to the CDN
    assert jobs.get(make_provider(emu, clock).job_key(make_request())) is not None  # handed back (job_key): the executor forgets it


def test_seedream_45_with_seed_and_params(emu: ApiframeEmulator, clock: FakeClock) -> None:
    request = make_request(model="seedream-4.5", width=2048, height=2048, size="2K", seed=42,
                           output_format="png")
    result = make_provider(emu, clock).generate(request, MemoryJobStore())

    assert [inspect_image(i).media_type for i in result.images] == ["image/png"]
    assert (result.model_id, result.cost_usd) == ("seedream-4.5", 0.04)
    assert emu.submits[0].json["seedreamParams"] == {"size": "custom", "width": 2048, "height": 2048, "seed": 42,
                                                     "output_format": "png"}


def test_width_and_height_count_only_with_size_custom(emu: ApiframeEmulator, clock: FakeClock) -> None:
    """Apiframe's model pages: width/height are "only used when size is 'custom'". Without it the
    host makes its default 2K square, which is what sending width/height alone got."""
    import httpx

    with httpx.Client(base_url=emu.base_url, headers={"X-API-Key": KEY}) as client:
        bare = client.post("/v2/images/generate", json={"model": "seedream-4.5", "prompt": "p",
                                                         "seedreamParams": {"width": 2848, "height": 1600}})
        assert bare.status_code == 202
        job = {"status": "QUEUED"}
        while job["status"] != "COMPLETED":
            job = client.get(f"/v2/jobs/{bare.json()['jobId']}").json()
        url = result_urls(job["result"])[0]
        image = inspect_image(httpx.get(url).content)
    assert (image.width, image.height) == (2048, 2048)


def test_sizes_outside_custom_go_as_tier_and_ratio(emu: ApiframeEmulator, clock: FakeClock) -> None:
    request = make_request(model="seedream-4.5", width=5504, height=3040, size="16:9@4K")
    result = make_provider(emu, clock).generate(request, MemoryJobStore())
    assert emu.submits[0].json["seedreamParams"] == {"size": "4K", "aspect_ratio": "16:9"}
    assert sizes(result) == [(5456, 3072)] and result.warnings == ()  # the ratio is the one asked


def test_seedream_5_lite_sends_size_ratio_and_format(emu: ApiframeEmulator, clock: FakeClock) -> None:
    request = make_request(model="seedream-5.0-lite", width=3072, height=3072, size="3K",
                           references=(reference(64, 64),))
    result = make_provider(emu, clock).generate(request, MemoryJobStore())
    params = emu.submits[0].json["seedreamParams"]
    assert emu.submits[0].json["model"] == "seedream-5-lite"
    assert params["size"] == "3K" and params["aspect_ratio"] == "1:1" and "width" not in params
    assert isinstance(params["image_input"], list) and len(params["image_input"]) == 1  # an array, as documented
    assert sizes(result) == [(3072, 3072)]


@pytest.mark.parametrize("upload_shape", ["url", "data.url"])
def test_edit_uploads_references_once_for_all_images(emu: ApiframeEmulator, clock: FakeClock,
                                                      upload_shape: str) -> None:
    emu.upload_shape = upload_shape
    refs = (reference(640, 480, "png", "brand/logo.png"), reference(300, 500, "jpeg", "@mood"))
    result = make_provider(emu, clock).generate(make_request(references=refs, count=3), MemoryJobStore())

    assert sizes(result) == [(1024, 1024)] * 3
    uploads = emu.calls("upload")
    assert len(uploads) == 2
    parts = [u.multipart()["file"] for u in uploads]
    assert [data for _, data in parts] == [r.data for r in refs]
    assert [name for name, _ in parts] == ["reference-1.png", "reference-2.jpeg"]
    assert all(u.headers["x-api-key"] == KEY for u in uploads)
    urls = list(emu.files)
    assert [s.json["seedreamParams"]["image_input"] for s in emu.submits] == [urls] * 3


def test_count_three_is_three_jobs_with_their_own_keys(emu: ApiframeEmulator, clock: FakeClock) -> None:
    result = make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())

    assert sizes(result) == [(1024, 1024)] * 3
    assert result.cost_usd == pytest.approx(0.09)
    keys = [s.headers["idempotency-key"] for s in emu.submits]
    assert keys == [idempotency_key("seedream-4", "fp-hero", i) for i in range(3)]
    assert result.request_id == ",".join(emu.jobs)


@pytest.mark.parametrize("shape", ["string", "list", "images", "image_objects"])
def test_every_result_shape_is_read(emu: ApiframeEmulator, clock: FakeClock, shape: str) -> None:
    emu.result_shape = shape
    assert sizes(make_provider(emu, clock).generate(make_request(), MemoryJobStore())) == [(1024, 1024)]


# -- limits checked before anything is sent ----------------------------------------------------


@pytest.mark.parametrize("fields, words", [
    (dict(prompt="x" * 2001), "1 to 2000 characters"),
    (dict(references=tuple(reference(64, 64) for _ in range(15))), "at most 14 reference images"),
])
def test_out_of_range_requests_are_user_errors(emu: ApiframeEmulator, clock: FakeClock,
                                               fields: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=words):
        make_provider(emu, clock).generate(make_request(**fields), MemoryJobStore())
    assert emu.requests == []


def test_unknown_key_is_a_request_error_with_its_path(emu: ApiframeEmulator, clock: FakeClock) -> None:
    request = make_request(params={"seedreamParams": {"bogus": 1}})
    with pytest.raises(ProviderRequestError, match=r"HTTP 400: Validation failed: seedreamParams: .*'bogus'"):
        make_provider(emu, clock).generate(request, MemoryJobStore())
    assert len(emu.calls("submit")) == 1 and emu.submits == []


def test_insufficient_credits_in_plain_words(emu: ApiframeEmulator, clock: FakeClock) -> None:
    emu.credits = 0
    with pytest.raises(ProviderRequestError, match="not enough Apiframe credits .*needs 1 credits.* has 0") as info:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert info.value.status == 402 and len(emu.calls("submit")) == 1


# -- failed jobs and expired results -----------------------------------------------------------


def test_refused_submit_is_not_retried(emu: ApiframeEmulator, clock: FakeClock) -> None:
    emu.fail_next("submit", status=400, body={"error": "Prompt flagged by the safety system"})
    with pytest.raises(ProviderRefused, match="HTTP 400: Prompt flagged"):
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert len(emu.calls("submit")) == 1


def test_one_failed_job_of_three_keeps_the_other_images(emu: ApiframeEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("CANCELLED", "cancelled by operator", after=1)
    with pytest.raises(ProviderUnavailable, match="cancelled by operator") as info:
        make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())
    assert len(info.value.images) == 2 and info.value.code == "CANCELLED"


def test_purged_job_is_reported(emu: ApiframeEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    provider.generate(make_request(), MemoryJobStore())
    jobs = MemoryJobStore()
    job_id = next(iter(emu.jobs))
    jobs.put(provider.job_key(make_request()), {"id": job_id, "ids": [job_id]})
    emu.expire_results()
    with pytest.raises(ProviderRequestError, match="purged"):
        provider.generate(make_request(), jobs)
    assert jobs.get(provider.job_key(make_request())) is not None  # handed back (job_key): the executor forgets it


# -- idempotent replay -------------------------------------------------------------------------


def test_rerun_replays_the_job_instead_of_paying_again(emu: ApiframeEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    first = provider.generate(make_request(), MemoryJobStore())
    second = provider.generate(make_request(), MemoryJobStore())  # e.g. the lock was lost
    assert first.images == second.images
    assert len(emu.calls("submit")) == 2 and len(emu.submits) == 1


def test_rerun_after_a_failed_job_asks_for_a_new_one(emu: ApiframeEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("FAILED", "upstream generation error")
    provider = make_provider(emu, clock)
    with pytest.raises(ProviderUnavailable):
        provider.generate(make_request(), MemoryJobStore())
    assert len(provider.generate(make_request(), MemoryJobStore()).images) == 1
    keys = [s.headers["idempotency-key"] for s in emu.calls("submit")]
    assert keys[0] == keys[1] != keys[2]  # replayed the failure, then a key derived from it
    assert len(emu.submits) == 2
