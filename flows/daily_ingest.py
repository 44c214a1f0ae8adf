"""daily-ingest: bronze/daily for one date -> silver (+ buffer), gold, live feed, quarantine, run report."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import parse_day, run_id, utc_now
from normalizers import get_dataset
from tasks.bronze import daily_prefix, find_daily_datasets, read_bronze
from tasks.gold import update_gold
from tasks.normalize import normalize_batch
from tasks.report import build_report, publish_report
from tasks.serving import update_live_feed
from tasks.silver import write_quarantine, write_silver


@flow(name="daily-ingest", flow_run_name="daily-ingest-{date}")
def daily_ingest(date: str, agency: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Ingest every dataset present under bronze/daily for ``date`` (or only the one named)."""
    day = parse_day(date)
    if agency and dataset:
        get_dataset(agency, dataset)
    rid, now = run_id(), utc_now()
    targets = find_daily_datasets(day, agency, dataset)
    batches = [normalize_batch(read_bronze(daily_prefix(a, d, day), a, d), a, d) for a, d in targets]
    plan, written = write_silver(batches, rid, now, day)
    update_gold(plan)
    update_live_feed(plan)
    write_quarantine(batches, rid, now)
    report = build_report("daily-ingest", rid, batches, plan, written)
    publish_report(report, key=f"daily-ingest-{agency or 'all'}-{dataset or 'all'}")
    return report.as_dict()
