"""The redactor (store/redaction.py), issue 17 item 7: a secret is replaced in every form a
host or a store can echo it in: exact, stripped, JSON-, repr-, URL- and HTML-escaped, in any
letter case, and any prefix of 8 or more characters (a host that cuts the key short); for
API keys and AWS credentials alike."""

from __future__ import annotations

import json

from assetbuild.store.redaction import MIN_PREFIX, redact_text, secret_forms

KEY = "sk-REL-SECRET-0123456789abcdef"


def redact(text: str, *secrets: str) -> str:
    return redact_text(text, tuple(f for s in secrets for f in secret_forms(s)))


def test_exact_lowercased_and_uppercased_echoes_are_redacted():
    assert redact(f"Bearer {KEY}", KEY) == "Bearer ***"
    assert redact(f"bearer {KEY.lower()} was refused", KEY) == "bearer *** was refused"
    assert redact(f"KEY={KEY.upper()};", KEY) == "KEY=***;"


def test_any_prefix_of_8_characters_or_more_is_redacted_and_a_shorter_one_is_not():
    assert redact(f"key {KEY[:20]}... is invalid", KEY) == "key ***... is invalid"
    assert redact(f"key {KEY[:MIN_PREFIX]} is invalid", KEY) == "key *** is invalid"
    assert redact(f"key {KEY[:MIN_PREFIX].lower()}x", KEY) == "key ***x"
    assert redact(f"key {KEY[:MIN_PREFIX - 1]} ok", KEY) == f"key {KEY[:MIN_PREFIX - 1]} ok"


def test_a_json_error_body_keeps_its_shape_and_loses_the_key():
    body = json.dumps({"error": {"message": f"invalid key {KEY.lower()[:16]}", "request_id": f"Bearer {KEY}"}})
    out = redact(body, KEY)
    assert KEY not in out and KEY.lower()[:MIN_PREFIX] not in out.lower()
    assert json.loads(out) == {"error": {"message": "invalid key ***", "request_id": "Bearer ***"}}


def test_aws_credentials_are_redacted_in_every_form():
    key_id, secret, token = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzE" + "x" * 300
    text = (f"<Message>token {token[:40]} from {key_id.lower()} "
            f"signed Credential={key_id}/20261206/us-east-1/s3 secret {secret.replace('/', '%2F')}</Message>")
    out = redact(text, key_id, secret, token)
    assert "AKIAIOSF" not in out.upper() and "FwoGZXIv" not in out and "wJalrXUt" not in out, out


def test_an_empty_secret_redacts_nothing_and_text_without_one_is_unchanged():
    assert redact("nothing to hide here", "") == "nothing to hide here"
    assert redact("x" * 100_000, KEY) == "x" * 100_000
