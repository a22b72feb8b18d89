"""ReplicateProvider against the Replicate emulator: real HTTP on 127.0.0.1, a fake clock."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from assetbuild.errors import ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from assetbuild.models import ProviderConfig
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.replicate import ReplicateProvider, size_fields
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import generate_in_threads, reference, sizes
from tests.fakes.replicate import ReplicateEmulator

KEY = "test-key-SECRET-123"
ENV = {"REPLICATE_API_TOKEN": KEY}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[ReplicateEmulator]:
    with ReplicateEmulator(api_key=KEY, clock=clock) as emulator:
        yield emulator


def make_provider(emu: ReplicateEmulator, clock: FakeClock, **config: Any) -> ReplicateProvider:
    return ReplicateProvider("rep", ProviderConfig(type="replicate", base_url=emu.base_url, **config),
                             env=ENV, clock=clock)


def make_request(**fields: Any) -> GenerationRequest:
    base: dict[str, Any] = dict(asset_id="hero", fingerprint="fp-hero", prompt="a red fox in snow",
                                model="seedream-4.0", width=1024, height=1024, size="1024x1024")
    return GenerationRequest(**{**base, **fields})


# -- what is sent ------------------------------------------------------------------------------


def test_text_to_image_sends_documented_fields(emu: ReplicateEmulator, clock: FakeClock) -> None:
    jobs = MemoryJobStore()
    provider = make_provider(emu, clock)
    result = provider.generate(make_request(width=1536, height=1024), jobs)

    assert sizes(result) == [(1536, 1024)]
    assert (result.model_id, result.cost_usd) == ("bytedance/seedream-4", 0.03)
    [submit] = emu.submits
    assert submit.path == "/v1/models/bytedance/seedream-4/predictions"
    assert submit.json == {"input": {"prompt": "a red fox in snow", "size": "custom", "width": 1536, "height": 1024,
                                     "sequential_image_generation": "disabled", "max_images": 1}}
    assert submit.headers["authorization"] == f"Bearer {KEY}"
    assert "prefer" not in submit.headers  # we poll; the submit stays short
    assert [r.path for r in emu.calls("get")] == [f"/v1/predictions/{result.request_id}"] * 2
    assert emu.calls("result") and all("authorization" not in r.headers for r in emu.calls("result"))
    assert jobs.get(provider.job_key(make_request())) is None


def test_edit_sends_references_as_data_urls(emu: ReplicateEmulator, clock: FakeClock) -> None:
    refs = tuple(reference(320, 240, "png", f"ref{i}.png") for i in range(12))
    request = make_request(model="seedream-4.5", width=2048, height=2048, size="2K", references=refs)
    result = make_provider(emu, clock).generate(request, MemoryJobStore())

    assert sizes(result) == [(2048, 2048)]
    assert (result.model_id, result.cost_usd) == ("bytedance/seedream-4.5", 0.04)
    [submit] = emu.submits
    assert submit.path == "/v1/models/bytedance/seedream-4.5/predictions"
    assert submit.json["input"]["image_input"] == [r.data_url() for r in refs]


def test_count_three_is_sequential_generation(emu: ReplicateEmulator, clock: FakeClock) -> None:
    result = make_provider(emu, clock).generate(make_request(count=3, params={"input": {"enhance_prompt": False}}),
                                                MemoryJobStore())
    assert sizes(result) == [(1024, 1024)] * 3
    assert result.cost_usd == pytest.approx(0.09)
    assert emu.submits[0].json["input"] == {
        "prompt": "a red fox in snow", "size": "custom", "width": 1024, "height": 1024,
        "sequential_image_generation": "auto", "max_images": 3, "enhance_prompt": False}


def test_size_outside_custom_range_uses_nearest_keyword_and_ratio(emu: ReplicateEmulator, clock: FakeClock) -> None:
    result = make_provider(emu, clock).generate(make_request(width=1280, height=720, size="16:9"), MemoryJobStore())
    inputs = emu.submits[0].json["input"]
    assert (inputs["size"], inputs["aspect_ratio"]) == ("1K", "16:9")
    assert "width" not in inputs and "height" not in inputs
    assert len(result.images) == 1  # the host picks the pixels: decoded, size not checked


@pytest.mark.parametrize("model, width, height, expected", [
    ("seedream-4.5", 5504, 3040, ({"size": "4K", "aspect_ratio": "16:9"}, False)),
    ("seedream-4.5", 6240, 2656, ({"size": "4K", "aspect_ratio": "21:9"}, False)),
    ("seedream-4.0", 3840, 960, ({"size": "2K", "aspect_ratio": "21:9"}, False)),
    ("seedream-4.0", 4096, 4096, ({"size": "custom", "width": 4096, "height": 4096}, True)),
])
def test_size_mapping(model: str, width: int, height: int, expected: tuple[dict[str, Any], bool]) -> None:
    assert size_fields(model, width, height) == expected


def test_single_string_output_is_accepted(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.output_shape = "string"
    assert sizes(make_provider(emu, clock).generate(make_request(), MemoryJobStore())) == [(1024, 1024)]


# -- limits checked before anything is sent ----------------------------------------------------


@pytest.mark.parametrize("fields, words", [
    (dict(references=tuple(reference(64, 64) for _ in range(11))), "at most 10 reference images"),
    (dict(count=5, references=tuple(reference(64, 64) for _ in range(11)), model="seedream-4.5",
          width=2048, height=2048), "references \\+ outputs <= 15"),
    (dict(watermark=True), "no watermark option"),
    (dict(params={"input": {"max_images": 4}}), "params may not set input.max_images"),
])
def test_out_of_range_requests_are_user_errors(emu: ReplicateEmulator, clock: FakeClock,
                                               fields: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=words):
        make_provider(emu, clock).generate(make_request(**fields), MemoryJobStore())
    assert emu.requests == []


def test_validation_error_is_read_from_the_problem_document(emu: ReplicateEmulator, clock: FakeClock) -> None:
    request = make_request(params={"input": {"enhance_prompt": "yes"}, "webhook_url": "https://x.invalid"})
    with pytest.raises(ProviderRequestError, match="HTTP 422: Input validation failed: webhook_url: "
                                                   "Additional property .*; input.enhance_prompt: Invalid type"):
        make_provider(emu, clock).generate(request, MemoryJobStore())
    assert len(emu.calls("create")) == 1


# -- transient faults --------------------------------------------------------------------------


def test_429_waits_retry_after(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("create", status=429, headers={"Retry-After": "3"},
                  body={"title": "Request was throttled.", "detail": "Expected available in 3 seconds.", "status": 429})
    make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert 3.0 in clock.sleeps
    assert len(emu.calls("create")) == 2 and len(emu.submits) == 1


def test_persistent_429_is_bounded_by_max_attempts(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("create", status=429, headers={"Retry-After": "2"}, times=10)
    with pytest.raises(ProviderUnavailable, match="HTTP 429.*after 3 attempts"):
        make_provider(emu, clock, max_attempts=3).generate(make_request(), MemoryJobStore())
    assert len(emu.calls("create")) == 3 and clock.sleeps == [2.0, 2.0]


def test_500_on_polls_recovers(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("get", status=500, times=2)
    assert len(make_provider(emu, clock).generate(make_request(), MemoryJobStore()).images) == 1
    assert len(emu.calls("get")) == 4


def test_persistent_500_gives_up_after_max_attempts(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("get", status=500, times=10)
    provider = make_provider(emu, clock, max_attempts=3)
    jobs = MemoryJobStore()
    with pytest.raises(ProviderUnavailable, match="after 3 attempts"):
        provider.generate(make_request(), jobs)
    assert len(emu.calls("get")) == 3
    assert jobs.get(provider.job_key(make_request())) is not None


def test_timed_out_poll_is_retried(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("get", delay_s=1.0)
    assert len(make_provider(emu, clock, timeout_s=0.3).generate(make_request(), MemoryJobStore()).images) == 1


def test_timed_out_submit_is_not_retried(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("create", delay_s=1.0)
    with pytest.raises(ProviderUnavailable, match="not retried"):
        make_provider(emu, clock, timeout_s=0.3).generate(make_request(), MemoryJobStore())
    assert len(emu.calls("create")) == 1


# -- failed predictions and broken results -----------------------------------------------------


def test_failed_prediction_is_reported_with_its_code(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("E001", "Prediction failed: CUDA out of memory")
    provider = make_provider(emu, clock)
    jobs = MemoryJobStore()
    with pytest.raises(ProviderUnavailable, match="failed: Prediction failed: CUDA out of memory") as info:
        provider.generate(make_request(), jobs)
    assert info.value.code == "E001" and len(emu.calls("create")) == 1
    assert jobs.get(provider.job_key(make_request())) is None


def test_flagged_prediction_is_refused(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("E005", "The input or output was flagged as sensitive. Please try again with different inputs.")
    with pytest.raises(ProviderRefused, match="flagged as sensitive") as info:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert info.value.code == "E005" and len(emu.calls("create")) == 1


def test_canceled_prediction_is_unavailable(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("canceled")
    with pytest.raises(ProviderUnavailable, match="ended canceled") as info:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert info.value.code == "canceled"


def test_fewer_images_than_asked_keeps_the_ones_made(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.batch_limit = 1
    with pytest.raises(ProviderUnavailable, match="made 1 of the 3 images asked for") as info:
        make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())
    assert len(info.value.images) == 1


@pytest.mark.parametrize("kind, error, words", [
    ("expired", ProviderRequestError, "result download returned HTTP 403"),
    ("truncated", ProviderUnavailable, "does not decode"),
    ("not_image", ProviderUnavailable, "does not decode"),
])
def test_broken_download_is_a_clear_error(emu: ReplicateEmulator, clock: FakeClock, kind: str,
                                          error: type[Exception], words: str) -> None:
    emu.break_next_result(kind)
    with pytest.raises(error, match=words):
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())


# -- resume, concurrency, secrets --------------------------------------------------------------


def test_crash_while_polling_resumes_without_a_new_submit(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.polls_until_done = 50
    provider = make_provider(emu, clock, poll_timeout_s=5.0)
    jobs = MemoryJobStore()
    with pytest.raises(ProviderUnavailable, match="still running"):
        provider.generate(make_request(), jobs)
    emu.polls_until_done = 0
    assert len(provider.generate(make_request(), jobs).images) == 1
    assert len(emu.calls("create")) == 1
    assert jobs.get(provider.job_key(make_request())) is None


def test_resumed_prediction_unknown_to_the_host_is_submitted_anew(emu: ReplicateEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    jobs = MemoryJobStore()
    jobs.put(provider.job_key(make_request()), {"id": "gone"})
    assert len(provider.generate(make_request(), jobs).images) == 1
    assert len(emu.submits) == 1 and emu.calls("get")[0].path == "/v1/predictions/gone"


def test_concurrency_limit_holds(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.hold_s = 0.05
    provider = make_provider(emu, clock, concurrency=2)
    requests = [make_request(fingerprint=f"fp-{i}", asset_id=f"a{i}") for i in range(6)]
    results, errors = generate_in_threads(provider, requests)
    assert errors == [] and len(results) == 6
    assert emu.max_in_flight <= 2


def test_key_never_appears_in_errors(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next("create", status=401, body={"title": "Unauthenticated", "detail": f"bad token {KEY}", "status": 401})
    with pytest.raises(ProviderRequestError) as unauthorized:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    emu.fail_next("create", status=500, body={"detail": f"crash {KEY}"}, times=2)
    with pytest.raises(ProviderUnavailable) as server_error:
        make_provider(emu, clock, max_attempts=2).generate(make_request(), MemoryJobStore())
    emu.fail_next_job("E001", f"worker saw {KEY}")
    with pytest.raises(ProviderUnavailable) as failed:
        make_provider(emu, clock).generate(make_request(fingerprint="fp-2"), MemoryJobStore())
    for info in (unauthorized, server_error, failed):
        assert KEY not in str(info.value) and "***" in str(info.value)


def test_wrong_key_is_a_request_error(emu: ReplicateEmulator, clock: FakeClock) -> None:
    provider = ReplicateProvider("rep", ProviderConfig(type="replicate", base_url=emu.base_url),
                                 env={"REPLICATE_API_TOKEN": "r8_wrong"}, clock=clock)
    with pytest.raises(ProviderRequestError, match="HTTP 401: Unauthenticated") as info:
        provider.generate(make_request(), MemoryJobStore())
    assert "r8_wrong" not in str(info.value)
