"""FalProvider against the fal queue emulator: real HTTP on 127.0.0.1, a fake clock. What only fal
does: the queue under the app's two-segment path (the trap of §7.6), image_size and num_images,
its 422 ``detail`` lists, failures surfacing on the result call. What every host does (retries,
timeouts, failed and refused requests, broken downloads, resume, concurrency, the key) is in
test_provider_contract.py."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from assetbuild.errors import ProviderRequestError, UserError
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.fal import FalProvider
from tests.fakes.clock import FakeClock
from tests.fakes.fal import FalEmulator
from tests.fakes.helpers import reference, sizes

KEY = "test-key-SECRET-123"
ENV = {"FAL_KEY": KEY}
QUEUE = "/fal-ai/bytedance/requests"


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
    assert jobs.get(provider.job_key(make_request())) is not None  # handed back (job_key): the executor forgets it


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


def test_queue_urls_on_another_host_are_built_from_the_app_prefix(emu: FalEmulator, clock: FakeClock) -> None:
    emu.queue_urls = "foreign"  # behind a proxy base_url, fal's URLs name fal's own queue host
    result = make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    rid = result.request_id
    assert polled_paths(emu) == [f"{QUEUE}/{rid}/status", f"{QUEUE}/{rid}/status", f"{QUEUE}/{rid}"]


# -- limits checked before anything is sent ----------------------------------------------------


@pytest.mark.parametrize("fields, words", [
    (dict(references=tuple(reference(64, 64) for _ in range(11))), "at most 10 reference images"),
    (dict(count=7), "at most 6 images"),
    (dict(width=1280, height=720, references=(reference(64, 64),)), "1024 to 4096 px a side"),
    (dict(width=800, height=800), "960x960 to 4096x4096"),
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


# -- failed requests ---------------------------------------------------------------------------


def test_failed_request_surfaces_on_the_result_call(emu: FalEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("image_load_error", "Failed to load the input image")
    provider = make_provider(emu, clock)
    jobs = MemoryJobStore()
    with pytest.raises(ProviderRequestError, match="Failed to load the input image") as info:
        provider.generate(make_request(), jobs)
    assert info.value.code == "image_load_error"
    assert len(emu.calls("submit")) == 1 and len(emu.calls("response")) == 1
    assert jobs.get(provider.job_key(make_request())) is not None  # handed back (job_key): the executor forgets it
