"""daily-ingest: bronze/daily for one date -> silver (+ buffer), gold, live feed, quarantine, run report."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows.common import Stopwatch, parse_day, run_id, utc_now, write_daily_path
from normalizers import check_selection
from tasks.bronze import find_daily_datasets, read_bronze
from tasks.normalize import normalize_batch
from tasks.report import publish_report
from ventureos.layout import daily_prefix
from ventureos.settings import load_settings
from ventureos.status import expected_daily

INCOMPLETE = "Incomplete"
"""State name of a run that loaded what arrived but missed an expected dataset (type COMPLETED)."""


def _run_name() -> str:
    return f"daily-ingest-{flow_run.parameters.get('date') or utc_now().date().isoformat()}"


@flow(name="daily-ingest", flow_run_name=_run_name)
def daily_ingest(
    date: str | None = None, agency: str | None = None, dataset: str | None = None
) -> dict[str, Any] | State[dict[str, Any]]:
    """Ingest every dataset present under bronze/daily for ``date`` (or only the one named).

    A dataset expected every day (cadence 1, ventureos/status.py) with no files for ``date`` ends the
    run in a Completed state named "Incomplete" whose message names it (calling the flow still returns
    the report); the report lists it under ``missing_datasets`` and its artifact under Warnings.

    Args:
        date: The bronze/daily folder to load, YYYY-MM-DD; default today (UTC), what the schedule runs.
        agency: Only this agency's datasets (e.g. osha).
        dataset: Only this dataset of the agency (e.g. severe_injury).
    """
    day = parse_day(date or utc_now().date().isoformat())
    check_selection(agency, dataset)
    rid, now, watch = run_id(), utc_now(), Stopwatch()
    targets = find_daily_datasets(day, agency, dataset)
    # No files is not an error (a source may skip a day), but a mistyped date must not pass unnoticed.
    warnings = (
        [] if targets else [f"no bronze files under {daily_prefix(agency or '*', dataset or '*', day)}"]
    )
    found = {f"{a}/{d}" for a, d in targets}
    missing = [key for key in expected_daily(load_settings(), agency, dataset) if key not in found]
    warnings += [
        f"expected dataset {key} missing: no files under {daily_prefix(*key.split('/'), day)}"
        for key in missing
    ]
    for warning in warnings:
        get_run_logger().warning(warning)
    batches = [normalize_batch(read_bronze(daily_prefix(a, d, day), a, d), a, d) for a, d in targets]
    watch.lap("read_and_normalize")
    report = write_daily_path("daily-ingest", batches, rid, now, day, watch)
    if warnings:
        report.extra["warnings"] = warnings
    if missing:
        report.extra["missing_datasets"] = missing
    publish_report(report, key=f"daily-ingest-{agency or 'all'}-{dataset or 'all'}")
    if missing:
        message = f"expected dataset(s) missing for {day}: {', '.join(missing)}"
        return Completed(name=INCOMPLETE, message=message, data=report.as_dict())
    return report.as_dict()
