"""Where everything lives in the lake: every storage prefix and key rule, in one place.

The top of this layout is the storage contract of DESIGN.md; the work areas below it are owned by
the modules that use them. Keys are relative to the lake root (``Storage`` turns them into URIs).

    bronze/daily/{agency}/{dataset}/{YYYY-MM-DD}/{name}.json|.csv      live data: silver + live feed
    bronze/historical/{agency}/{dataset}/{name}.csv|.json              backfills: silver only
    bronze/feed/{agency}/{dataset}/{YYYY-MM-DD}/{batch_id}.jsonl        raw SQS batches
    silver/violations/buffer/ingest_date={YYYY-MM-DD}/{agency}-{dataset}-{uuid}.parquet
    silver/violations/archive/violation_year={YYYY}/month={MM}/data.parquet
    silver/violations/archive/violation_year={YYYY}/data.parquet       yearly, immutable
    silver/violations/late/violation_year={YYYY}/data.parquet          rows that arrived after YYYY closed
    silver/violations/_consolidation/{staging,manifests}/              consolidation work area
    staging/historical/{load_id}/{lookup}.parquet                      historical load's lookup tables

and in the Iceberg warehouse, ``{silver's location}/staging/{load_id}/``: a replace load's staging table.

Which versions may enter the live feed is a layout rule too: those whose bronze object is under a live
prefix (daily files and SQS batches, never historical loads). ``is_live_source`` and
``from_live_source`` are built from the prefix constants, so renaming a prefix keeps them right.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import polars as pl

# Bronze (contract) -------------------------------------------------------------------------------

BRONZE_PREFIX = "bronze"
DAILY_PREFIX = f"{BRONZE_PREFIX}/daily"
HISTORICAL_PREFIX = f"{BRONZE_PREFIX}/historical"
FEED_PREFIX = f"{BRONZE_PREFIX}/feed"
LIVE_PREFIXES = (DAILY_PREFIX, FEED_PREFIX)
"""Bronze prefixes whose versions enter the live feed."""


def daily_prefix(agency: str, dataset: str, date: str) -> str:
    """The folder of one dataset's daily files for one date (``YYYY-MM-DD``)."""
    return f"{DAILY_PREFIX}/{agency}/{dataset}/{date}"


def historical_prefix(agency: str, dataset: str) -> str:
    """The default source folder of a dataset's historical load."""
    return f"{HISTORICAL_PREFIX}/{agency}/{dataset}"


def feed_batch_key(agency: str, dataset: str, day: str, batch_id: str) -> str:
    """Where the raw messages of one feed-poll batch of one dataset are saved before processing."""
    return f"{FEED_PREFIX}/{agency}/{dataset}/{day}/{batch_id}.jsonl"


SENT_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SENT_AT = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"


def _sent(sent_at: datetime) -> str:
    return sent_at.astimezone(UTC).strftime(SENT_AT_FORMAT)


def message_uri(queue_name: str, message_id: str, sent_at: datetime | None = None) -> str:
    """Where a message came from, stable across redeliveries (quarantine ids hash it); with the
    envelope's ``sent_at`` when it has one, so a replay from quarantine keeps the record's as-of."""
    return (
        f"feed://{queue_name}/{_sent(sent_at)}/{message_id}"
        if sent_at
        else f"feed://{queue_name}/{message_id}"
    )


def feed_record_uri(batch_uri: str, sent_at: datetime, message_id: str) -> str:
    """The source of one feed record: its line of the batch file, with the envelope's ``sent_at``
    (the version's as-of instant, ``source_as_of``) and the message id."""
    return f"{batch_uri}#{_sent(sent_at)}/{message_id}"


# Versions order by the time of the source they came from: the date folder of a daily file (its start,
# UTC), the sent time of a feed message (in its batch file's URI, or its message URI when replayed from
# quarantine). Versions with neither (historical loads; feed records written before the sent time was
# in their URI) have no as-of and count as the oldest.
_DAILY_DATE = "(?:^|/)" + re.escape(DAILY_PREFIX) + r"/[^/#]+/[^/#]+/(\d{4}-\d{2}-\d{2})/"
_FEED_SENT_AT = "(?:(?:^|/)" + re.escape(FEED_PREFIX) + rf"/[^#]*#|^feed://[^/]+/)({_SENT_AT})/"


def source_as_of(column: str = "meta_source_uri") -> pl.Expr:
    """The as-of instant of versions, from their bronze object (a column of source URIs); null for none.

    The monotonic guard of the silver write compares these: a version never replaces one with a later
    as-of (``silver.plan_scd2``). Derived from the URI, so versions written before the guard existed
    have theirs too.
    """
    uri = pl.col(column)
    sent = uri.str.extract(_FEED_SENT_AT, 1).str.strptime(
        pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False
    )
    day = uri.str.extract(_DAILY_DATE, 1).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return pl.coalesce(sent, day.cast(pl.Datetime("us", "UTC")))


# A source URI is a storage URI (local path or s3://bucket[/prefix]/...), so a live prefix must start
# the URI or follow a slash: ``xbronze/daily/`` is not live.
_LIVE_PATTERN = "(^|/)(" + "|".join(re.escape(f"{prefix}/") for prefix in LIVE_PREFIXES) + ")"
_LIVE = re.compile(_LIVE_PATTERN)


def is_live_source(uri: str | None) -> bool:
    """True when a version's bronze object (``meta_source_uri``) is one whose versions enter the live feed."""
    return uri is not None and _LIVE.search(uri) is not None


def from_live_source(column: str = "meta_source_uri") -> pl.Expr:
    """``is_live_source`` as a Polars expression over a column of source URIs (null is not live)."""
    return pl.col(column).str.contains(_LIVE_PATTERN).fill_null(False)


# Silver files (buffer and archive: contract) -------------------------------------------------------

SILVER_PREFIX = "silver/violations"
BUFFER_PREFIX = f"{SILVER_PREFIX}/buffer"
ARCHIVE_PREFIX = f"{SILVER_PREFIX}/archive"
LATE_PREFIX = f"{SILVER_PREFIX}/late"
CONSOLIDATION_PREFIX = f"{SILVER_PREFIX}/_consolidation"
CONSOLIDATION_STAGING_PREFIX = f"{CONSOLIDATION_PREFIX}/staging"
CONSOLIDATION_MANIFEST_PREFIX = f"{CONSOLIDATION_PREFIX}/manifests"


BUFFER_PARTITION = "ingest_date="


def buffer_key(ingest_date: str, agency: str, dataset: str, file_id: uuid.UUID) -> str:
    return f"{BUFFER_PREFIX}/{BUFFER_PARTITION}{ingest_date}/{agency}-{dataset}-{file_id}.parquet"


def buffer_ingest_date(folder: str) -> str | None:
    """The ingest date (``YYYY-MM-DD``) of a folder under the buffer prefix; None for any other folder."""
    return folder.removeprefix(BUFFER_PARTITION) if folder.startswith(BUFFER_PARTITION) else None


def archive_year_prefix(year: str) -> str:
    """The folder of one violation year's archive files (its month files and its year file)."""
    return f"{ARCHIVE_PREFIX}/violation_year={year}"


def month_key(year: str, month: str) -> str:
    """The archive file of one event month (``month`` is ``MM``)."""
    return f"{archive_year_prefix(year)}/month={month}/data.parquet"


def is_month_key(key: str) -> bool:
    return "/month=" in key


def year_key(year: str) -> str:
    """The immutable archive file of a closed violation year."""
    return f"{archive_year_prefix(year)}/data.parquet"


def late_key(year: str) -> str:
    """Versions of a closed year that arrived after it closed."""
    return f"{LATE_PREFIX}/violation_year={year}/data.parquet"


def consolidation_staging_key() -> str:
    """A fresh, unique staging key for one file a consolidation run is about to swap in."""
    return f"{CONSOLIDATION_STAGING_PREFIX}/{uuid.uuid4().hex}.parquet"


def consolidation_manifest_key(created: str, kind: str, scope: str) -> str:
    """A fresh manifest key; ``created`` first, so listing the prefix gives the oldest run first."""
    return f"{CONSOLIDATION_MANIFEST_PREFIX}/{created}-{kind}-{scope}-{uuid.uuid4().hex[:8]}.json"


# Historical load work area -----------------------------------------------------------------------

HISTORICAL_STAGING_PREFIX = "staging/historical"


def historical_lookup_key(load_id: str, lookup: str) -> str:
    """A historical load's lookup table, staged as Parquet for the load's batches to join."""
    return f"{HISTORICAL_STAGING_PREFIX}/{load_id}/{lookup}.parquet"


STAGING_TABLE_FOLDER = "staging"
"""Folder of silver's location that holds the historical loads' staging tables."""


def staging_table_location(silver_location: str, load_id: str) -> str:
    """Where a historical load's staging table keeps its files: under silver's, so a swap adopts them."""
    return f"{silver_location}/{STAGING_TABLE_FOLDER}/{load_id}"
