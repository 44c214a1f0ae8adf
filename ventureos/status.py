"""Freshness per dataset: which datasets are expected, and whether each one arrived recently enough.

A dataset's cadence (``Dataset.cadence_days`` in the registry, overridden by
``VENTUREOS_DATASET_CADENCE_DAYS``) is how often its source publishes. A dataset with a cadence is
stale once its last ingest (the newest ``meta_ingest_timestamp`` of its silver rows) is older than the
cadence plus ``VENTUREOS_FRESHNESS_GRACE_HOURS``, or when it was never ingested. Cadence 1 means every
daily-ingest must find its files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import polars as pl

from normalizers import REGISTRY, check_selection
from ventureos.lakehouse import Lakehouse
from ventureos.layout import DAILY_PREFIX
from ventureos.settings import Settings

SUMMARY_COLUMNS = ("agency", "dataset", "meta_ingest_timestamp", "event_date", "is_current")
"""The only silver columns the check reads (no payload columns)."""

Freshness = Literal["OK", "STALE", "UNTRACKED"]


def cadences(settings: Settings) -> dict[str, int | None]:
    """``agency/dataset`` -> cadence in days (None: no expectation), registry defaults plus overrides."""
    overrides = settings.cadence_overrides
    unknown = sorted(set(overrides) - set(REGISTRY))
    if unknown:
        raise ValueError(
            f"VENTUREOS_DATASET_CADENCE_DAYS names unknown dataset(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(REGISTRY))}"
        )
    found: dict[str, int | None] = {key: entry.cadence_days for key, entry in REGISTRY.items()}
    for key, days in overrides.items():
        found[key] = days or None
    return found


def expected_daily(settings: Settings, agency: str | None = None, dataset: str | None = None) -> list[str]:
    """The datasets of a daily-ingest's selection whose files must be there every day (cadence 1)."""
    check_selection(agency, dataset)
    return sorted(
        key
        for key, days in cadences(settings).items()
        if days == 1
        and (agency is None or REGISTRY[key].agency == agency)
        and (dataset is None or REGISTRY[key].dataset == dataset)
    )


@dataclass(frozen=True)
class DatasetStatus:
    agency: str
    dataset: str
    cadence_days: int | None
    last_ingest: datetime | None
    """Newest ``meta_ingest_timestamp`` among the dataset's silver rows (any version)."""
    last_event_date: date | None
    """Newest ``event_date`` among its current rows."""
    current_rows: int
    last_delivery: str | None
    """Newest date folder under bronze/daily for the dataset (what arrived, ingested or not)."""
    age_hours: float | None
    status: Freshness

    @property
    def key(self) -> str:
        return f"{self.agency}/{self.dataset}"

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["last_ingest"] = self.last_ingest.isoformat() if self.last_ingest else None
        row["last_event_date"] = self.last_event_date.isoformat() if self.last_event_date else None
        return row


def silver_summary(lakehouse: Lakehouse) -> pl.DataFrame:
    """Per dataset: last ingest, last current event date, current rows; five narrow columns read."""
    frame = pl.from_arrow(lakehouse.violations().scan(selected_fields=SUMMARY_COLUMNS).to_arrow())
    assert isinstance(frame, pl.DataFrame)
    return (
        frame.lazy()
        .group_by("agency", "dataset")
        .agg(
            last_ingest=pl.col("meta_ingest_timestamp").max(),
            last_event_date=pl.col("event_date").filter(pl.col("is_current")).max(),
            current_rows=pl.col("is_current").fill_null(False).sum().cast(pl.Int64),
        )
        .collect()
    )


def last_delivery(lakehouse: Lakehouse, key: str) -> str | None:
    """Newest ``YYYY-MM-DD`` folder under bronze/daily/{agency}/{dataset} (a listing, no reads)."""
    days = [d for d in lakehouse.storage.list_dirs(f"{DAILY_PREFIX}/{key}") if _is_day(d)]
    return max(days) if days else None


def _is_day(name: str) -> bool:
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


def check_freshness(lakehouse: Lakehouse, now: datetime) -> list[DatasetStatus]:
    """The freshness of every registered dataset at ``now`` (timezone-aware), in registry order."""
    days_by_key = cadences(lakehouse.settings)
    grace = timedelta(hours=lakehouse.settings.freshness_grace_hours)
    summary = {
        f"{row['agency']}/{row['dataset']}": row for row in silver_summary(lakehouse).iter_rows(named=True)
    }
    found = []
    for key, entry in REGISTRY.items():
        row = summary.get(key, {})
        last = row.get("last_ingest")
        cadence = days_by_key[key]
        age = (now - last).total_seconds() / 3600 if last else None
        if cadence is None:
            status: Freshness = "UNTRACKED"
        elif last is None or now - last > timedelta(days=cadence) + grace:
            status = "STALE"
        else:
            status = "OK"
        found.append(
            DatasetStatus(
                agency=entry.agency,
                dataset=entry.dataset,
                cadence_days=cadence,
                last_ingest=last,
                last_event_date=row.get("last_event_date"),
                current_rows=int(row.get("current_rows") or 0),
                last_delivery=last_delivery(lakehouse, key),
                age_hours=round(age, 1) if age is not None else None,
                status=status,
            )
        )
    return found


def stale(statuses: list[DatasetStatus]) -> list[DatasetStatus]:
    return [s for s in statuses if s.status == "STALE"]


def describe_stale(statuses: list[DatasetStatus]) -> str:
    """One line naming every stale dataset and why ('' when none is)."""
    parts = []
    for s in stale(statuses):
        since = f"last ingest {s.age_hours:g} h ago" if s.age_hours is not None else "never ingested"
        parts.append(f"{s.key} ({since}; expected every {s.cadence_days} d)")
    return f"stale: {', '.join(parts)}" if parts else ""


def markdown(statuses: list[DatasetStatus], now: datetime) -> str:
    """The freshness table as markdown (the status flow's artifact)."""
    verdict = describe_stale(statuses) or "every expected dataset is fresh"
    lines = [
        f"# Dataset freshness at {now.isoformat(timespec='minutes')} — {verdict}",
        "",
        "| dataset | status | cadence (d) | last ingest | age (h) | last event | current rows | last delivery |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in statuses:
        row = s.as_dict()
        cells = [s.key, s.status, row["cadence_days"], row["last_ingest"], row["age_hours"]]
        cells += [row["last_event_date"], s.current_rows, s.last_delivery]
        lines.append("| " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def parse_now(value: str | None, default: datetime) -> datetime:
    """An ISO timestamp (naive = UTC) for the check's clock, or ``default``."""
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--at must be an ISO timestamp such as 2024-03-06T07:00Z, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=default.tzinfo)
