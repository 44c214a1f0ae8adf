"""The storage layout: DESIGN.md's paths, and the live-feed rule built from the same prefixes."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pytest

from ventureos import layout
from ventureos.layout import from_live_source, is_live_source
from ventureos.settings import load_settings
from ventureos.storage import open_storage


def test_keys_follow_the_storage_contract() -> None:
    file_id = uuid.UUID(int=1)
    assert layout.daily_prefix("osha", "severe_injury", "2024-03-05") == (
        "bronze/daily/osha/severe_injury/2024-03-05"
    )
    assert layout.historical_prefix("osha", "enforcement") == "bronze/historical/osha/enforcement"
    assert layout.feed_batch_key("faa", "enforcement", "2024-03-05", "b1") == (
        "bronze/feed/faa/enforcement/2024-03-05/b1.jsonl"
    )
    assert layout.buffer_key("2024-03-05", "epa", "echo", file_id) == (
        f"silver/violations/buffer/ingest_date=2024-03-05/epa-echo-{file_id}.parquet"
    )
    assert (
        layout.month_key("2024", "03")
        == "silver/violations/archive/violation_year=2024/month=03/data.parquet"
    )
    assert layout.year_key("2024") == "silver/violations/archive/violation_year=2024/data.parquet"
    assert layout.late_key("2024") == "silver/violations/late/violation_year=2024/data.parquet"
    folder = layout.buffer_key("2024-03-05", "epa", "echo", file_id).split("/")[-2]
    assert (layout.buffer_ingest_date(folder), layout.buffer_ingest_date("_tmp")) == ("2024-03-05", None)


def lake_uris(root: str) -> dict[str, str]:
    """Source URIs as silver records them, for a key of each bronze kind built by the layout."""
    storage = open_storage(root, load_settings())
    return {
        "daily": storage.uri(f"{layout.daily_prefix('osha', 'severe_injury', '2024-03-05')}/1.json"),
        "feed": storage.uri(layout.feed_batch_key("osha", "severe_injury", "2024-03-05", "b1")) + "#m-1",
        "historical": storage.uri(f"{layout.historical_prefix('osha', 'severe_injury')}/part-1.csv"),
    }


@pytest.mark.parametrize("root", ["s3://lake", "s3://lake/prefix", "LOCAL"])
def test_daily_and_feed_sources_are_live_and_historical_ones_are_not(root: str, home: Path) -> None:
    uris = lake_uris(str(home / "lake") if root == "LOCAL" else root)
    expected = {"daily": True, "feed": True, "historical": False}
    assert {kind: is_live_source(uri) for kind, uri in uris.items()} == expected
    frame = pl.DataFrame({"meta_source_uri": list(uris.values())})
    assert frame.select(from_live_source()).to_series().to_list() == list(expected.values())


def test_other_sources_are_not_live() -> None:
    others = [
        None,
        layout.message_uri("ventureos-feed", "m-1"),
        "s3://lake/xbronze/daily/osha/severe_injury/2024-03-05/1.json",
        "s3://lake/" + layout.buffer_key("2024-03-05", "osha", "severe_injury", uuid.UUID(int=1)),
    ]
    assert [is_live_source(uri) for uri in others] == [False] * len(others)
    frame = pl.DataFrame({"meta_source_uri": others}, schema={"meta_source_uri": pl.String})
    assert frame.select(from_live_source()).to_series().to_list() == [False] * len(others)
