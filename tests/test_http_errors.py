"""classify_error: the one place every host's errors are classed (providers/_http.py).

Each row is a host's error as its parser reads it, where it arrived, and what it must mean.
The behaviour behind each row is asserted end to end against the emulators in
test_provider_contract.py and the per-host files; this table pins the mapping itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from assetbuild.errors import ProviderRefused, ProviderRequestError, ProviderUnavailable
from assetbuild.providers._http import HostError, Verdict, classify_error
from assetbuild.providers.evolink import parse_error as parse_evolink_error
from assetbuild.providers.modelark import parse_ark_error

PLAIN = HostError("SomeCode", "went wrong")
REFUSED = HostError("content_policy_violation", "the prompt may be sensitive", refused=True)
TRY_LATER = HostError("RateLimitExceeded.EndpointIPMExceeded", "slow down", transient=True)
REQUEST_FAULT = HostError("invalid_parameters", "bad size", transient=False)

V = Verdict


@pytest.mark.parametrize(("err", "where", "status", "options", "verdict"), [
    # An HTTP answer: 429 and 5xx are the host's trouble, retried while nothing can have billed.
    (PLAIN, "http", 429, {}, V.RETRY),
    (PLAIN, "http", 429, {"billable": True}, V.RETRY),  # a 429 started nothing
    (REFUSED, "http", 429, {"billable": True}, V.RETRY),  # the status outranks the words
    (PLAIN, "http", 503, {}, V.RETRY),  # a GET, a poll, an upload
    (PLAIN, "http", 500, {"billable": True}, V.BILLING_UNCERTAIN),  # the job may have started
    (PLAIN, "http", 502, {"billable": True}, V.BILLING_UNCERTAIN),
    (PLAIN, "http", 500, {"billable": True, "unstarted": frozenset({500})}, V.RETRY),  # Ark: 500 starts nothing
    (PLAIN, "http", 503, {"billable": True, "unstarted": frozenset({500})}, V.BILLING_UNCERTAIN),
    (REFUSED, "http", 500, {"billable": True}, V.BILLING_UNCERTAIN),
    # Any other 4xx: never retried.
    (REFUSED, "http", 400, {}, V.REFUSED),
    (REFUSED, "http", 422, {"billable": True}, V.REFUSED),
    (PLAIN, "http", 400, {}, V.REQUEST),
    (PLAIN, "http", 404, {}, V.REQUEST),
    (PLAIN, "http", 401, {}, V.AUTH),
    (PLAIN, "http", 403, {}, V.AUTH),
    (PLAIN, "http", 402, {"billable": True}, V.QUOTA),
    (TRY_LATER, "http", 400, {}, V.REQUEST),  # an HTTP status is read by its number, not the host's code
    # An error envelope under HTTP 200: a numeric code is read like a status; never retried.
    (PLAIN, "envelope", 500, {}, V.UNAVAILABLE),
    (PLAIN, "envelope", 429, {}, V.UNAVAILABLE),
    (PLAIN, "envelope", 5003, {}, V.UNAVAILABLE),  # the WaveSpeed/Atlas 5000 series (§6.3)
    (PLAIN, "envelope", 400, {}, V.REQUEST),
    (PLAIN, "envelope", "500", {}, V.REQUEST),  # a code that is not a number says nothing of trouble
    (PLAIN, "envelope", None, {}, V.REQUEST),
    (REFUSED, "envelope", 500, {}, V.REFUSED),  # inside an answer the host's words outrank the code
    (TRY_LATER, "envelope", None, {}, V.UNAVAILABLE),  # Ark's rate-limit codes under HTTP 200
    (REQUEST_FAULT, "envelope", 503, {}, V.UNAVAILABLE),
    # A job that ended failed: the host's trouble unless its code blames the request.
    (PLAIN, "job", None, {}, V.UNAVAILABLE),
    (HostError(None, "no reason given"), "job", None, {}, V.UNAVAILABLE),
    (REFUSED, "job", None, {}, V.REFUSED),
    (TRY_LATER, "job", None, {}, V.UNAVAILABLE),
    (REQUEST_FAULT, "job", None, {}, V.REQUEST),
])
def test_classify_error(err: HostError, where: Any, status: Any, options: dict[str, Any], verdict: Verdict) -> None:
    assert classify_error(err, where, status, **options) is verdict


@pytest.mark.parametrize(("verdict", "error"), [
    (V.RETRY, ProviderUnavailable),
    (V.BILLING_UNCERTAIN, ProviderUnavailable),
    (V.UNAVAILABLE, ProviderUnavailable),
    (V.REFUSED, ProviderRefused),
    (V.AUTH, ProviderRequestError),  # the user fixes the key: never retried, no fallback
    (V.QUOTA, ProviderRequestError),
    (V.REQUEST, ProviderRequestError),
])
def test_each_verdict_raises_one_error(verdict: Verdict, error: type) -> None:
    assert verdict.error is error


@pytest.mark.parametrize(("code", "verdict"), [
    ("SensitiveContentDetected.SevereViolation", V.REFUSED),
    ("OutputImageSensitiveContentDetected", V.REFUSED),
    ("RateLimitExceeded.EndpointRPMExceeded", V.UNAVAILABLE),
    ("ServerOverloaded", V.UNAVAILABLE),
    ("InternalServiceError", V.UNAVAILABLE),
    ("QuotaExceeded", V.UNAVAILABLE),  # Ark's 429 row: try later, not "no credit"
    ("InvalidParameter", V.REQUEST),
    ("AccountOverdueError", V.REQUEST),
])
def test_an_ark_error_under_http_200_is_classed_by_its_code(code: str, verdict: Verdict) -> None:
    err = parse_ark_error(200, {"error": {"code": code, "message": "m"}}, "")
    assert classify_error(err, "envelope") is verdict


@pytest.mark.parametrize(("code", "verdict"), [
    ("content_policy_violation", V.REFUSED),
    ("invalid_parameters", V.REQUEST),
    ("quota_exceeded", V.REQUEST),  # evolink's account quota: a rerun will not fix it
    ("generation_timeout", V.UNAVAILABLE),
    ("service_error", V.UNAVAILABLE),
])
def test_an_evolink_failed_task_is_classed_by_its_code(code: str, verdict: Verdict) -> None:
    err = parse_evolink_error(200, {"status": "failed", "error": {"code": code, "message": "m"}}, "")
    assert classify_error(err, "job") is verdict
