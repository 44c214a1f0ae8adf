"""daily-ingest: bronze/daily for one date -> silver (+ buffer), gold, live feed, quarantine, run report."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.common import Stopwatch, parse_day, run_id, utc_now
from normalizers import check_selection
from tasks.bronze import daily_prefix, find_daily_datasets, read_bronze
from tasks.gold import update_gold
from tasks.normalize import normalize_batch
from tasks.report import build_report, publish_report
from tasks.serving import update_live_feed
from tasks.silver import write_quarantine, write_silver


def _run_name() -> str:
    return f"daily-ingest-{flow_run.parameters.get('date') or utc_now().date().isoformat()}"


@flow(name="daily-ingest", flow_run_name=_run_name)
def daily_ingest(
    date: str | None = None, agency: str | None = None, dataset: str | None = None
) -> dict[str, Any]:
    """Ingest every dataset present under bronze/daily for ``date`` (or only the one named).

    Args:
        date: The bronze/daily folder to load, YYYY-MM-DD; default today (UTC), what the schedule runs.
        agency: Only this agency's datasets (e.g. osha).
        dataset: Only this dataset of the agency (e.g. severe_injury).
    """
    day = parse_day(date or utc_now().date().isoformat())
    check_selection(agency, dataset)
    rid, now, watch = run_id(), utc_now(), Stopwatch()
    targets = find_daily_datasets(day, agency, dataset)
    batches = [normalize_batch(read_bronze(daily_prefix(a, d, day), a, d), a, d) for a, d in targets]
    watch.lap("read_and_normalize")
    plan, written = write_silver(batches, rid, now, day)
    watch.lap("silver")
    update_gold(plan)
    watch.lap("gold")
    update_live_feed(plan)
    watch.lap("live_feed")
    write_quarantine(batches, rid, now)
    watch.lap("quarantine")
    report = build_report("daily-ingest", rid, batches, plan, written)
    report.timings = watch.timings()
    publish_report(report, key=f"daily-ingest-{agency or 'all'}-{dataset or 'all'}")
    return report.as_dict()
