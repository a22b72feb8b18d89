"""ReplicateProvider against the Replicate emulator: real HTTP on 127.0.0.1, a fake clock. What
only Replicate does: the ``input`` body, size keywords vs custom pixels, its problem documents,
``canceled`` predictions. What every host does (retries, timeouts, failed and refused
predictions, broken downloads, resume, concurrency, the key) is in test_provider_contract.py."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from assetbuild.errors import ProviderRequestError, ProviderUnavailable, UserError
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.replicate import ReplicateProvider, size_fields
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import reference, sizes
from tests.fakes.replicate import ReplicateEmulator

KEY = "test-key-SECRET-123"
ENV = {"REPLICATE_API_TOKEN": KEY}


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
    assert jobs.get(provider.job_key(make_request())) is not None  # handed back (job_key): the executor forgets it


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
        "prompt": "a red fox in snow. Generate 3 different images.", "size": "custom", "width": 1024,
        "height": 1024, "sequential_image_generation": "auto", "max_images": 3, "enhance_prompt": False}


@pytest.mark.parametrize("status", ["queued", "booting", None])
def test_only_documented_terminal_statuses_end_a_prediction(emu: ReplicateEmulator, clock: FakeClock,
                                                            status: Any) -> None:
    emu.fail_next("get", status=200, body={"id": "p", "status": status, "output": None}, times=2)
    result = make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert len(result.images) == 1 and len(emu.submits) == 1


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


# -- failed predictions ------------------------------------------------------------------------


def test_canceled_prediction_is_unavailable(emu: ReplicateEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("canceled")
    with pytest.raises(ProviderUnavailable, match="ended canceled") as info:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert info.value.code == "canceled"
