"""AtlasCloudProvider against the Atlas Cloud emulator: real HTTP on 127.0.0.1, a fake clock."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import httpx
import pytest

from assetbuild.errors import ProviderError, ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from assetbuild.models import ProviderConfig
from assetbuild.providers.atlascloud import AtlasCloudProvider
from assetbuild.providers.base import GenerationRequest, MemoryJobStore, ReferenceImage
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import dims, generate_in_threads
from tests.fakes.server import make_jpeg, make_png

KEY = "test-key-SECRET-123"
ENV = {"ATLASCLOUD_API_KEY": KEY}

MakeProvider = Callable[..., AtlasCloudProvider]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[AtlasCloudEmulator]:
    with AtlasCloudEmulator(api_key=KEY, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def make_provider(emu: AtlasCloudEmulator, clock: FakeClock) -> Iterator[MakeProvider]:
    made: list[AtlasCloudProvider] = []

    def make(env: dict[str, str] = ENV, **config: Any) -> AtlasCloudProvider:
        provider = AtlasCloudProvider("atlas", ProviderConfig(type="atlascloud", base_url=emu.base_url, **config),
                                      env=env, clock=clock)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = dict(asset_id="hero", fingerprint="fp-hero", prompt="A fox on a hill",
                                  model="seedream-4.0", width=1280, height=720, size="1280x720")
    fields.update(overrides)
    return GenerationRequest(**fields)


def png_ref(width: int = 64, height: int = 48, label: str = "brand/palette.png") -> ReferenceImage:
    return ReferenceImage(label, make_png(width, height), "image/png", width, height)


def envelope(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "data": data}


# -- the documented request, and images back --------------------------------------------------


def test_text_to_image_sends_exact_pixels(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    jobs = MemoryJobStore()
    provider = make_provider()
    result = provider.generate(request(), jobs)

    assert [dims(img) for img in result.images] == [(1280, 720)]
    assert result.model_id == "bytedance/seedream-v4" and result.cost_usd == pytest.approx(0.027)
    (submit,) = emu.submits
    assert submit.json == {"model": "bytedance/seedream-v4", "prompt": "A fox on a hill", "size": "1280*720"}
    assert submit.headers["authorization"] == f"Bearer {KEY}"
    assert submit.headers["content-type"] == "application/json"
    assert submit.headers["user-agent"].startswith("assetbuild/")
    assert [r.route for r in emu.requests] == ["generate", "prediction", "prediction", "result"]
    assert result.request_id == emu.calls("prediction")[0].match["id"]
    assert all("authorization" not in r.headers for r in emu.calls("result"))
    assert jobs.get(provider.job_key(request())) is None


@pytest.mark.parametrize("shape", ["url", "data.download_url"])
def test_edit_uploads_references_with_upload_media(
    emu: AtlasCloudEmulator, make_provider: MakeProvider, shape: str
) -> None:
    emu.upload_shape = shape
    refs = (png_ref(), ReferenceImage("@logo", make_jpeg(40, 40), "image/jpeg", 40, 40))
    result = make_provider().generate(request(references=refs), MemoryJobStore())

    assert [dims(img) for img in result.images] == [(1280, 720)]
    assert result.model_id == "bytedance/seedream-v4/edit"
    uploads = emu.calls("upload")
    assert [u.multipart()["file"] for u in uploads] == [
        ("reference.png", refs[0].data), ("reference.jpeg", refs[1].data),
    ]
    assert all(u.headers["authorization"] == f"Bearer {KEY}" for u in uploads)
    (submit,) = emu.submits
    assert submit.json == {"model": "bytedance/seedream-v4/edit", "prompt": "A fox on a hill", "size": "1280*720",
                           "images": list(emu.files)}


def test_count_three_uses_the_sequential_model(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    result = make_provider().generate(request(count=3), MemoryJobStore())

    assert [dims(img) for img in result.images] == [(1280, 720)] * 3
    assert result.model_id == "bytedance/seedream-v4/sequential" and result.cost_usd == pytest.approx(0.081)
    assert emu.submits[0].json == {"model": "bytedance/seedream-v4/sequential", "size": "1280*720", "max_images": 3,
                                   "prompt": "A fox on a hill. Generate 3 different images."}


def test_references_and_count_use_edit_sequential(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    result = make_provider().generate(request(count=2, references=(png_ref(),)), MemoryJobStore())
    assert len(result.images) == 2
    body = emu.submits[0].json
    assert body["model"] == "bytedance/seedream-v4/edit-sequential" and body["max_images"] == 2
    assert body["images"] == list(emu.files)


def test_seedream_45_seed_params_and_succeeded_status(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.success_status = "succeeded"
    req = request(model="seedream-4.5", width=2560, height=1440, size="16:9", seed=7,
                  params={"enable_sync_mode": False})
    result = make_provider().generate(req, MemoryJobStore())

    assert [dims(img) for img in result.images] == [(2560, 1440)]
    assert result.model_id == "bytedance/seedream-v4.5" and result.cost_usd == pytest.approx(0.036)
    assert emu.submits[0].json == {"model": "bytedance/seedream-v4.5", "prompt": "A fox on a hill",
                                   "size": "2560*1440", "seed": 7, "enable_sync_mode": False}


def test_base64_outputs_are_decoded(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    result = make_provider().generate(request(params={"enable_base64_output": True}), MemoryJobStore())
    assert [dims(img) for img in result.images] == [(1280, 720)]
    assert emu.calls("result") == []


@pytest.mark.parametrize(("overrides", "words"), [
    ({"model": "seedream-4.5", "count": 2, "references": (png_ref(),)}, "edit-sequential"),
    ({"watermark": True}, "no watermark"),
    ({"references": tuple(png_ref(label=f"r{i}.png") for i in range(11))}, "at most 10 reference"),
])
def test_limits_are_checked_before_sending(overrides: dict[str, Any], words: str) -> None:
    provider = AtlasCloudProvider("atlas", ProviderConfig(type="atlascloud"), env={})
    with pytest.raises(UserError, match="provider atlas \\(atlascloud\\)") as info:
        provider.validate(request(**overrides))
    assert words in str(info.value)


def test_a_client_without_a_user_agent_is_blocked(emu: AtlasCloudEmulator) -> None:
    response = httpx.post(f"{emu.url}/api/v1/model/generateImage", headers={"Authorization": f"Bearer {KEY}"}, json={})
    assert response.status_code == 403 and b"1010" in response.content


# -- faults -----------------------------------------------------------------------------------


def test_429_waits_retry_after_then_recovers(emu: AtlasCloudEmulator, make_provider: MakeProvider,
                                             clock: FakeClock) -> None:
    emu.fail_next("generate", status=429, headers={"Retry-After": "7"}, body=envelope(429, "too many requests"))
    assert len(make_provider().generate(request(), MemoryJobStore()).images) == 1
    assert 7.0 in clock.sleeps
    assert len(emu.calls("generate")) == 2 and len(emu.submits) == 1


def test_429_attempts_are_bounded(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("generate", status=429, body=envelope(429, "too many requests"), times=3)  # no Retry-After (§3.5)
    with pytest.raises(ProviderUnavailable, match="after 3 attempts"):
        make_provider(max_attempts=3).generate(request(), MemoryJobStore())
    assert len(emu.calls("generate")) == 3 and emu.submits == []


def test_500_on_poll_recovers(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("prediction", status=500, body=envelope(500, "internal error"), times=2)
    assert len(make_provider().generate(request(), MemoryJobStore()).images) == 1


def test_persistent_500_is_unavailable_after_max_attempts(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("generate", status=503, body=envelope(503, "service unavailable"), times=4)
    with pytest.raises(ProviderUnavailable, match="service unavailable") as info:
        make_provider(max_attempts=4).generate(request(), MemoryJobStore())
    assert info.value.code == "503" and "after 4 attempts" in str(info.value)
    assert len(emu.calls("generate")) == 4


def test_poll_timeout_is_retried(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("prediction", delay_s=1.0)
    assert len(make_provider(timeout_s=0.3).generate(request(), MemoryJobStore()).images) == 1
    assert len(emu.calls("prediction")) == 3


def test_submit_timeout_is_not_retried(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("generate", delay_s=1.0, then_handle=True)  # Atlas has no idempotency key: a retry bills twice
    with pytest.raises(ProviderUnavailable, match="not retried"):
        make_provider(timeout_s=0.3).generate(request(), MemoryJobStore())
    assert len(emu.calls("generate")) == 1
    deadline = time.monotonic() + 3
    while not emu.submits and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(emu.submits) == 1


@pytest.mark.parametrize(("code", "message", "error"), [
    (None, "inference failed: CUDA out of memory", ProviderUnavailable),
    (1039, "rejected by content moderation", ProviderRefused),
    (None, "Output flagged as NSFW", ProviderRefused),
])
def test_failed_prediction_is_reported(emu: AtlasCloudEmulator, make_provider: MakeProvider,
                                       code: int | None, message: str, error: type[ProviderError]) -> None:
    emu.fail_next_job(code, message)
    jobs = MemoryJobStore()
    provider = make_provider()
    with pytest.raises(error, match=f"prediction .* failed: {message}") as info:
        provider.generate(request(), jobs)
    assert type(info.value) is error and info.value.code == (None if code is None else str(code))
    assert len(emu.submits) == 1
    assert jobs.get(provider.job_key(request())) is None


@pytest.mark.parametrize(("code", "error"), [(402, ProviderRequestError), (500, ProviderUnavailable)])
def test_an_envelope_error_under_http_200(emu: AtlasCloudEmulator, make_provider: MakeProvider,
                                          code: int, error: type[ProviderError]) -> None:
    emu.fail_next("generate", status=200, body=envelope(code, "insufficient balance"))
    with pytest.raises(error, match="generateImage failed: insufficient balance") as info:
        make_provider().generate(request(), MemoryJobStore())
    assert type(info.value) is error and info.value.code == str(code)
    assert len(emu.calls("generate")) == 1  # not retried


def test_http_4xx_is_not_retried(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    with pytest.raises(ProviderRequestError, match="HTTP 400: size 640\\*480 is outside") as info:
        make_provider().generate(request(width=640, height=480), MemoryJobStore())
    assert info.value.code == "400" and len(emu.calls("generate")) == 1


@pytest.mark.parametrize(("kind", "error", "words"), [
    ("expired", ProviderRequestError, "HTTP 403"),
    ("truncated", ProviderUnavailable, "does not decode"),
    ("not_image", ProviderUnavailable, "does not decode"),
])
def test_broken_result_downloads(emu: AtlasCloudEmulator, make_provider: MakeProvider,
                                 kind: str, error: type[ProviderError], words: str) -> None:
    emu.break_next_result(kind)
    with pytest.raises(error, match=words):
        make_provider().generate(request(), MemoryJobStore())


def test_a_result_of_the_wrong_size_is_rejected(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    url = emu.serve_result(make_jpeg(1024, 1024), "jpeg")
    done = {"id": "x", "status": "completed", "outputs": [url]}
    emu.fail_next("prediction", status=200, body=envelope(200, "", done))
    with pytest.raises(ProviderUnavailable, match="1024x1024 image where 1280x720 was promised"):
        make_provider().generate(request(), MemoryJobStore())


def test_fewer_images_than_asked_carry_the_ones_made(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.short_next_job(1)
    with pytest.raises(ProviderUnavailable, match="made 1 of the 3 images") as info:
        make_provider().generate(request(count=3), MemoryJobStore())
    assert [dims(img) for img in info.value.images] == [(1280, 720)]


# -- resume -----------------------------------------------------------------------------------


def test_a_crash_while_polling_resumes_the_prediction(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.polls_until_done = 3
    jobs = MemoryJobStore()
    with pytest.raises(ProviderUnavailable, match="still running"):
        make_provider(poll_timeout_s=1.0).generate(request(references=(png_ref(),)), jobs)
    assert jobs.get(make_provider().job_key(request())) is not None

    result = make_provider().generate(request(references=(png_ref(),)), jobs)  # a new build process
    assert len(result.images) == 1
    assert len(emu.submits) == 1 and len(emu.calls("upload")) == 1  # no new submit, no new upload
    assert {r.match["id"] for r in emu.calls("prediction")} == {result.request_id}
    assert jobs.get(make_provider().job_key(request())) is None


def test_a_resumed_prediction_the_host_forgot_is_submitted_anew(emu: AtlasCloudEmulator,
                                                                make_provider: MakeProvider) -> None:
    jobs = MemoryJobStore()
    provider = make_provider(poll_timeout_s=1.0)
    emu.polls_until_done = 3
    with pytest.raises(ProviderUnavailable, match="still running"):
        provider.generate(request(), jobs)
    emu.forget_predictions()
    emu.polls_until_done = 1
    result = make_provider().generate(request(), jobs)
    assert len(result.images) == 1 and len(emu.submits) == 2


# -- concurrency and secrets ------------------------------------------------------------------


def test_concurrency_limit_holds(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.hold_s = 0.05
    requests = [request(asset_id=f"a{i}", fingerprint=f"fp-{i}") for i in range(6)]
    results, errors = generate_in_threads(make_provider(concurrency=2), requests)
    assert errors == [] and [len(result.images) for result in results] == [1] * 6
    assert 1 <= emu.max_in_flight <= 2


def test_the_key_never_appears_in_errors(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("generate", status=401, body=envelope(401, f"invalid key {KEY}"))
    with pytest.raises(ProviderRequestError) as unauthorized:
        make_provider().generate(request(), MemoryJobStore())
    emu.fail_next("generate", status=500, body=envelope(500, f"key {KEY} broke us"), times=2)
    with pytest.raises(ProviderUnavailable) as server_error:
        make_provider(max_attempts=2).generate(request(), MemoryJobStore())
    emu.fail_next("generate", status=200, body=envelope(403, f"key {KEY} is disabled"))
    with pytest.raises(ProviderRequestError) as in_envelope:
        make_provider().generate(request(), MemoryJobStore())
    emu.fail_next_job(None, f"upstream rejected {KEY}")
    with pytest.raises(ProviderUnavailable) as failed:
        make_provider().generate(request(), MemoryJobStore())
    for info in (unauthorized, server_error, in_envelope, failed):
        assert KEY not in str(info.value) and "***" in str(info.value)


def test_a_wrong_key_is_a_request_error(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    wrong = "wrong-key-SECRET-456"
    with pytest.raises(ProviderRequestError, match="Unauthorized") as info:
        make_provider(env={"ATLASCLOUD_API_KEY": wrong}).generate(request(), MemoryJobStore())
    assert wrong not in str(info.value) and info.value.status == 401


def test_params_may_not_override_the_fields_assetbuild_sets() -> None:
    from assetbuild.errors import UserError
    from assetbuild.models import ProviderConfig
    from assetbuild.providers.base import GenerationRequest
    from assetbuild.providers.atlascloud import AtlasCloudProvider

    provider = AtlasCloudProvider("h", ProviderConfig(type="atlascloud"), env={})
    request = GenerationRequest("a", "f" * 64, "x", "seedream-4.0", 2048, 2048, "2K", params={"size": "1:1"})
    with pytest.raises(UserError, match="params may not set size"):
        provider.validate(request)
