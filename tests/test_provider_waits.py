"""Waits that must end (issue 6, item 8), on the real clock against real emulators: Ctrl-C
(``Provider.interrupt``) ends a poll wait, a backoff or a rate-limit wait at once and starts no
new request; a result trickling in byte by byte meets ``download_deadline_s``; a body over
``max_download_mb`` is refused. No timed assertions: each test only bounds how long it may run
(a thread that does not come back fails the test)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

from assetbuild.clock import SystemClock
from assetbuild.errors import Interrupted, ProviderError, ProviderRequestError, ProviderUnavailable
from assetbuild.spec.models import ProviderConfig
from assetbuild.providers.base import GenerationRequest, MemoryJobStore
from assetbuild.providers.modelark import ModelArkProvider
from assetbuild.providers.replicate import ReplicateProvider
from tests.fakes.ark import ArkEmulator
from tests.fakes.replicate import ReplicateEmulator

KEY = "test-key"
REQUEST = GenerationRequest(asset_id="hero", fingerprint="fp-hero", prompt="a fox", model="seedream-4.0",
                            width=1024, height=1024, size="1024x1024")


def replicate(emu: ReplicateEmulator, **config: Any) -> ReplicateProvider:
    cfg = ProviderConfig(type="replicate", base_url=emu.base_url, **config)
    return ReplicateProvider("rep", cfg, env={"REPLICATE_API_TOKEN": KEY}, clock=SystemClock())


def run_in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the emulator never saw the request"
        time.sleep(0.01)


def test_interrupt_ends_a_poll_wait_mid_sleep_and_keeps_the_job() -> None:
    with ReplicateEmulator(api_key=KEY, polls_until_done=10**6) as emu:
        provider = replicate(emu, poll_interval_s=60.0)
        jobs = MemoryJobStore()
        thread, errors = run_in_thread(lambda: provider.generate(REQUEST, jobs))
        wait_for(lambda: len(emu.calls("get")) == 1)  # now asleep for 60 s before the next poll
        seen = len(emu.requests)
        provider.interrupt()
        thread.join(timeout=5)  # well under the 60 s poll interval
        assert not thread.is_alive()
        (error,) = errors
        assert isinstance(error, Interrupted) and error.submitted is True and error.job_key is None
        assert "a rerun resumes it without paying again" in str(error)
        assert len(emu.requests) == seen  # no new request after the interrupt
        assert jobs.get(provider.job_key(REQUEST)) is not None  # the paid job stays saved
        provider.close()


def test_interrupt_ends_a_retry_after_wait_and_sends_nothing_more() -> None:
    with ArkEmulator(api_key=KEY) as emu:
        emu.fail_next("generate", status=429, headers={"Retry-After": "100"}, times=5)
        cfg = ProviderConfig(type="modelark", base_url=emu.base_url)
        provider = ModelArkProvider("ark", cfg, env={"ARK_API_KEY": KEY}, clock=SystemClock())
        thread, errors = run_in_thread(lambda: provider.generate(REQUEST, MemoryJobStore()))
        wait_for(lambda: len(emu.requests) == 1)
        provider.interrupt()
        thread.join(timeout=5)
        assert not thread.is_alive()
        (error,) = errors
        assert isinstance(error, Interrupted) and error.submitted is False  # a 429 started nothing
        assert len(emu.requests) == 1
        provider.close()


def test_interrupt_during_an_ark_download_keeps_its_answer_for_a_rerun() -> None:
    """Ark bills the images before it answers: Ctrl-C while they come down keeps the answer
    saved, and the rerun downloads them from it without a second (paid) call."""
    with ArkEmulator(api_key=KEY) as emu:
        emu.fail_next("result", status=429, headers={"Retry-After": "100"})
        cfg = ProviderConfig(type="modelark", base_url=emu.base_url)
        provider = ModelArkProvider("ark", cfg, env={"ARK_API_KEY": KEY}, clock=SystemClock())
        jobs = MemoryJobStore()
        thread, errors = run_in_thread(lambda: provider.generate(REQUEST, jobs))
        wait_for(lambda: len(emu.calls("result")) == 1)  # now waiting 100 s to fetch it again
        provider.interrupt()
        thread.join(timeout=5)
        assert not thread.is_alive()
        (error,) = errors
        assert isinstance(error, Interrupted) and error.submitted is True and error.job_key is None
        assert jobs.get(provider.job_key(REQUEST)) is not None  # the paid answer stays saved
        provider.close()
        again = ModelArkProvider("ark", cfg, env={"ARK_API_KEY": KEY}, clock=SystemClock())
        result = again.generate(REQUEST, jobs)
        assert len(result.images) == 1 and result.job_key == again.job_key(REQUEST)
        assert len(emu.calls("generate")) == len(emu.submits) == 1  # not paid twice
        again.close()


def test_interrupt_before_a_request_sends_nothing() -> None:
    with ReplicateEmulator(api_key=KEY) as emu:
        provider = replicate(emu)
        provider.interrupt()
        with pytest.raises(Interrupted):
            provider.generate(REQUEST, MemoryJobStore())
        assert emu.requests == []
        provider.close()


def test_a_trickling_download_meets_the_download_deadline() -> None:
    with ReplicateEmulator(api_key=KEY) as emu:
        emu.fail_next("result", trickle_s=0.05, times=10)  # about 20 bytes a second, each read in time
        provider = replicate(emu, download_deadline_s=0.5, timeout_s=5, poll_interval_s=0.01)
        jobs = MemoryJobStore()
        thread, errors = run_in_thread(lambda: provider.generate(REQUEST, jobs))
        thread.join(timeout=15)
        assert not thread.is_alive()
        (error,) = errors
        assert type(error) is ProviderUnavailable
        assert "result download took longer than 0.5 s (download_deadline_s)" in str(error)
        assert error.submitted is True and error.job_key is None  # a rerun fetches the paid job again
        assert len(emu.calls("result")) == 1  # the deadline is for the whole download, retries included
        emu.clear_faults()
        result = replicate(emu, poll_interval_s=0.01).generate(REQUEST, jobs)
        assert len(result.images) == 1 and len(emu.submits) == 1
        provider.close()


def test_a_result_over_max_download_mb_is_refused() -> None:
    with ReplicateEmulator(api_key=KEY) as emu:
        emu.break_next_result("huge")
        provider = replicate(emu, max_download_mb=1, poll_interval_s=0.01)
        with pytest.raises(ProviderRequestError, match=r"over the 1048576-byte cap \(max_download_mb\)") as info:
            provider.generate(REQUEST, MemoryJobStore())
        assert isinstance(info.value, ProviderError) and info.value.job_key is not None
        provider.close()


def test_the_download_limits_are_manifest_keys(tmp_path: Any) -> None:
    from assetbuild.errors import ManifestError
    from assetbuild.spec.manifest import parse_manifest

    text = '[providers.h]\ntype = "replicate"\ndownload_deadline_s = 120\nmax_download_mb = 32\n'
    config = parse_manifest(text, tmp_path / "assetbuild.toml").manifest.providers["h"]
    assert (config.download_deadline_s, config.max_download_mb) == (120.0, 32)
    with pytest.raises(ManifestError, match="assetbuild.toml:4: providers.h.max_download_mb"):
        parse_manifest(text.replace("= 32", "= 0"), tmp_path / "assetbuild.toml")
