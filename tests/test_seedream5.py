"""Seedream 5.0 Lite and 5.0 Pro on every host that sells them (the models table), against each
host's emulator; and the limits the table sets, checked when the manifest loads (exit 2)."""

from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from assetbuild.providers import provider_class
from assetbuild.providers.base import MemoryJobStore
from assetbuild.spec import catalog
from assetbuild.spec.models import ProviderConfig
from tests.fakes.apiframe import ApiframeEmulator
from tests.fakes.ark import ArkEmulator
from tests.fakes.atlascloud import AtlasCloudEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.evolink import EvolinkEmulator
from tests.fakes.fal import FalEmulator
from tests.fakes.helpers import reference, request, sizes
from tests.fakes.replicate import ReplicateEmulator

KEY = "k-5-SECRET"
EMULATORS: dict[str, Any] = {
    "modelark": lambda: ArkEmulator(api_key=KEY),
    "volcengine": lambda: ArkEmulator(api_key=KEY, platform="volcengine"),
    "evolink": lambda: EvolinkEmulator(api_key=KEY),
    "atlascloud": lambda: AtlasCloudEmulator(api_key=KEY),
    "apiframe": lambda: ApiframeEmulator(api_key=KEY),
    "fal": lambda: FalEmulator(api_key=KEY),
    "replicate": lambda: ReplicateEmulator(api_key=KEY),
}


@pytest.fixture
def host(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    emulator = EMULATORS[request.param]()
    emulator.__enter__()
    try:
        yield request.param, emulator
    finally:
        emulator.__exit__(None, None, None)


def provider(host_type: str, emulator: Any, **config: Any) -> Any:
    cfg = ProviderConfig(type=host_type, base_url=emulator.base_url, api_key_env="K", **config)
    return provider_class(host_type)("h", cfg, env={"K": KEY}, clock=FakeClock())


def body_of(host_type: str, emulator: Any) -> dict[str, Any]:
    submit = emulator.submits[0] if hasattr(emulator, "submits") else emulator.calls("submit")[0]
    return submit.json


@pytest.mark.parametrize("host", catalog.hosts_of("seedream-5.0-lite"), indirect=True)
def test_seedream_5_lite_on_every_host_that_sells_it(host: tuple[str, Any]) -> None:
    host_type, emulator = host
    offer = catalog.offer(host_type, "seedream-5.0-lite")
    req = request(model="seedream-5.0-lite", width=2048, height=2048, size="2K", count=2,
                  references=(reference(64, 64),))
    result = provider(host_type, emulator).generate(req, MemoryJobStore())
    assert sizes(result) == [(2048, 2048)] * 2
    assert result.cost_usd == pytest.approx(2 * offer.price.usd)
    body = body_of(host_type, emulator)
    sent = body.get("model") or body.get("version")
    if sent is not None:  # fal and Replicate name the model in the path
        assert sent in set(offer.ids.values())


def test_seedream_5_pro_on_ark_sends_no_sequential_field() -> None:
    with ArkEmulator(api_key=KEY) as ark:
        # The emulator answers 400 to ANY sequential field on 5.0 Pro, "disabled" too.
        refused = httpx.post(f"{ark.base_url}/images/generations", headers={"Authorization": f"Bearer {KEY}"},
                             json={"model": "seedream-5-0-pro-260628", "prompt": "p", "size": "2048x2048",
                                   "sequential_image_generation": "disabled"})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "sequential_image_generation"
        req = request(model="seedream-5.0-pro", width=2048, height=2048, size="2K",
                      references=(reference(64, 64), reference(48, 48)))
        result = provider("modelark", ark).generate(req, MemoryJobStore())
        body = ark.submits[-1].json
        assert body["model"] == "seedream-5-0-pro-260628"
        assert not {"sequential_image_generation", "sequential_image_generation_options", "stream"} & set(body)
        assert sizes(result) == [(2048, 2048)]
        assert result.cost_usd == pytest.approx(0.09 + 0.003)  # the 2K tier + one reference after the first


def test_a_batch_whose_prompt_states_no_count_comes_back_short() -> None:
    """The emulators make the number of images the prompt states (one if none), as the model
    does (§7.10): a host module that stopped saying the count would get one image of three."""
    from assetbuild.errors import ProviderUnavailable
    from assetbuild.providers.modelark import ModelArkProvider

    class Silent(ModelArkProvider):
        prompt_says_count = False

    with ArkEmulator(api_key=KEY) as ark:
        cfg = ProviderConfig(type="modelark", base_url=ark.base_url, api_key_env="K")
        with pytest.raises(ProviderUnavailable, match="got 1 of 3 images"):
            Silent("h", cfg, env={"K": KEY}, clock=FakeClock()).generate(request(count=3), MemoryJobStore())
        result = provider("modelark", ark).generate(request(count=3), MemoryJobStore())
        assert len(result.images) == 3 and ark.submits[-1].json["prompt"].endswith("Generate 3 different images.")


def test_seedream_4_still_sends_disabled_on_ark() -> None:
    with ArkEmulator(api_key=KEY) as ark:
        provider("modelark", ark).generate(request(), MemoryJobStore())
        assert ark.submits[0].json["sequential_image_generation"] == "disabled"


def test_params_may_not_set_a_field_the_model_refuses() -> None:
    from assetbuild.errors import UserError

    with ArkEmulator(api_key=KEY) as ark:
        req = request(model="seedream-5.0-pro", width=2048, height=2048, size="2K",
                      params={"sequential_image_generation": "disabled"})
        with pytest.raises(UserError, match="seedream-5.0-pro refuses sequential_image_generation"):
            provider("modelark", ark).generate(req, MemoryJobStore())
        assert ark.submits == []


def test_seedream_5_pro_on_fal_and_apiframe() -> None:
    with FalEmulator(api_key=KEY) as fal:
        result = provider("fal", fal).generate(
            request(model="seedream-5.0-pro", width=1024, height=1024, size="1K"), MemoryJobStore())
        submit = fal.calls("submit")[0]
        assert submit.path == "/bytedance/seedream/v5/pro/text-to-image"
        assert "num_images" not in submit.json and "max_images" not in submit.json
        assert sizes(result) == [(1024, 1024)] and result.cost_usd == pytest.approx(0.045)
    with ApiframeEmulator(api_key=KEY) as apiframe:
        result = provider("apiframe", apiframe).generate(
            request(model="seedream-5.0-pro", width=2048, height=2048, size="2K"), MemoryJobStore())
        assert apiframe.submits[0].json["model"] == "seedream-5-pro"
        assert apiframe.submits[0].json["seedreamParams"] == {"size": "2K", "aspect_ratio": "1:1"}
        assert sizes(result) == [(2048, 2048)]


# -- the table's limits, when the manifest loads ------------------------------------------------

MANIFEST = """
[project]
provider = "{provider}"
model = "{model}"
[providers.{provider}]
type = "{provider}"
[assets.hero]
prompt = "a fox"
{extra}
"""


def run_plan(project: Any, provider: str, model: str, extra: str) -> Any:
    refs = [f"r{i}.png" for i in range(12)]
    for ref in refs:
        from tests.conftest import png

        project.write(ref, png())
    project.manifest(MANIFEST.format(provider=provider, model=model, extra=extra))
    return project.run("plan")


@pytest.mark.parametrize("provider, model, extra, words", [
    ("modelark", "seedream-5.0-lite", 'size = "4K"', "assets.hero.size: seedream-5.0-lite has no 4K size; use 2K or 3K"),
    ("modelark", "seedream-5.0-pro", "references = [" + ", ".join(f'"r{i}.png"' for i in range(11)) + "]",
     "assets.hero.references: seedream-5.0-pro on modelark takes at most 10 reference images; this asset sends 11"),
    ("evolink", "seedream-5.0-pro", "", "assets.hero.model: provider evolink (evolink) does not sell seedream-5.0-pro"),
    ("modelark", "seedream-5.0-pro", "count = 2",
     'assets.hero.count: seedream-5.0-pro on modelark makes one image per request (no batch generation); '
     'count = 2 needs batch = "separate"'),
])
def test_limits_of_the_table_are_one_line_and_exit_2(project: Any, provider: str, model: str, extra: str,
                                                    words: str) -> None:
    res = run_plan(project, provider, model, extra)
    assert res.exit_code == 2
    lines = [line for line in (res.output + res.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], lines
    assert "Traceback" not in res.stderr


def test_a_model_the_config_names_is_left_to_the_host(project: Any) -> None:
    project.manifest(MANIFEST.format(provider="evolink", model="seedream-5.0-pro", extra="").replace(
        'type = "evolink"', 'type = "evolink"\nmodel_ids = { "seedream-5.0-pro" = "doubao-seedream-5.0-pro" }'))
    assert project.run("plan").exit_code == 0
