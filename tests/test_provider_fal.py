"""FalProvider against the fal queue emulator: real HTTP on 127.0.0.1, a fake clock."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from assetbuild.errors import ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from assetbuild.models import ProviderConfig
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.fal import FalProvider
from tests.fakes.clock import FakeClock
from tests.fakes.fal import FalEmulator
from tests.fakes.helpers import generate_in_threads, reference, sizes

KEY = "test-key-SECRET-123"
ENV = {"FAL_KEY": KEY}
QUEUE = "/fal-ai/bytedance/requests"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[FalEmulator]:
    with FalEmulator(api_key=KEY, clock=clock) as emulator:
        yield emulator


def make_provider(emu: FalEmulator, clock: FakeClock, **config: Any) -> FalProvider:
    return FalProvider("fal", ProviderConfig(type="fal", base_url=emu.base_url, **config), env=ENV, clock=clock)


def make_request(**fields: Any) -> GenerationRequest:
    base: dict[str, Any] = dict(asset_id="hero", fingerprint="fp-hero", prompt="a red fox in snow",
                                model="seedream-4.0", width=1024, height=1024, size="1024x1024")
    return GenerationRequest(**{**base, **fields})


def polled_paths(emu: FalEmulator) -> list[str]:
    return [r.path for r in emu.requests if r.method == "GET" and r.route != "result"]


# -- what is sent ------------------------------------------------------------------------------


def test_text_to_image_sends_documented_fields(emu: FalEmulator, clock: FakeClock) -> None:
    jobs = MemoryJobStore()
    provider = make_provider(emu, clock)
    result = provider.generate(make_request(width=1280, height=960, seed=7), jobs)

    assert sizes(result) == [(1280, 960)]
    assert (result.model_id, result.cost_usd) == ("fal-ai/bytedance/seedream/v4/text-to-image", 0.03)
    [submit] = emu.submits
    assert submit.path == "/fal-ai/bytedance/seedream/v4/text-to-image"
    assert submit.json == {"prompt": "a red fox in snow", "image_size": {"width": 1280, "height": 960},
                           "num_images": 1, "max_images": 1, "seed": 7}
    assert submit.headers["authorization"] == f"Key {KEY}"
    assert submit.headers["content-type"] == "application/json"
    rid = result.request_id
    # Polled under the two-segment app path, never under the full model path (§7.6).
    assert polled_paths(emu) == [f"{QUEUE}/{rid}/status", f"{QUEUE}/{rid}/status", f"{QUEUE}/{rid}"]
    assert emu.calls("result") and all("authorization" not in r.headers for r in emu.calls("result"))
    assert jobs.get(provider.job_key(make_request())) is None


def test_edit_sends_references_as_data_uris(emu: FalEmulator, clock: FakeClock) -> None:
    refs = (reference(640, 480, "png"), reference(300, 500, "jpeg", "@mood"))
    request = make_request(model="seedream-4.5", width=2048, height=2048, size="2K", references=refs)
    result = make_provider(emu, clock).generate(request, MemoryJobStore())

    assert sizes(result) == [(2048, 2048)]
    assert (result.model_id, result.cost_usd) == ("fal-ai/bytedance/seedream/v4.5/edit", 0.04)
    [submit] = emu.submits
    assert submit.path == "/fal-ai/bytedance/seedream/v4.5/edit"
    assert submit.json["image_urls"] == [r.data_url() for r in refs]
    assert submit.json["image_urls"][1].startswith("data:image/jpeg;base64,")


def test_count_three_is_num_images(emu: FalEmulator, clock: FakeClock) -> None:
    result = make_provider(emu, clock).generate(make_request(count=3, params={"enable_safety_checker": True}),
                                                MemoryJobStore())
    assert sizes(result) == [(1024, 1024)] * 3
    assert result.cost_usd == pytest.approx(0.09)
    assert emu.submits[0].json == {"prompt": "a red fox in snow", "image_size": {"width": 1024, "height": 1024},
                                   "num_images": 3, "max_images": 1, "enable_safety_checker": True}


@pytest.mark.parametrize("queue_urls", ["absent", "foreign"])
def test_queue_urls_are_built_from_the_app_prefix_when_missing_or_elsewhere(
        emu: FalEmulator, clock: FakeClock, queue_urls: str) -> None:
    emu.queue_urls = queue_urls
    result = make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    rid = result.request_id
    assert polled_paths(emu) == [f"{QUEUE}/{rid}/status", f"{QUEUE}/{rid}/status", f"{QUEUE}/{rid}"]


# -- limits checked before anything is sent ----------------------------------------------------


@pytest.mark.parametrize("fields, words", [
    (dict(references=tuple(reference(64, 64) for _ in range(11))), "at most 10 reference images"),
    (dict(count=7), "at most 6 images"),
    (dict(width=1280, height=720, references=(reference(64, 64),)), "1024 to 4096 px a side"),
    (dict(width=800, height=800), "960x960 to 4096x4096"),
    (dict(watermark=True), "no watermark option"),
    (dict(params={"image_size": "auto_4K"}), "params may not set image_size"),
])
def test_out_of_range_requests_are_user_errors(emu: FalEmulator, clock: FakeClock,
                                               fields: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=words):
        make_provider(emu, clock).generate(make_request(**fields), MemoryJobStore())
    assert emu.requests == []


def test_validation_error_is_read_from_detail(emu: FalEmulator, clock: FakeClock) -> None:
    with pytest.raises(ProviderRequestError, match="HTTP 422: enhance_prompt_mode: Input should be") as info:
        make_provider(emu, clock).generate(make_request(params={"enhance_prompt_mode": "turbo"}), MemoryJobStore())
    assert info.value.code == "enum" and len(emu.calls("submit")) == 1


# -- transient faults --------------------------------------------------------------------------


def test_429_waits_retry_after(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("submit", status=429, headers={"Retry-After": "4"},
                  body={"detail": [{"loc": ["body"], "msg": "Too many requests", "type": "rate_limited"}]})
    make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert 4.0 in clock.sleeps
    assert len(emu.calls("submit")) == 2 and len(emu.submits) == 1


def test_persistent_429_is_bounded_by_max_attempts(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("submit", status=429, headers={"Retry-After": "2"}, times=10)
    with pytest.raises(ProviderUnavailable, match="HTTP 429.*after 3 attempts"):
        make_provider(emu, clock, max_attempts=3).generate(make_request(), MemoryJobStore())
    assert len(emu.calls("submit")) == 3 and clock.sleeps == [2.0, 2.0]


def test_500_on_status_recovers(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("status", status=500, times=2)
    assert len(make_provider(emu, clock).generate(make_request(), MemoryJobStore()).images) == 1
    assert len(emu.calls("status")) == 4


def test_persistent_500_gives_up_after_max_attempts(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("submit", status=502, times=10)
    with pytest.raises(ProviderUnavailable, match="after 4 attempts"):
        make_provider(emu, clock, max_attempts=4).generate(make_request(), MemoryJobStore())
    assert len(emu.calls("submit")) == 4


def test_timed_out_status_poll_is_retried(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("status", delay_s=1.0)
    assert len(make_provider(emu, clock, timeout_s=0.3).generate(make_request(), MemoryJobStore()).images) == 1


def test_timed_out_submit_is_not_retried(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("submit", delay_s=1.0)
    with pytest.raises(ProviderUnavailable, match="not retried"):
        make_provider(emu, clock, timeout_s=0.3).generate(make_request(), MemoryJobStore())
    assert len(emu.calls("submit")) == 1


# -- failed requests and broken results --------------------------------------------------------


def test_failed_request_surfaces_on_the_result_call(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("image_load_error", "Failed to load the input image")
    provider = make_provider(emu, clock)
    jobs = MemoryJobStore()
    with pytest.raises(ProviderRequestError, match="Failed to load the input image") as info:
        provider.generate(make_request(), jobs)
    assert info.value.code == "image_load_error"
    assert len(emu.calls("submit")) == 1 and len(emu.calls("response")) == 1
    assert jobs.get(provider.job_key(make_request())) is None


def test_internal_failure_is_unavailable_with_its_type(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("internal_server_error", "Model crashed", status=500)
    with pytest.raises(ProviderUnavailable, match="Model crashed") as info:
        make_provider(emu, clock, max_attempts=2).generate(make_request(), MemoryJobStore())
    assert info.value.code == "internal_server_error" and len(emu.calls("submit")) == 1


def test_content_policy_violation_is_refused(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("content_policy_violation", "The content could not be processed")
    with pytest.raises(ProviderRefused) as info:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert info.value.code == "content_policy_violation" and len(emu.calls("submit")) == 1


def test_fewer_images_than_asked_keeps_the_ones_made(emu: FalEmulator, clock: FakeClock) -> None:
    emu.batch_limit = 2
    with pytest.raises(ProviderUnavailable, match="made 2 of the 3 images asked for") as info:
        make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())
    assert len(info.value.images) == 2


@pytest.mark.parametrize("kind, error, words", [
    ("expired", ProviderRequestError, "result download returned HTTP 403"),
    ("truncated", ProviderUnavailable, "does not decode"),
    ("not_image", ProviderUnavailable, "does not decode"),
])
def test_broken_download_is_a_clear_error(emu: FalEmulator, clock: FakeClock, kind: str,
                                          error: type[Exception], words: str) -> None:
    emu.break_next_result(kind)
    with pytest.raises(error, match=words):
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())


# -- resume, concurrency, secrets --------------------------------------------------------------


def test_crash_while_polling_resumes_without_a_new_submit(emu: FalEmulator, clock: FakeClock) -> None:
    emu.polls_until_done = 50
    provider = make_provider(emu, clock, poll_timeout_s=5.0)
    jobs = MemoryJobStore()
    with pytest.raises(ProviderUnavailable, match="still running"):
        provider.generate(make_request(), jobs)
    emu.polls_until_done = 0
    assert len(provider.generate(make_request(), jobs).images) == 1
    assert len(emu.calls("submit")) == 1
    assert jobs.get(provider.job_key(make_request())) is None


def test_resumed_request_unknown_to_the_host_is_submitted_anew(emu: FalEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    jobs = MemoryJobStore()
    jobs.put(provider.job_key(make_request()), {"id": "gone", "status_url": f"{emu.url}{QUEUE}/gone/status",
                                                "response_url": f"{emu.url}{QUEUE}/gone"})
    assert len(provider.generate(make_request(), jobs).images) == 1
    assert len(emu.submits) == 1 and emu.calls("status")[0].path == f"{QUEUE}/gone/status"


def test_concurrency_limit_holds(emu: FalEmulator, clock: FakeClock) -> None:
    emu.hold_s = 0.05
    provider = make_provider(emu, clock, concurrency=2)
    requests = [make_request(fingerprint=f"fp-{i}", asset_id=f"a{i}") for i in range(6)]
    results, errors = generate_in_threads(provider, requests)
    assert errors == [] and len(results) == 6
    assert emu.max_in_flight <= 2


def test_key_never_appears_in_errors(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next("submit", status=401, body={"detail": f"Invalid key {KEY}"})
    with pytest.raises(ProviderRequestError) as unauthorized:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    emu.fail_next("submit", status=500, body={"detail": [{"loc": ["body"], "msg": f"crash {KEY}",
                                                          "type": "internal_server_error"}]}, times=2)
    with pytest.raises(ProviderUnavailable) as server_error:
        make_provider(emu, clock, max_attempts=2).generate(make_request(), MemoryJobStore())
    for info in (unauthorized, server_error):
        assert KEY not in str(info.value) and "***" in str(info.value)


def test_wrong_key_is_a_request_error(emu: FalEmulator, clock: FakeClock) -> None:
    provider = FalProvider("fal", ProviderConfig(type="fal", base_url=emu.base_url), env={"FAL_KEY": "wrong-key-9"},
                           clock=clock)
    with pytest.raises(ProviderRequestError, match="HTTP 401") as info:
        provider.generate(make_request(), MemoryJobStore())
    assert "wrong-key-9" not in str(info.value)
