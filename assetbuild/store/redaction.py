"""The redactor: a secret (an API key, an AWS credential, the remote signing key) taken out of
any text before it is shown or stored. One place, so every answer a host or a bucket gives
passes the same rules on its way to an error, a log line, the lock, the cache index or the
journal.

A secret is replaced (by ``***``) wherever it shows up in any of the forms hosts echo it in
(:func:`secret_forms`: as is and stripped, JSON-, repr-, URL- and HTML-escaped), in any letter
case (a host that lower-cases headers), and as any prefix of :data:`MIN_PREFIX` characters or
more (a host that cuts the key short: ``key sk-REL-SECRET-0123... is invalid``). Shorter
fragments are left: 7 characters of a key give an attacker little, and redacting them would
blank ordinary words."""

from __future__ import annotations

import functools
import json
import re
import urllib.parse
from typing import Iterable

MIN_PREFIX = 8  # characters: any longer prefix of a secret is redacted
MASK = "***"


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every way ``secret`` can show up in text: as is and stripped, and as a repr, a JSON
    string, a URL or form value, or HTML would write it (httpx shows a bad header as a repr;
    hosts echo headers JSON-escaped or inside HTML pages). Longest first."""
    import html  # here: html.entities is 2 ms of imports, and most commands redact nothing

    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        forms |= {
            value,
            repr(value)[1:-1],
            repr(value.encode("utf-8", "backslashreplace"))[2:-1],
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            html.escape(value),
            html.escape(value, quote=False),
        }
    return tuple(sorted((form for form in forms if form), key=len, reverse=True))


def forms_of(secrets: Iterable[str | None]) -> tuple[str, ...]:
    """The forms of several secrets (empty and unset ones skipped), longest first."""
    found = {form for secret in secrets if secret for form in secret_forms(secret)}
    return tuple(sorted(found, key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _matcher(forms: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, tuple[str, ...]]] | None:
    """One case-insensitive pattern finding where any form starts (its first MIN_PREFIX
    characters, or the whole of a shorter form), and the forms each such start begins."""
    starts: dict[str, list[str]] = {}
    for form in forms:
        starts.setdefault(form[:MIN_PREFIX].lower(), []).append(form)
    if not starts:
        return None
    pattern = re.compile("|".join(re.escape(s) for s in sorted(starts, key=len, reverse=True)), re.IGNORECASE)
    return pattern, {s: tuple(f) for s, f in starts.items()}


def _matched(text: str, at: int, form: str) -> int:
    """How many characters of ``form`` match ``text`` from ``at``, ignoring case."""
    n = 0
    limit = min(len(form), len(text) - at)
    while n < limit and (text[at + n] == form[n] or text[at + n].lower() == form[n].lower()):
        n += 1
    return n


def redact_text(text: str, forms: tuple[str, ...]) -> str:
    """``text`` with every occurrence of each form, in any case, and of any prefix of one of
    MIN_PREFIX characters or more, replaced by ``***``."""
    matcher = _matcher(forms)
    if matcher is None or not text:
        return text
    pattern, by_start = matcher
    lowered = text.lower()  # a fast look first: most texts (a 10 MB base64 answer) hold no secret
    if len(lowered) == len(text) and not any(start in lowered for start in by_start):
        return text
    pieces: list[str] = []
    done = 0
    for m in pattern.finditer(text):
        at = m.start()
        if at < done:
            continue  # inside a span already redacted
        length = m.end() - at
        for form in by_start.get(m.group().lower(), ()):
            n = _matched(text, at, form)
            if n >= min(len(form), MIN_PREFIX):
                length = max(length, n)
        pieces += [text[done:at], MASK]
        done = at + length
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)
