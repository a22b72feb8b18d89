"""AtlasCloudProvider against the Atlas Cloud emulator: real HTTP on 127.0.0.1, a fake clock. What
only Atlas does: exact pixels, the model variants, uploadMedia, its ``{code, message, data}``
envelope (even under HTTP 200) and the User-Agent block. What every host does (retries,
timeouts, failed and refused predictions, broken downloads, resume, concurrency, the key) is in
test_provider_contract.py."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import httpx
import pytest

from assetbuild.errors import ProviderError, ProviderRefused, ProviderRequestError, ProviderUnavailable, UserError
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.atlascloud import AtlasCloudProvider
from assetbuild.providers.base import MemoryJobStore, ReferenceImage
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import ProviderMaker, dims, png_ref, request
from tests.fakes.server import make_jpeg

KEY = "test-key-SECRET-123"
ENV = {"ATLASCLOUD_API_KEY": KEY}

MakeProvider = Callable[..., AtlasCloudProvider]


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[AtlasCloudEmulator]:
    with AtlasCloudEmulator(api_key=KEY, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def make_provider(emu: Any, clock: FakeClock) -> Iterator[MakeProvider]:
    maker = ProviderMaker(AtlasCloudProvider, "atlas", emu.base_url, ENV, clock)
    yield maker
    maker.close()


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
    assert jobs.get(provider.job_key(request())) is not None  # handed back (job_key): the executor forgets it


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


def test_seedream_45_params_and_succeeded_status_and_no_seed(emu: AtlasCloudEmulator,
                                                              make_provider: MakeProvider) -> None:
    emu.success_status = "succeeded"
    req = request(model="seedream-4.5", width=2560, height=1440, size="16:9", seed=7,
                  params={"enable_sync_mode": False})
    result = make_provider().generate(req, MemoryJobStore())

    assert [dims(img) for img in result.images] == [(2560, 1440)]
    assert result.model_id == "bytedance/seedream-v4.5" and result.cost_usd == pytest.approx(0.036)
    # no Atlas Seedream schema lists seed (§7.15): not sent
    assert emu.submits[0].json == {"model": "bytedance/seedream-v4.5", "prompt": "A fox on a hill",
                                   "size": "2560*1440", "enable_sync_mode": False}


def test_a_seed_in_params_is_still_sent(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    make_provider().generate(request(params={"seed": 7}), MemoryJobStore())
    assert emu.submits[0].json["seed"] == 7


def test_seedream_45_references_and_count_use_edit_sequential(emu: AtlasCloudEmulator,
                                                              make_provider: MakeProvider) -> None:
    req = request(model="seedream-4.5", width=2560, height=1440, size="16:9", count=2, references=(png_ref(),))
    result = make_provider().generate(req, MemoryJobStore())
    assert result.model_id == "bytedance/seedream-v4.5/edit-sequential" and len(result.images) == 2
    body = emu.submits[0].json
    assert body["model"] == "bytedance/seedream-v4.5/edit-sequential" and body["max_images"] == 2
    assert body["prompt"] == "A fox on a hill. Generate 2 different images."


@pytest.mark.parametrize("status", ["created", "queued", "starting", "in_progress", None, 7])
def test_only_documented_terminal_statuses_end_a_prediction(emu: AtlasCloudEmulator, make_provider: MakeProvider,
                                                            status: Any) -> None:
    """Issue 6, item 14: Atlas's own clients poll on through any status but completed,
    succeeded and failed; an unknown one used to count as failed and forget the paid job."""
    emu.fail_next("prediction", status=200, body=envelope(200, "", {"id": "x", "status": status}), times=3)
    result = make_provider().generate(request(), MemoryJobStore())
    assert len(result.images) == 1 and len(emu.submits) == 1
    assert len(emu.calls("prediction")) == 5  # three odd answers, then processing and completed


def test_base64_outputs_are_decoded(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    result = make_provider().generate(request(params={"enable_base64_output": True}), MemoryJobStore())
    assert [dims(img) for img in result.images] == [(1280, 720)]
    assert emu.calls("result") == []


@pytest.mark.parametrize(("overrides", "words"), [
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


def test_a_failure_in_words_of_moderation_is_a_refusal(emu: AtlasCloudEmulator, make_provider: MakeProvider) -> None:
    # A refusal by code (error_code 1039) and a failure without one: test_provider_contract.py
    emu.fail_next_job(None, "Output flagged as NSFW")
    jobs = MemoryJobStore()
    provider = make_provider()
    with pytest.raises(ProviderRefused, match="prediction .* failed: Output flagged as NSFW") as info:
        provider.generate(request(), jobs)
    assert type(info.value) is ProviderRefused and info.value.code is None
    assert len(emu.submits) == 1
    assert jobs.get(provider.job_key(request())) is not None  # handed back (job_key): the executor forgets it


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


def test_a_result_of_the_wrong_size_is_kept_with_a_warning(emu: AtlasCloudEmulator,
                                                          make_provider: MakeProvider) -> None:
    url = emu.serve_result(make_jpeg(1024, 1024), "jpeg")
    done = {"id": "x", "status": "completed", "outputs": [url]}
    emu.fail_next("prediction", status=200, body=envelope(200, "", done))
    result = make_provider().generate(request(), MemoryJobStore())
    assert [dims(image) for image in result.images] == [(1024, 1024)]
    assert result.warnings == ("asked 1280x720, got 1024x1024",)


# -- secrets ----------------------------------------------------------------------------------


def test_the_key_is_redacted_from_an_envelope_error_under_http_200(emu: AtlasCloudEmulator,
                                                                   make_provider: MakeProvider) -> None:
    emu.fail_next("generate", status=200, body=envelope(403, f"key {KEY} is disabled"))
    with pytest.raises(ProviderRequestError) as in_envelope:
        make_provider().generate(request(), MemoryJobStore())
    assert KEY not in str(in_envelope.value) and "***" in str(in_envelope.value)
