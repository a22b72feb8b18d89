"""A word diff of two prompts, old -> new, as ``git diff --word-diff`` shows one and as
``terraform plan`` shows a changed attribute: what ``plan``, ``explain`` and ``report`` print
wherever a prompt changed. Plain data (each run of words kept, removed or added); the CLI
colours it and the report marks it up."""

from __future__ import annotations

import difflib
import re
from typing import Literal, NamedTuple

Op = Literal["=", "-", "+"]


class Piece(NamedTuple):
    op: Op  # "=" kept, "-" only in the old prompt, "+" only in the new one
    text: str


_TOKEN = re.compile(r"\s+|[^\s\w]|\w+")  # whitespace, a punctuation mark, or a word


def word_diff(old: str, new: str) -> list[Piece]:
    """The pieces that turn ``old`` into ``new``, word by word (whitespace and punctuation are
    tokens of their own, so a changed comma shows alone). Adjacent pieces of one kind merge."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    pieces: list[Piece] = []

    def add(op: Op, tokens: list[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if pieces and pieces[-1].op == op:
            pieces[-1] = Piece(op, pieces[-1].text + text)
        else:
            pieces.append(Piece(op, text))

    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("=", a[i1:i2])
        else:
            add("-", a[i1:i2])
            add("+", b[j1:j2])
    return pieces


def shorten(pieces: list[Piece], context_words: int = 6) -> list[Piece]:
    """``pieces`` with each long unchanged run cut to ``context_words`` words either side of a
    change (an ellipsis stands for the rest): a long prompt's one-word change stays readable."""
    out: list[Piece] = []
    for i, piece in enumerate(pieces):
        words = piece.text.split()
        first, last = i == 0, i == len(pieces) - 1
        if piece.op != "=" or len(words) <= 2 * context_words + 1 or (first and last):
            out.append(piece)
            continue
        lead = piece.text[:len(piece.text) - len(piece.text.lstrip())]
        trail = piece.text[len(piece.text.rstrip()):]
        head, tail = " ".join(words[:context_words]), " ".join(words[-context_words:])
        if first:
            out.append(Piece("=", f"… {tail}{trail}"))
        elif last:
            out.append(Piece("=", f"{lead}{head} …"))
        else:
            out.append(Piece("=", f"{lead}{head} … {tail}{trail}"))
    return out


def inline(pieces: list[Piece]) -> str:
    """One line in git's ``--word-diff=plain`` marks: ``[-removed-]{+added+}``."""
    return "".join(p.text if p.op == "=" else f"[-{p.text}-]" if p.op == "-" else f"{{+{p.text}+}}"
                   for p in pieces)
