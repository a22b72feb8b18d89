"""EvolinkProvider against the evolink emulator: real HTTP on 127.0.0.1, a fake clock. What only
evolink does: ratio + quality sizing, the file API, its error envelopes and task codes. What every
host does (retries, timeouts, failed and refused tasks, broken downloads, resume, concurrency,
the key) is in test_provider_contract.py."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from assetbuild.errors import ProviderRequestError, UserError
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.base import MemoryJobStore, ReferenceImage
from assetbuild.providers._remote import count_prompt
from assetbuild.providers.evolink import EvolinkProvider, nearest_aspect_ratio, quality_for
from tests.fakes.clock import FakeClock
from tests.fakes.helpers import ProviderMaker, dims, png_ref, request
from tests.fakes.evolink import EvolinkEmulator, result_size
from tests.fakes.server import make_jpeg

KEY = "test-key-SECRET-123"
ENV = {"EVOLINK_API_KEY": KEY}

MakeProvider = Callable[..., EvolinkProvider]


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[EvolinkEmulator]:
    with EvolinkEmulator(api_key=KEY, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def make_provider(emu: Any, clock: FakeClock) -> Iterator[MakeProvider]:
    maker = ProviderMaker(EvolinkProvider, "evo", emu.base_url, ENV, clock)
    yield maker
    maker.close()


# -- the documented request, and images back --------------------------------------------------


def test_text_to_image_sends_ratio_quality_and_n(emu: EvolinkEmulator, make_provider: MakeProvider) -> None:
    jobs = MemoryJobStore()
    result = make_provider().generate(request(width=2848, height=1600, size="16:9"), jobs)

    assert len(result.images) == 1 and dims(result.images[0]) == result_size("16:9", "2K")
    assert result.model_id == "doubao-seedream-4.0" and result.cost_usd == pytest.approx(0.0222)  # the seeds
    (submit,) = emu.submits
    assert result.request_id == emu.calls("task")[0].match["id"]
    assert submit.json == {"model": "doubao-seedream-4.0", "prompt": "A fox on a hill", "size": "16:9",
                           "quality": "2K", "n": 1}
    assert submit.headers["authorization"] == f"Bearer {KEY}"
    assert submit.headers["content-type"] == "application/json"
    assert submit.headers["user-agent"].startswith("assetbuild/")
    assert [r.route for r in emu.requests] == ["generate", "task", "task", "result"]  # processing, completed
    assert all("authorization" not in r.headers for r in emu.calls("result"))
    assert jobs.get(make_provider().job_key(request())) is not None  # handed back (job_key): the executor forgets it


@pytest.mark.parametrize("shape", ["data.file_url", "data.url", "url"])
def test_edit_uploads_references_through_the_file_api(
    emu: EvolinkEmulator, make_provider: MakeProvider, shape: str
) -> None:
    emu.upload_shape = shape
    refs = (png_ref(), ReferenceImage("@logo", make_jpeg(40, 40), "image/jpeg", 40, 40))
    result = make_provider().generate(request(references=refs), MemoryJobStore())

    assert len(result.images) == 1
    uploads = emu.calls("upload")
    assert [u.json for u in uploads] == [{"base64_data": ref.data_url()} for ref in refs]
    assert all(u.headers["authorization"] == f"Bearer {KEY}" for u in uploads)
    (submit,) = emu.submits
    assert submit.json["image_urls"] == list(emu.files)  # the uploaded files' URLs, in order
    assert [emu.files[url] for url in submit.json["image_urls"]] == [ref.data for ref in refs]
    assert set(submit.json) == {"model", "prompt", "size", "quality", "n", "image_urls"}


def test_count_three_asks_for_n_and_says_so_in_the_prompt(emu: EvolinkEmulator, make_provider: MakeProvider) -> None:
    result = make_provider().generate(request(count=3), MemoryJobStore())

    assert len(result.images) == 3 and all(dims(img) == result_size("16:9", "1K") for img in result.images)
    assert result.cost_usd == pytest.approx(3 * 0.0222)
    assert emu.submits[0].json == {"model": "doubao-seedream-4.0", "size": "16:9", "quality": "1K", "n": 3,
                                   "prompt": "A fox on a hill. Generate 3 different images."}


def test_seedream_45_params_and_no_seed(emu: EvolinkEmulator, make_provider: MakeProvider) -> None:
    req = request(model="seedream-4.5", width=2048, height=2048, size="2K", seed=42,
                  params={"prompt_priority": "standard"})
    result = make_provider().generate(req, MemoryJobStore())

    assert result.model_id == "doubao-seedream-4.5" and result.cost_usd == pytest.approx(0.0313)
    # no evolink Seedream page lists seed (§2.2, §7.15): not sent
    assert emu.submits[0].json == {"model": "doubao-seedream-4.5", "prompt": "A fox on a hill", "size": "1:1",
                                   "quality": "2K", "n": 1, "prompt_priority": "standard"}


def test_a_seed_in_params_is_still_sent(emu: EvolinkEmulator, make_provider: MakeProvider) -> None:
    make_provider().generate(request(params={"seed": 42}), MemoryJobStore())
    assert emu.submits[0].json["seed"] == 42


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_a_bmp_or_tiff_reference_is_uploaded_as_png(emu: EvolinkEmulator, make_provider: MakeProvider,
                                                    fmt: str) -> None:
    """Issue 6, item 16: 4.5 takes BMP and TIFF references, evolink's upload API does not."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 60)).save(buf, format=fmt)
    ref = ReferenceImage("brand/logo." + fmt.lower(), buf.getvalue(), f"image/{fmt.lower()}", 64, 48)
    req = request(model="seedream-4.5", width=2048, height=2048, size="2K", references=(ref,))
    result = make_provider().generate(req, MemoryJobStore())
    assert len(result.images) == 1
    (uploaded,) = emu.files.values()
    assert uploaded[:8] == b"\x89PNG\r\n\x1a\n" and dims(uploaded) == (64, 48)


@pytest.mark.parametrize("status", ["queued", "running", "", None])
def test_only_documented_terminal_statuses_end_a_task(emu: EvolinkEmulator, make_provider: MakeProvider,
                                                      status: Any) -> None:
    emu.fail_next("task", status=200, body={"id": "t", "status": status}, times=2)
    result = make_provider().generate(request(), MemoryJobStore())
    assert len(result.images) == 1 and len(emu.submits) == 1


def test_result_data_objects_are_read_when_results_is_absent(emu: EvolinkEmulator,
                                                             make_provider: MakeProvider) -> None:
    url = emu.serve_result(make_jpeg(64, 64), "jpeg")
    emu.fail_next("task", status=200, body={"id": "t", "status": "completed", "result_data": [{"image_url": url}]})
    result = make_provider().generate(request(), MemoryJobStore())
    assert [dims(img) for img in result.images] == [(64, 64)]


# -- mapping and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "ratio"), [
    (2048, 2048, "1:1"), (2848, 1600, "16:9"), (1600, 2848, "9:16"), (3136, 1344, "21:9"),
    (2304, 1728, "4:3"), (2000, 2500, "4:5"), (1024, 4096, "9:16"), (4096, 1024, "21:9"),
])
def test_nearest_aspect_ratio(width: int, height: int, ratio: str) -> None:
    assert nearest_aspect_ratio(width, height) == ratio


@pytest.mark.parametrize(("width", "height", "model", "quality"), [
    (1280, 720, "seedream-4.0", "1K"), (1024, 1024, "seedream-4.0", "1K"), (2048, 2048, "seedream-4.0", "2K"),
    (2560, 1440, "seedream-4.5", "2K"), (4096, 4096, "seedream-4.5", "4K"), (5504, 3040, "seedream-4.0", "4K"),
    (1280, 720, "seedream-4.5", "2K"),  # no 1K on 4.5
])
def test_quality_from_pixels(width: int, height: int, model: str, quality: str) -> None:
    assert quality_for(width, height, model) == quality


def test_count_prompt() -> None:
    assert count_prompt("A fox", 1) == "A fox"
    assert count_prompt("A fox.  ", 2) == "A fox. Generate 2 different images."


def test_files_api_url_follows_base_url() -> None:
    default = EvolinkProvider("evo", ProviderConfig(type="evolink"), env={})
    proxied = EvolinkProvider("evo", ProviderConfig(type="evolink", base_url="https://proxy.example/"), env={})
    assert default.files_url == "https://files-api.evolink.ai"
    assert proxied.files_url == "https://proxy.example"


@pytest.mark.parametrize(("overrides", "words"), [
    ({"references": (ReferenceImage("a.webp", b"x", "image/webp", 64, 64),)}, "only JPEG and PNG"),
    ({"references": (png_ref(400, 100),)}, "[1/3, 3]"),
    ({"references": tuple(png_ref(label=f"r{i}.png") for i in range(11))}, "at most 10 reference"),
    ({"prompt": "x" * 1990, "count": 2}, "1 to 2000 characters; this one has 2020"),
])
def test_limits_are_checked_before_sending(overrides: dict[str, Any], words: str) -> None:
    provider = EvolinkProvider("evo", ProviderConfig(type="evolink"), env={})
    with pytest.raises(UserError, match="provider evo \\(evolink\\)") as info:
        provider.validate(request(**overrides))
    assert words in str(info.value)


def test_seedream_45_takes_more_reference_formats_and_ratios() -> None:
    provider = EvolinkProvider("evo", ProviderConfig(type="evolink"), env={})
    refs = (ReferenceImage("a.webp", b"x", "image/webp", 64, 64), png_ref(400, 100))
    provider.validate(request(model="seedream-4.5", width=2048, height=2048, references=refs))
    with pytest.raises(UserError, match="at most 14"):
        provider.validate(request(model="seedream-4.5", references=tuple(png_ref() for _ in range(15))))


# -- faults -----------------------------------------------------------------------------------


# service_error (the host's trouble) and content_policy_violation (a refusal): test_provider_contract.py
@pytest.mark.parametrize("code", ["invalid_parameters", "image_processing_error"])
def test_a_task_failed_for_its_request_is_a_request_error(emu: EvolinkEmulator, make_provider: MakeProvider,
                                                          code: str) -> None:
    emu.fail_next_job(code, "Generation failed upstream")
    jobs = MemoryJobStore()
    provider = make_provider()
    with pytest.raises(ProviderRequestError, match="failed: Generation failed upstream") as info:
        provider.generate(request(), jobs)
    assert type(info.value) is ProviderRequestError and info.value.code == code and f"[{code}]" in str(info.value)
    assert len(emu.submits) == 1  # not retried
    assert jobs.get(provider.job_key(request())) is not None  # handed back (job_key): the executor forgets it


def test_http_4xx_is_not_retried(emu: EvolinkEmulator, make_provider: MakeProvider) -> None:
    body = {"error": {"code": 402, "message": "Insufficient quota", "type": "insufficient_quota_error",
                      "fallback_suggestion": "top up your balance"}}
    emu.fail_next("generate", status=402, body=body)
    with pytest.raises(ProviderRequestError, match="HTTP 402: Insufficient quota \\(top up your balance\\)") as info:
        make_provider().generate(request(), MemoryJobStore())
    assert info.value.code == "insufficient_quota_error"
    assert len(emu.calls("generate")) == 1


def test_failed_upload_is_reported(emu: EvolinkEmulator, make_provider: MakeProvider) -> None:
    emu.fail_next("upload", status=200, body={"success": False, "code": 413, "msg": "file too large"})
    with pytest.raises(ProviderRequestError, match="reference upload of brand/palette.png failed: file too large"):
        make_provider().generate(request(references=(png_ref(),)), MemoryJobStore())
    assert emu.submits == []
