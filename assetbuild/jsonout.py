"""``json.dumps(value, indent=2)`` for the CLI's ``--json`` output, written without the
standard library's pure-Python indenting encoder (which takes about a second on a plan of
10,000 assets): the same text, byte for byte, for the values the CLI prints (dicts with
string keys, lists, strings, numbers, booleans and None)."""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any

_SCALAR = json.JSONEncoder()  # numbers exactly as json.dumps writes them (nan, inf, int subclasses)


def dumps(value: Any) -> str:
    out: list[str] = []
    _write(value, "\n", out)
    return "".join(out)


def _scalar(value: Any) -> str | None:
    """The text of a string, None, a boolean or a finite float without a call per value
    (most of what a plan prints: each action's id, action and cost); None for anything else."""
    cls = value.__class__
    if cls is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if cls is float and value - value == 0.0:  # finite: as float.__repr__, which json uses
        return float.__repr__(value)
    if cls is int:
        return int.__repr__(value)
    return None


def _write(value: Any, newline: str, out: list[str]) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif isinstance(value, str):
        out.append(encode_basestring_ascii(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        sep = "{" + inner
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            out.append(sep)
            out.append(encode_basestring_ascii(key))
            out.append(": ")
            text = _scalar(item)
            if text is not None:
                out.append(text)
            elif item.__class__ is list and not item:
                out.append("[]")
            else:
                _write(item, inner, out)
            sep = "," + inner
        out.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        sep = "[" + inner
        for item in value:
            out.append(sep)
            text = _scalar(item)
            if text is not None:
                out.append(text)
            else:
                _write(item, inner, out)
            sep = "," + inner
        out.append(newline + "]")
    elif isinstance(value, (int, float)):
        out.append(_SCALAR.encode(value))
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
