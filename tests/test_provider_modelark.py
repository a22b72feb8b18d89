"""ModelArk / Volcengine providers against the Ark emulator over real HTTP on 127.0.0.1: what
only Ark does (its request body, size and reference rules, codes, batches with per-image errors).
Retries, timeouts, refusals, broken downloads, short batches, concurrency and the key are tested
for both Ark providers, as for every host, in test_provider_contract.py."""

from __future__ import annotations

import base64
from typing import Any, Callable, Iterator

import httpx
import pytest

from assetbuild.errors import (
    ProviderRefused,
    ProviderRequestError,
    ProviderUnavailable,
    UserError,
)
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers import create_provider
from assetbuild.providers.base import GenerationRequest, MemoryJobStore, ReferenceImage
from assetbuild.providers.modelark import ModelArkProvider, VolcengineProvider
from tests.fakes.ark import ArkEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import dims
from tests.fakes.server import make_jpeg, make_png
from tests.test_provider_contract import messages

KEY = "test-key"
SECRET = "test-key-SECRET-123"


@pytest.fixture
def start_emulator(clock: FakeClock) -> Iterator[Callable[..., ArkEmulator]]:
    started: list[ArkEmulator] = []

    def start(**kwargs: Any) -> ArkEmulator:
        started.append(ArkEmulator(api_key=KEY, clock=clock, **kwargs).start())
        return started[-1]

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emu(start_emulator: Callable[..., ArkEmulator]) -> ArkEmulator:
    return start_emulator()


def make_provider(emu: ArkEmulator, clock: FakeClock, *, cls: type = ModelArkProvider, key: str = KEY,
                  **config: Any) -> ModelArkProvider:
    cfg = ProviderConfig(type=cls.type, base_url=emu.base_url, **config)
    return cls(cls.type, cfg, env={"ARK_API_KEY": key}, clock=clock)


def make_request(*, model: str = "seedream-4.0", width: int = 1280, height: int = 720, count: int = 1,
                 references: tuple[ReferenceImage, ...] = (), **fields: Any) -> GenerationRequest:
    return GenerationRequest(
        asset_id="hero", fingerprint=f"fp-{model}-{width}x{height}-{count}-{len(references)}",
        prompt="a red fox in the snow", model=model, width=width, height=height,
        size=f"{width}x{height}", count=count, references=references, **fields,
    )


def ref(label: str = "brand/palette.png", png: bool = True) -> ReferenceImage:
    data = make_png(64, 48) if png else make_jpeg(64, 48)
    return ReferenceImage(label, data, "image/png" if png else "image/jpeg", 64, 48)


def sent(emu: ArkEmulator, index: int = -1) -> dict[str, Any]:
    return emu.submits[index].json


# -- what is sent and what comes back -----------------------------------------------------------


def test_text_to_image_sends_the_documented_fields(emu: ArkEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    result = provider.generate(make_request(), MemoryJobStore())

    assert len(result.images) == 1 and dims(result.images[0]) == (1280, 720)
    assert result.model_id == "seedream-4-0-250828"
    assert result.cost_usd == pytest.approx(0.03)
    assert result.request_id
    assert sent(emu) == {
        "model": "seedream-4-0-250828",
        "prompt": "a red fox in the snow",
        "size": "1280x720",
        "sequential_image_generation": "disabled",
        "response_format": "url",
        "watermark": False,
    }
    request = emu.submits[0]
    assert request.path == "/api/v3/images/generations" and request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    downloads = emu.calls("result")
    assert len(downloads) == 1 and "authorization" not in downloads[0].headers


def test_edit_with_one_reference_sends_a_data_url_string(emu: ArkEmulator, clock: FakeClock) -> None:
    reference = ref()
    provider = make_provider(emu, clock)
    result = provider.generate(
        make_request(model="seedream-4.5", width=2560, height=1440, references=(reference,)), MemoryJobStore()
    )

    assert len(result.images) == 1 and dims(result.images[0]) == (2560, 1440)
    assert result.model_id == "seedream-4-5-251128"
    assert result.cost_usd == pytest.approx(0.04)
    body = sent(emu)
    assert body["image"] == "data:image/png;base64," + base64.b64encode(reference.data).decode()
    assert body["model"] == "seedream-4-5-251128" and body["size"] == "2560x1440"
    assert body["sequential_image_generation"] == "disabled" and body["watermark"] is False
    assert "sequential_image_generation_options" not in body


def test_several_references_are_sent_as_an_array(emu: ArkEmulator, clock: FakeClock) -> None:
    refs = (ref("a.png"), ref("b.jpg", png=False))
    make_provider(emu, clock).generate(make_request(references=refs), MemoryJobStore())

    image = sent(emu)["image"]
    assert isinstance(image, list) and len(image) == 2
    assert image[0].startswith("data:image/png;base64,") and image[1].startswith("data:image/jpeg;base64,")


def test_count_3_asks_for_a_sequential_batch_of_exactly_3(emu: ArkEmulator, clock: FakeClock) -> None:
    result = make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())

    assert len(result.images) == 3 and all(dims(img) == (1280, 720) for img in result.images)
    assert result.cost_usd == pytest.approx(0.09)
    body = sent(emu)
    assert body["sequential_image_generation"] == "auto"
    assert body["sequential_image_generation_options"] == {"max_images": 3}
    assert len(emu.submits) == 1 and len(emu.calls("result")) == 3


def test_volcengine_uses_its_own_model_ids(start_emulator: Callable[..., ArkEmulator], clock: FakeClock) -> None:
    emu = start_emulator(platform="volcengine")
    result = make_provider(emu, clock, cls=VolcengineProvider).generate(
        make_request(model="seedream-4.5", width=2048, height=2048), MemoryJobStore())
    assert result.model_id == "doubao-seedream-4-5-251128"
    assert sent(emu)["model"] == "doubao-seedream-4-5-251128"
    # A BytePlus id is unknown on Volcengine: a 404 that is not retried.
    with pytest.raises(ProviderRequestError) as err:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert err.value.code == "InvalidEndpointOrModel.NotFound" and err.value.status == 404
    assert len(emu.submits) == 2


def test_defaults_registry_and_lazy_key() -> None:
    ark = create_provider("ark", ProviderConfig(type="modelark"), env={})
    volc = create_provider("cn", ProviderConfig(type="volcengine"), env={})
    assert isinstance(ark, ModelArkProvider) and isinstance(volc, VolcengineProvider)
    assert ark.base_url == "https://ark.ap-southeast.bytepluses.com/api/v3"
    assert volc.base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert ark.key_env == volc.key_env == "ARK_API_KEY"
    assert volc.model_id("seedream-4.0") == "doubao-seedream-4-0-250828"
    assert ark.price_per_image("seedream-4.5") == 0.04
    ark.validate(make_request())  # planning needs no key
    with pytest.raises(UserError, match="ARK_API_KEY"):
        ark.generate(make_request(), MemoryJobStore())


def test_endpoint_id_override_is_sent(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.endpoints["ep-20260101-abc"] = "seedream-4-0-250828"
    provider = make_provider(emu, clock, model_ids={"seedream-4.0": "ep-20260101-abc"})
    result = provider.generate(make_request(), MemoryJobStore())
    assert sent(emu)["model"] == "ep-20260101-abc"
    assert result.model_id == "seedream-4-0-250828"  # what the host says made them


def test_watermark_seed_and_params(emu: ArkEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    provider.generate(make_request(watermark=True, seed=7), MemoryJobStore())
    body = sent(emu)
    assert body["watermark"] is True
    assert "seed" not in body  # providers.md §1.2: 4.x does not support seed

    params = {"seed": 42, "optimize_prompt_options": {"mode": "fast"}}
    provider.generate(make_request(params=params), MemoryJobStore())
    body = sent(emu)
    assert body["seed"] == 42 and body["optimize_prompt_options"] == {"mode": "fast"}


def test_params_may_not_ask_for_a_stream(emu: ArkEmulator, clock: FakeClock) -> None:
    # Overriding a modeled field (params.size) is refused for every host: test_provider_contract.py.
    with pytest.raises(UserError, match="stream"):
        make_provider(emu, clock).validate(make_request(params={"stream": True}))
    assert emu.submits == []


def test_b64_json_results_are_read(emu: ArkEmulator, clock: FakeClock) -> None:
    result = make_provider(emu, clock).generate(
        make_request(count=2, params={"response_format": "b64_json"}), MemoryJobStore())
    assert [dims(img) for img in result.images] == [(1280, 720)] * 2
    assert sent(emu)["response_format"] == "b64_json"
    assert emu.calls("result") == []


@pytest.mark.parametrize(("model", "width", "height"), [
    ("seedream-4.0", 800, 800),  # under 921,600 pixels
    ("seedream-4.5", 1500, 1500),  # under 3,686,400 pixels
    ("seedream-4.5", 4096, 4112),  # over 16,777,216 pixels
    ("seedream-4.0", 6000, 300),  # ratio 20:1
])
def test_sizes_outside_the_host_rules_are_refused_before_sending(
        emu: ArkEmulator, clock: FakeClock, model: str, width: int, height: int) -> None:
    provider = make_provider(emu, clock)
    with pytest.raises(UserError, match=r"\d+x\d+"):
        provider.generate(make_request(model=model, width=width, height=height), MemoryJobStore())
    assert emu.submits == []


def test_reference_limits_are_checked_before_sending(emu: ArkEmulator, clock: FakeClock) -> None:
    provider = make_provider(emu, clock)
    with pytest.raises(UserError, match="at most 14"):
        provider.validate(make_request(references=(ref(),) * 15))
    with pytest.raises(UserError, match="references \\+ outputs"):
        provider.validate(make_request(references=(ref(),) * 4, count=12))
    assert emu.submits == []


# -- the emulator is as strict as the host --------------------------------------------------


def post(emu: ArkEmulator, body: dict[str, Any], key: str = KEY) -> httpx.Response:
    return httpx.post(f"{emu.base_url}/images/generations", json=body,
                      headers={"Authorization": f"Bearer {key}"}, timeout=5)


@pytest.mark.parametrize("body", [
    {"model": "seedream-4-5-251128", "prompt": "p", "size": "1K"},  # 4.5 has no 1K
    {"model": "seedream-4-5-251128", "prompt": "p", "size": "1500x1500"},
    {"model": "seedream-4-0-250828", "prompt": "p", "size": "800x800"},
    {"model": "seedream-4-0-250828", "prompt": "p", "size": "2048*2048"},
    {"model": "seedream-4-0-250828", "prompt": "p", "image": "data:image/PNG;base64,AAAA"},
    {"model": "seedream-4-0-250828", "prompt": "p", "sequential_image_generation": "auto",
     "sequential_image_generation_options": {"max_images": 16}},
    {"model": "seedream-4-5-251128", "prompt": "p", "optimize_prompt_options": {"mode": "fast"}},
])
def test_emulator_rejects_invalid_requests(emu: ArkEmulator, body: dict[str, Any]) -> None:
    response = post(emu, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidParameter"


def test_emulator_auth_model_and_default_batch(emu: ArkEmulator) -> None:
    assert post(emu, {"model": "seedream-4-0-250828", "prompt": "p"}, key="nope").status_code == 401
    assert post(emu, {"model": "doubao-seedream-4-0-250828", "prompt": "p"}).status_code == 404
    assert post(emu, {"model": "seedream-4-0-250828"}).json()["error"]["code"] == "MissingParameter"
    # The trap: "auto" without max_images makes up to 15 images.
    many = post(emu, {"model": "seedream-4-0-250828", "prompt": "p; 15 images", "size": "1280x720",
                      "sequential_image_generation": "auto", "response_format": "b64_json"}).json()
    assert len(many["data"]) == 15 and many["usage"]["generated_images"] == 15
    # The model reads the count from the prompt (§7.10): a batch that does not state one makes one.
    one = post(emu, {"model": "seedream-4-0-250828", "prompt": "p", "size": "1280x720",
                     "sequential_image_generation": "auto", "response_format": "b64_json"}).json()
    assert one["usage"]["generated_images"] == 1


# -- faults -------------------------------------------------------------------------------------


def test_bad_request_is_not_retried(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("InvalidParameter", "The parameter `prompt` is too long.")
    with pytest.raises(ProviderRequestError) as err:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert err.value.code == "InvalidParameter" and err.value.status == 400
    assert "prompt` is too long" in str(err.value)
    assert len(emu.submits) == 1


@pytest.mark.parametrize("code", [  # SensitiveContentDetected itself: test_provider_contract.py
    "InputTextSensitiveContentDetected", "OutputImageSensitiveContentDetected.PolicyViolation",
])
def test_every_sensitive_content_code_is_a_refusal(emu: ArkEmulator, clock: FakeClock, code: str) -> None:
    emu.fail_next_job(code, "The request failed because the input text may contain sensitive information.")
    with pytest.raises(ProviderRefused) as err:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert err.value.code == code and err.value.status == 400
    assert "sensitive information" in str(err.value)
    assert len(emu.submits) == 1


def test_error_object_with_http_200_is_an_error(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.fail_next_job("InputImageSensitiveContentDetected", "the input image may be sensitive", status=200)
    with pytest.raises(ProviderRefused) as err:
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert err.value.code == "InputImageSensitiveContentDetected" and err.value.images == ()
    emu.fail_next_job("AccountOverdueError", "your account is overdue", status=200)
    with pytest.raises(ProviderRequestError, match="overdue"):
        make_provider(emu, clock).generate(make_request(), MemoryJobStore())
    assert len(emu.submits) == 2


def test_one_broken_download_keeps_the_other_images(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.break_next_result("expired")
    with pytest.raises(ProviderRequestError) as err:
        make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())
    assert len(err.value.images) == 2
    assert "got 2 of 3 images (3 generated and billed)" in str(err.value)


def test_partial_batch_refusal_carries_the_good_images(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.partial_failure(1, "OutputImageSensitiveContentDetected")
    with pytest.raises(ProviderRefused) as err:
        make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())
    assert err.value.code == "OutputImageSensitiveContentDetected"
    assert [dims(img) for img in err.value.images] == [(1280, 720)] * 2
    assert "got 2 of 3 images (2 generated and billed)" in str(err.value)
    assert "image 2" in str(err.value)
    assert len(emu.submits) == 1


def test_partial_batch_internal_error_stops_the_batch(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.partial_failure(1, "InternalServiceError", "internal error")
    with pytest.raises(ProviderUnavailable) as err:
        make_provider(emu, clock).generate(make_request(count=3), MemoryJobStore())
    assert len(err.value.images) == 1 and err.value.code == "InternalServiceError"
    assert "got 1 of 3 images (1 generated and billed)" in str(err.value)
    assert len(emu.submits) == 1


# -- secrets ----------------------------------------------------------------------------------


def test_key_is_redacted_from_an_error_object_in_http_200(emu: ArkEmulator, clock: FakeClock) -> None:
    emu.api_key = SECRET
    emu.fail_next_job("SensitiveContentDetected", f"rejected for {SECRET}", status=200)
    with pytest.raises(ProviderRefused) as err:
        make_provider(emu, clock, key=SECRET).generate(make_request(), MemoryJobStore())
    assert SECRET not in messages(err.value) and "***" in str(err.value)


def test_default_timeout_is_per_type_and_the_config_overrides_it() -> None:
    """Ark's synchronous call bills its images before it answers and a sent POST that timed out
    is not retried, so Ark waits 600 s by default (the official SDK's own default); the
    asynchronous hosts' requests are short, so 180 s; ``timeout_s`` in the config wins."""
    for cls in (ModelArkProvider, VolcengineProvider):
        assert cls(cls.type, ProviderConfig(type=cls.type), env={}).timeout_s == 600.0
    provider = create_provider("fal", ProviderConfig(type="fal"), env={})
    assert provider.timeout_s == 180.0
    assert ModelArkProvider("a", ProviderConfig(type="modelark", timeout_s=30.0), env={}).timeout_s == 30.0
