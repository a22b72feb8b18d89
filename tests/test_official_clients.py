"""The hosts' own Python clients against the emulators, and assetbuild's requests beside theirs.

The emulators and the providers are written by the same hands, so both could agree and still be
wrong. Three hosts publish an official Python client: byteplus-python-sdk-v2's Ark runtime,
fal-client and replicate. Each one is driven here, unpatched, against its host's emulator:
text-to-image, an edit with one reference, a batch of 3, a failed job, a refused prompt and a 429
with Retry-After. The client must accept every reply, and the emulator every request.

Each client is pointed at the loopback emulator only by its documented options: Ark's
``base_url`` constructor argument; replicate's ``base_url`` argument and its
``REPLICATE_POLL_INTERVAL`` variable; fal-client's ``FAL_QUEUE_RUN_HOST`` variable (read once,
when ``fal_client`` is first imported, so the fal emulator lives for the session and the module
is imported only after the variable is set) with the emulator served over TLS, because fal-client
builds ``https://`` URLs only, under a certificate made here and trusted through
``SSL_CERT_FILE`` (which httpx reads). fal's upload host (``v3.fal.media``, fal-client's
``CDN_URL``) has no override, so references go to fal inline as data URIs here and uploads are
not exercised.

Then the same logical request is sent by assetbuild's provider and by the official client, both
captured at the emulator and compared field by field (``assert_same_request``): the same path,
the same auth header, and the same value for every body field both send. A field only one side
sends must be listed with the reason it is fine, so a field assetbuild renamed or dropped (one
the official client sends with a value) fails the test. A JSON null counts as not sent (Ark's SDK
sends every key it knows, null for the ones not set).
"""

from __future__ import annotations

import importlib
import io
import ssl
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Mapping

import httpx
import pytest
import replicate
import trustme
from byteplussdkarkruntime import Ark
from byteplussdkarkruntime._constants import DEFAULT_TIMEOUT_SECONDS as ARK_SDK_TIMEOUT_S
from byteplussdkarkruntime._exceptions import ArkBadRequestError, ArkInternalServerError
from byteplussdkarkruntime.types.images import SequentialImageGenerationOptions
from replicate.exceptions import ModelError, ReplicateError

from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.fal import FalProvider
from assetbuild.providers.modelark import ModelArkProvider, VolcengineProvider
from assetbuild.providers.replicate import ReplicateProvider
from tests.fakes.ark import ArkEmulator
from tests.fakes.clock import FakeClock
from tests.fakes.fal import FalEmulator
from tests.fakes.helpers import dims, reference
from tests.fakes.replicate import ReplicateEmulator
from tests.fakes.server import Request

KEY = "test-key-SECRET-123"
PROMPT = "a red fox in snow"
# With sequential generation the model reads how many images to make from the prompt
# (providers.md §7.10): assetbuild says it there, and so must a user of the official client.
# Written out here, not made with assetbuild's count_prompt: a count_prompt that said nothing
# would make both sides equal. The Ark emulator makes ONE image of a batch whose prompt states
# no count, as the model does.
BATCH_PROMPT = "a red fox in snow. Generate 3 different images."


# -- comparing two requests ----------------------------------------------------------------------


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON body as dotted paths -> values; objects are walked into, arrays kept whole, and a
    null is dropped (not sent with a value)."""
    if not isinstance(value, dict):
        return {} if value is None else {prefix.rstrip("."): value}
    fields: dict[str, Any] = {}
    for key, item in value.items():
        fields.update(flat(item, f"{prefix}{key}."))
    return fields


def assert_same_request(ours: Request, theirs: Request, *, auth: str, only_ours: Mapping[str, str],
                        only_theirs: Mapping[str, str]) -> None:
    """The same path and auth, the same value for every field both send, and exactly the listed
    fields (each with its reason) sent by one side only."""
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert ours.headers[auth] == theirs.headers[auth]
    assert ours.headers["content-type"].startswith("application/json")
    assert theirs.headers["content-type"].startswith("application/json")
    a, b = flat(ours.json), flat(theirs.json)
    assert {k: a[k] for k in a.keys() & b.keys()} == {k: b[k] for k in a.keys() & b.keys()}
    assert sorted(a.keys() - b.keys()) == sorted(only_ours), "fields only assetbuild sends"
    assert sorted(b.keys() - a.keys()) == sorted(only_theirs), "fields only the official client sends"


def test_the_comparison_catches_a_renamed_or_dropped_field() -> None:
    """The check itself: a field the official client sends with a value and assetbuild does not
    (renamed or dropped) fails it, and so does a different value."""
    theirs = Request("POST", "/x", "", {"authorization": "k", "content-type": "application/json"},
                     b'{"prompt": "p", "watermark": false, "seed": null}', 0.0)

    def ours(body: bytes) -> Request:
        return Request("POST", "/x", "", dict(theirs.headers), body, 0.0)

    assert_same_request(ours(b'{"prompt": "p", "watermark": false}'), theirs, auth="authorization",
                        only_ours={}, only_theirs={})
    for body in (b'{"prompt": "p", "water_mark": false}', b'{"prompt": "p"}', b'{"prompt": "p", "watermark": true}'):
        with pytest.raises(AssertionError):
            assert_same_request(ours(body), theirs, auth="authorization", only_ours={}, only_theirs={})


def request(**fields: Any) -> GenerationRequest:
    base: dict[str, Any] = dict(asset_id="hero", fingerprint="fp-hero", prompt=PROMPT, model="seedream-4.0",
                                width=1280, height=720, size="1280x720")
    return GenerationRequest(**{**base, **fields})


REF = reference(64, 48, "png", "brand/palette.png")
CASES = ("text-to-image", "edit", "batch")


def logical(case: str, **fields: Any) -> GenerationRequest:
    """The three logical requests compared: text to image, an edit with one reference, a batch of 3."""
    extra: dict[str, Any] = {"edit": {"references": (REF,)}, "batch": {"count": 3}}.get(case, {})
    return request(fingerprint=f"fp-{case}", **{**extra, **fields})


def fetch(url: str, verify: Any = True) -> tuple[int, int]:
    """The size of the image at ``url``, downloaded and decoded in full."""
    response = httpx.get(url, verify=verify)
    response.raise_for_status()
    return dims(response.content)


# -- Ark: byteplus-python-sdk-v2 (byteplussdkarkruntime) -----------------------------------------

ARK_MODEL = "seedream-4-0-250828"


@pytest.fixture
def ark() -> Iterator[ArkEmulator]:
    with ArkEmulator(api_key=KEY) as emulator:
        yield emulator


def ark_sdk(emu: ArkEmulator, **options: Any) -> Ark:
    return Ark(base_url=emu.base_url, api_key=KEY, **options)


def ark_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": "", "type": "TooManyRequests"}}


def test_ark_sdk_text_to_image(ark: ArkEmulator) -> None:
    reply = ark_sdk(ark).images.generate(model=ARK_MODEL, prompt=PROMPT, size="1280x720", response_format="url",
                                         watermark=False)
    assert [item.size for item in reply.data] == ["1280x720"]
    assert reply.usage.generated_images == 1 and reply.model == ARK_MODEL
    assert fetch(reply.data[0].url) == (1280, 720)
    assert ark.submits[0].json["seed"] is None  # the SDK sends every key; null means "not given"


def test_ark_sdk_edit_with_one_reference(ark: ArkEmulator) -> None:
    reply = ark_sdk(ark).images.generate(model=ARK_MODEL, prompt=PROMPT, image=REF.data_url(), size="1280x720")
    assert [item.size for item in reply.data] == ["1280x720"]
    assert ark.submits[0].json["image"] == REF.data_url()


def test_ark_sdk_batch_of_three(ark: ArkEmulator) -> None:
    reply = ark_sdk(ark).images.generate(
        model=ARK_MODEL, prompt=BATCH_PROMPT, size="1280x720", sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=3))
    assert [item.size for item in reply.data] == ["1280x720"] * 3
    assert reply.usage.generated_images == 3
    # The same batch whose prompt states no count: max_images only caps it, one image comes back.
    unsaid = ark_sdk(ark).images.generate(
        model=ARK_MODEL, prompt=PROMPT, size="1280x720", sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=3))
    assert unsaid.usage.generated_images == 1


def test_ark_sdk_failed_job(ark: ArkEmulator) -> None:
    """A batch whose second image fails inside an HTTP 200 (§1.5), and a request-level 500."""
    ark.partial_failure(1, "InternalServiceError", "internal error")
    reply = ark_sdk(ark).images.generate(
        model=ARK_MODEL, prompt=BATCH_PROMPT, size="1280x720", sequential_image_generation="auto",
        sequential_image_generation_options=SequentialImageGenerationOptions(max_images=3))
    assert reply.data[0].url and reply.usage.generated_images == 1
    # The SDK's Image type has no error field; it keeps the item's extra keys as they came.
    assert reply.data[1].error["code"] == "InternalServiceError" and len(reply.data) == 2

    ark.fail_next_job("InternalServiceError", "the service hit an internal error")
    with pytest.raises(ArkInternalServerError) as info:
        ark_sdk(ark, max_retries=0).images.generate(model=ARK_MODEL, prompt=PROMPT, size="1280x720")
    assert info.value.code == "InternalServiceError" and info.value.status_code == 500


def test_ark_sdk_refused_prompt(ark: ArkEmulator) -> None:
    ark.fail_next_job("InputTextSensitiveContentDetected", "The input text may contain sensitive information.")
    with pytest.raises(ArkBadRequestError) as info:
        ark_sdk(ark).images.generate(model=ARK_MODEL, prompt=PROMPT, size="1280x720")
    assert info.value.code == "InputTextSensitiveContentDetected" and "sensitive" in info.value.message
    assert len(ark.submits) == 1  # a 400 is not retried


def test_ark_sdk_rate_limited_then_served(ark: ArkEmulator) -> None:
    ark.fail_next("generate", status=429, headers={"Retry-After": "1"},
                  body=ark_error("ModelAccountIpmRateLimitExceeded", "Too many images per minute."))
    reply = ark_sdk(ark).images.generate(model=ARK_MODEL, prompt=PROMPT, size="1280x720")
    assert len(reply.data) == 1 and len(ark.submits) == 2  # the SDK retried the 429 once


def test_ark_default_timeout_is_at_least_the_official_sdks() -> None:
    """The synchronous call bills its images before it answers, and a POST that timed out after
    it was sent is not retried: a timeout shorter than the SDK's would lose paid batches."""
    for cls in (ModelArkProvider, VolcengineProvider):
        assert cls(cls.type, ProviderConfig(type=cls.type), env={}).timeout_s >= ARK_SDK_TIMEOUT_S


ARK_SDK_CALLS: dict[str, dict[str, Any]] = {
    "text-to-image": {},
    "edit": {"image": REF.data_url()},
    "batch": {"sequential_image_generation": "auto",
              "sequential_image_generation_options": SequentialImageGenerationOptions(max_images=3)},
}


@pytest.mark.parametrize("case", CASES)
def test_ark_requests_match_the_official_sdk(ark: ArkEmulator, case: str) -> None:
    provider = ModelArkProvider("ark", ProviderConfig(type="modelark", base_url=ark.base_url), env={"ARK_API_KEY": KEY})
    provider.generate(logical(case), MemoryJobStore())
    prompt = BATCH_PROMPT if case == "batch" else PROMPT
    ark_sdk(ark).images.generate(model=ARK_MODEL, prompt=prompt, size="1280x720", response_format="url",
                                 watermark=False, **ARK_SDK_CALLS[case])
    ours, theirs = ark.submits
    only_ours = {} if case == "batch" else {
        "sequential_image_generation": "'disabled', Ark's documented default (§1.2), sent explicitly"}
    assert_same_request(ours, theirs, auth="authorization", only_ours=only_ours, only_theirs={})


# -- fal: fal-client ------------------------------------------------------------------------------

FAL_T2I = "fal-ai/bytedance/seedream/v4/text-to-image"
FAL_EDIT = "fal-ai/bytedance/seedream/v4/edit"


class FalQueue:
    """The fal emulator on TLS, the CA file that trusts it, and fal_client imported for it."""

    def __init__(self, emu: FalEmulator, ca_file: Path, module: ModuleType):
        self.emu, self.ca_file, self.module = emu, ca_file, module

    def client(self) -> Any:
        return self.module.SyncClient(key=KEY)

    def submits_after(self, action: Callable[[], Any]) -> list[Request]:
        before = len(self.emu.submits)
        action()
        return self.emu.submits[before:]


@pytest.fixture(scope="session")
def fal_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalQueue]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path_factory.mktemp("fal-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    emu = FalEmulator(api_key=KEY)
    emu.start(ssl_context=server_context)
    host = emu.url.removeprefix("https://")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FAL_QUEUE_RUN_HOST", host)  # fal_client reads it once, at import
        module = importlib.import_module("fal_client")
    if module.client.QUEUE_URL_FORMAT != f"https://{host}/":
        pytest.fail("fal_client was imported before FAL_QUEUE_RUN_HOST was set; import it only here")
    yield FalQueue(emu, ca_file, module)
    emu.stop()


@pytest.fixture
def fal(fal_queue: FalQueue, monkeypatch: pytest.MonkeyPatch) -> FalQueue:
    monkeypatch.setenv("SSL_CERT_FILE", str(fal_queue.ca_file))  # read when an httpx client is made
    return fal_queue


def fal_arguments(**fields: Any) -> dict[str, Any]:
    return {"prompt": PROMPT, "image_size": {"width": 1280, "height": 960}, **fields}


def test_fal_client_text_to_image(fal: FalQueue) -> None:
    result = fal.client().subscribe(FAL_T2I, arguments=fal_arguments(seed=7), interval=0.01)
    [image] = result["images"]
    assert (image["width"], image["height"]) == (1280, 960) and result["seed"] == 7
    assert fetch(image["url"]) == (1280, 960)


def test_fal_client_edit_with_one_reference(fal: FalQueue) -> None:
    # Inline as a data URI: fal's upload host has no override, so fal_client.upload is not used.
    arguments = fal_arguments(image_urls=[REF.data_url()], image_size={"width": 1024, "height": 1024})
    result = fal.client().subscribe(FAL_EDIT, arguments=arguments, interval=0.01)
    assert [(i["width"], i["height"]) for i in result["images"]] == [(1024, 1024)]
    assert fal.emu.submits[-1].path == f"/{FAL_EDIT}"


def test_fal_client_batch_of_three(fal: FalQueue) -> None:
    result = fal.client().subscribe(FAL_T2I, arguments=fal_arguments(num_images=3), interval=0.01)
    assert len(result["images"]) == 3


@pytest.mark.parametrize("code, status, words", [
    ("internal_server_error", 500, "the runner crashed"),  # a failed job
    ("content_policy_violation", 422, "The content could not be processed"),  # a refused prompt
])
def test_fal_client_reads_a_failure_from_the_status_and_the_result(fal: FalQueue, code: str, status: int,
                                                                     words: str) -> None:
    fal.emu.fail_next_job(code, words, status=status)
    handle = fal.client().submit(FAL_T2I, arguments=fal_arguments())
    statuses = list(handle.iter_events(interval=0.01))
    done = statuses[-1]
    assert isinstance(done, fal.module.Completed)
    assert (done.error, done.error_type) == (words, code)
    with pytest.raises(fal.module.client.FalClientHTTPError) as info:
        handle.get(interval=0.01)
    assert info.value.status_code == status and info.value.error_type == code
    assert words in str(info.value)


def test_fal_client_rate_limited_then_served(fal: FalQueue) -> None:
    fal.emu.fail_next("submit", status=429, headers={"Retry-After": "1"},
                      body={"detail": [{"loc": ["body"], "msg": "Too many requests", "type": "rate_limited"}]})
    calls = len(fal.emu.calls("submit"))
    submits = fal.submits_after(lambda: fal.client().subscribe(FAL_T2I, arguments=fal_arguments(), interval=0.01))
    assert len(fal.emu.calls("submit")) - calls == 2  # the client retried the 429 ...
    assert len(submits) == 1  # ... and one request was queued (and billed)


FAL_CLIENT_ARGUMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "text-to-image": (FAL_T2I, {}),
    "edit": (FAL_EDIT, {"image_urls": [REF.data_url()]}),
    "batch": (FAL_T2I, {"num_images": 3}),
}


@pytest.mark.parametrize("case", CASES)
def test_fal_requests_match_the_official_client(fal: FalQueue, clock: FakeClock, case: str) -> None:
    size = {"width": 1024, "height": 1024}  # within both the text-to-image and the edit limits
    provider = FalProvider("fal", ProviderConfig(type="fal", base_url=fal.emu.base_url), env={"FAL_KEY": KEY},
                           clock=clock)
    [ours] = fal.submits_after(lambda: provider.generate(logical(case, width=1024, height=1024, size="1024x1024",
                                                                 seed=7), MemoryJobStore()))
    endpoint, fields = FAL_CLIENT_ARGUMENTS[case]
    arguments = {"prompt": PROMPT, "image_size": size, "seed": 7, **fields}
    [theirs] = fal.submits_after(lambda: fal.client().submit(endpoint, arguments=arguments))
    only_ours = {"max_images": "1, fal's documented default (§5.2), sent so each of num_images generations makes "
                               "exactly one image"}
    if case != "batch":
        only_ours["num_images"] = "1, fal's documented default (§5.2), sent explicitly"
    assert_same_request(ours, theirs, auth="authorization", only_ours=only_ours, only_theirs={})


# -- Replicate: replicate ------------------------------------------------------------------------

REPLICATE_MODEL = "bytedance/seedream-4"


@pytest.fixture
def rep(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplicateEmulator]:
    monkeypatch.setenv("REPLICATE_POLL_INTERVAL", "0.01")  # read by replicate.Client()
    with ReplicateEmulator(api_key=KEY) as emulator:
        yield emulator


def replicate_client(emu: ReplicateEmulator) -> replicate.Client:
    return replicate.Client(api_token=KEY, base_url=emu.base_url)


def replicate_input(**fields: Any) -> dict[str, Any]:
    return {"prompt": PROMPT, "size": "custom", "width": 1536, "height": 1024, **fields}


def test_replicate_client_text_to_image_waits_with_prefer_wait(rep: ReplicateEmulator) -> None:
    output = replicate_client(rep).run(REPLICATE_MODEL, input=replicate_input(), webhook="https://example.invalid/hook",
                                       webhook_completed="https://example.invalid/done",
                                       webhook_events_filter=["completed"])
    [url] = output
    assert fetch(str(url)) == (1536, 1024)
    [create] = rep.submits
    assert create.headers["prefer"] == "wait"
    assert create.json["webhook_completed"] == "https://example.invalid/done"
    assert rep.calls("get") == []  # answered within the wait: nothing to poll


def test_replicate_client_edit_uploads_its_reference_through_files(rep: ReplicateEmulator) -> None:
    output = replicate_client(rep).run(REPLICATE_MODEL, input=replicate_input(image_input=[io.BytesIO(REF.data)]))
    assert len(output) == 1
    [upload] = rep.calls("upload")
    [url] = rep.submits[0].json["input"]["image_input"]
    assert url.startswith(f"{rep.url}/v1/files/") and rep.uploaded(url) == REF.data
    assert upload.headers["authorization"] == f"Bearer {KEY}"


def test_replicate_client_batch_of_three_by_polling(rep: ReplicateEmulator) -> None:
    client = replicate_client(rep)
    prediction = client.models.predictions.create(
        model=REPLICATE_MODEL, input=replicate_input(prompt=BATCH_PROMPT, sequential_image_generation="auto", max_images=3))
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status == "succeeded" and len(prediction.output) == 3
    assert len(rep.calls("get")) == 2


@pytest.mark.parametrize("code, words", [
    ("E001", "the model crashed"),  # a failed job
    ("E005", "The input or output was flagged as sensitive. Please try again with different inputs."),  # refused
])
def test_replicate_client_reads_a_failed_prediction(rep: ReplicateEmulator, code: str, words: str) -> None:
    rep.fail_next_job(code, words)
    with pytest.raises(ModelError) as info:
        replicate_client(rep).run(REPLICATE_MODEL, input=replicate_input())
    assert info.value.prediction.status == "failed" and info.value.prediction.error == f"{words} ({code})"


def test_replicate_client_rate_limited(rep: ReplicateEmulator) -> None:
    """A 429 on create is the client's error (it never retries a POST); a 429 on a poll is
    retried after Retry-After."""
    throttled = {"title": "Request was throttled.", "detail": "Request was throttled. Expected available in 1 second.",
                 "status": 429}
    client = replicate_client(rep)
    rep.fail_next("create", status=429, headers={"Retry-After": "1"}, body=throttled)
    with pytest.raises(ReplicateError) as info:
        client.models.predictions.create(model=REPLICATE_MODEL, input=replicate_input())
    assert info.value.status == 429 and info.value.title == "Request was throttled."

    prediction = client.models.predictions.create(model=REPLICATE_MODEL, input=replicate_input())
    rep.fail_next("get", status=429, headers={"Retry-After": "1"}, body=throttled)
    prediction.wait()
    assert prediction.status == "succeeded" and len(rep.calls("get")) == 3


def test_replicate_unknown_paths_and_bad_uploads_answer_problem_documents(rep: ReplicateEmulator) -> None:
    client = replicate_client(rep)
    with pytest.raises(ReplicateError) as info:
        client.files.get("no-such-file")
    assert (info.value.status, info.value.title) == (404, "Not found")
    response = httpx.post(f"{rep.url}/v1/files", headers={"Authorization": f"Bearer {KEY}"},
                          files={"file": ("a.png", REF.data, "image/png")})
    assert response.status_code == 400 and response.json()["detail"] == "The content field is required"
    assert httpx.get(f"{rep.url}/v1/nothing-here").json()["status"] == 404


@pytest.mark.parametrize("case", CASES)
def test_replicate_requests_match_the_official_client(rep: ReplicateEmulator, clock: FakeClock, tmp_path: Path,
                                                     case: str) -> None:
    provider = ReplicateProvider("rep", ProviderConfig(type="replicate", base_url=rep.base_url),
                                 env={"REPLICATE_API_TOKEN": KEY}, clock=clock)
    provider.generate(logical(case, width=1536, height=1024, size="1536x1024"), MemoryJobStore())
    ref_file = tmp_path / "palette.png"
    ref_file.write_bytes(REF.data)
    fields = {"edit": {"image_input": [ref_file]},
              "batch": {"prompt": BATCH_PROMPT, "sequential_image_generation": "auto", "max_images": 3}}.get(case, {})
    # base64: the client sends the file inline as a data URL, as assetbuild does (its default
    # uploads it to /v1/files first, exercised above).
    replicate_client(rep).models.predictions.create(model=REPLICATE_MODEL, input=replicate_input(**fields),
                                                    file_encoding_strategy="base64")
    ours, theirs = rep.submits
    only_ours = {} if case == "batch" else {
        "input.sequential_image_generation": "'disabled', the model's documented default (§6.1), sent explicitly",
        "input.max_images": "1, the model's documented default (§6.1), sent explicitly"}
    assert_same_request(ours, theirs, auth="authorization", only_ours=only_ours, only_theirs={})
