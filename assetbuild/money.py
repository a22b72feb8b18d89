"""How an amount of money reads, everywhere it is shown: plan, build summary, progress, the
prompt before spending, job summaries, the report, errors. One owner, so ``$0.03`` in a
plan is ``$0.03`` in the report."""

from __future__ import annotations


def usd(amount: float) -> str:
    """``$0.00``, ``$0.03``, ``$1,234.50``; an amount under a cent keeps its own digits
    (``$0.0040``: a cheap image is not shown as free)."""
    if 0 < abs(amount) < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def unit_price(amount: float) -> str:
    """A price per unit (an image, a reference) with the digits it has: ``$0.035``, ``$0.5``,
    ``$0.0222``; rounding a rate to cents would misstate it (``$0.035`` is not ``$0.04``)."""
    return f"${amount:g}"
