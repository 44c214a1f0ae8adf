"""Money as the CLI prints it: dollars with thousands separators and cents (``$125,000.00``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import polars as pl


def format_money(value: Decimal | float | int | str | None) -> str:
    """``$125,000.00`` for 125000, ``125000.00`` or ``Decimal("125000")``; ``-$5.50`` for a negative
    amount; empty for a missing or unreadable value (a blank cell, never ``$0.00``)."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return ""
    if not amount.is_finite():
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def money_columns(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """``frame`` with ``columns`` replaced by their ``format_money`` text, for printing."""
    return frame.with_columns(
        pl.col(c).map_elements(format_money, return_dtype=pl.String, skip_nulls=False) for c in columns
    )
