"""One money format for everything the CLI prints."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl

from ventureos.cli.serving import ranked_table
from ventureos.money import format_money, money_columns


def test_format_money() -> None:
    assert format_money(125000) == "$125,000.00"
    assert format_money("125000.00") == "$125,000.00"
    assert format_money(Decimal("125000")) == "$125,000.00"
    assert format_money(1234567.891) == "$1,234,567.89"
    assert format_money(Decimal("0")) == "$0.00"
    assert format_money(-5.5) == "-$5.50"
    assert format_money(None) == ""
    assert format_money("") == ""
    assert format_money("n/a") == ""


def test_money_columns_formats_only_the_named_columns() -> None:
    frame = pl.DataFrame(
        {"violations": [3, 1], "penalty_total": [Decimal("125000.00"), None]},
        schema={"violations": pl.Int64, "penalty_total": pl.Decimal(18, 2)},
    )
    assert money_columns(frame, "penalty_total").to_dict(as_series=False) == {
        "violations": [3, 1],
        "penalty_total": ["$125,000.00", ""],
    }


def test_top_prints_penalties_as_money() -> None:
    ranked = pl.DataFrame(
        {
            "entity_key": ["COMPANY#pj-keating"],
            "entity_name": ["PJ KEATING COMPANY"],
            "agency": ["all"],
            "violation_count": [1],
            "penalty_total": [Decimal("140000.00")],
            "first_event_date": [date(2017, 8, 24)],
            "last_event_date": [date(2017, 8, 24)],
        },
        schema_overrides={"penalty_total": pl.Decimal(18, 2)},
    )
    assert ranked_table(ranked).rows(named=True) == [
        {
            "entity_key": "COMPANY#pj-keating",
            "name": "PJ KEATING COMPANY",
            "violations": 1,
            "penalties": "$140,000.00",
            "last": date(2017, 8, 24),
        }
    ]
