"""``{key}`` templates of the manifest's string keys, filled in with a variant's matrix values
(``{{`` and ``}}`` are literal braces; only plain names, no attribute or index lookups). Plain
Python, no pydantic: the blueprint memo fills in an edited prompt with it without loading the
models (expand.fill words its errors for the manifest)."""

from __future__ import annotations

import string
from typing import Mapping

_PARSED: dict[str, list[tuple[str, str | None, str | None, str | None]] | ValueError] = {}


class UnknownPlaceholder(KeyError):
    """``{name}`` where ``name`` is not one of the values (or carries a format spec or a conversion)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def parsed(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """``string.Formatter().parse(template)``, once per distinct template (most assets share a
    few: the default output name, a [defaults] prompt). ValueError: a lone brace."""
    found = _PARSED.get(template)
    if found is None:
        try:
            found = list(string.Formatter().parse(template))
        except ValueError as exc:
            found = exc
        if len(_PARSED) < 100_000:
            _PARSED[template] = found
    if isinstance(found, ValueError):
        raise found
    return found


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{key}`` replaced by ``values[key]``. ValueError: a lone brace;
    UnknownPlaceholder: a name not in ``values``."""
    if "{" not in template and "}" not in template:
        return template  # nothing to fill in, no brace to unescape
    out = []
    for literal, name, spec, conv in parsed(template):
        out.append(literal)
        if name is None:
            continue
        if name not in values or spec or conv:
            raise UnknownPlaceholder(name)
        out.append(values[name])
    return "".join(out)
