"""``json.dumps(value, indent=2)`` for the CLI's ``--json`` output, written without the
standard library's pure-Python indenting encoder (which takes about a second on a plan of
10,000 assets): the same text, byte for byte, for the values the CLI prints (dicts with
string keys, lists, strings, numbers, booleans and None)."""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

_SCALAR = json.JSONEncoder()  # numbers exactly as json.dumps writes them (nan, inf, int subclasses)


def dumps(value: Any) -> str:
    out: list[str] = []
    _write(value, "\n", out)
    return "".join(out)


class Fragment(str):
    """JSON text already written for the place it goes (its indentation included): written
    as it is."""


def string(value: str) -> str:
    """A string as JSON text."""
    return encode_basestring_ascii(value)


_FLAT = {str, float, int, bool, type(None)}
_EMPTIED = {list, dict}
_ENCODERS: dict[str, Any] = {}


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _flat_encoder(inner: str) -> Any:
    """The C encoder json.dumps uses, with ``,`` + ``inner`` between items: at one depth, the
    text of a flat dict as json.dumps(indent=2) writes it (None where there is no C encoder)."""
    encoder = _ENCODERS.get(inner)
    if encoder is None and c_make_encoder is not None:
        encoder = _ENCODERS[inner] = c_make_encoder(None, _not_serializable, encode_basestring_ascii, None, ": ",
                                                    "," + inner, False, False, True)
    return encoder


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
        encoder = _flat_encoder(inner)
        if encoder is not None and value.__class__ is dict and all(
                v.__class__ in _FLAT or (v.__class__ in _EMPTIED and not v) for v in value.values()):
            # flat (each value a scalar or an empty list or dict): the C encoder writes it, with
            # the item separator at this depth (no other separator can occur in it)
            out.append("{" + inner + "".join(encoder(value, 0))[1:-1] + newline + "}")
            return
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
        deeper = inner + "  "
        encoder = _flat_encoder(deeper)
        sep = "[" + inner
        for item in value:
            out.append(sep)
            if item.__class__ is Fragment:
                out.append(item)
                sep = "," + inner
                continue
            text = _scalar(item)
            if text is not None:
                out.append(text)
            elif encoder is not None and item.__class__ is dict and item and all(
                    v.__class__ in _FLAT or (v.__class__ in _EMPTIED and not v) for v in item.values()):
                out.append("{" + deeper + "".join(encoder(item, 0))[1:-1] + inner + "}")  # a flat dict: see below
            else:
                _write(item, inner, out)
            sep = "," + inner
        out.append(newline + "]")
    elif isinstance(value, (int, float)):
        out.append(_SCALAR.encode(value))
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
