"""historical-load: bulk files -> silver (+ buffer) in bounded, resumable batches.

Its versions never enter the live feed; live (daily/feed) violations it updated or removed leave it.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.common import Stopwatch, run_id, utc_now
from normalizers import get_dataset
from tasks.gold import rebuild_gold
from tasks.historical import clean_up, commit_replace, load_batch, open_target, plan_load
from tasks.report import publish_report
from tasks.serving import refresh_live_feed
from ventureos.historical import notify_progress, read_batches, sum_counts
from ventureos.layout import historical_prefix
from ventureos.report import COUNT_COLUMNS, RunReport


@flow(name="historical-load", flow_run_name="historical-load-{agency}-{dataset}-{mode}")
def historical_load(
    agency: str, dataset: str, source: str | None = None, mode: str = "append"
) -> dict[str, Any]:
    """Load ``source`` (a file, folder or prefix; default bronze/historical/{agency}/{dataset}).

    ``append`` merges each batch into silver (SCD2); ``replace`` swaps the dataset's rows for the
    loaded ones in one commit. A re-run of a failed load skips the batches it already committed.

    Args:
        agency: Agency of the dataset, e.g. osha.
        dataset: Dataset to load, e.g. severe_injury (must be registered in normalizers).
        source: CSV file, folder, lake prefix or s3:// URI; default bronze/historical/{agency}/{dataset}.
        mode: append (merge into silver) or replace (swap the dataset's rows in one commit).
    """
    get_dataset(agency, dataset)
    rid, now, watch = run_id(), utc_now(), Stopwatch()
    plan = plan_load(agency, dataset, source or historical_prefix(agency, dataset), mode)
    done = dict(plan.done)
    skipped = sorted(done)
    progress = create_progress_artifact(
        progress=100.0 * len(done) / max(plan.batches, 1),
        key=f"historical-load-{agency}-{dataset}".replace("_", "-"),
        description=f"{plan.mode} load {plan.load_id}: batches committed of {plan.batches}",
    )
    notify_progress(len(done), plan.batches, f"resuming: {len(done)} batches already committed")
    watch.lap("plan")
    quality: dict[str, int] = {}
    written: list[str] = []
    if not plan.complete and len(done) < plan.batches:
        target = open_target(plan)
        for number, uri, frame in read_batches(plan):
            if number in done:
                continue
            outcome = load_batch(plan, target, number, uri, frame, rid, now)
            done[number] = outcome.counts
            written += outcome.written
            for issue, rows in outcome.quality.items():
                quality[issue] = quality.get(issue, 0) + rows
            update_progress_artifact(progress, 100.0 * len(done) / plan.batches)
            notify_progress(len(done), plan.batches, f"batch {number} committed")
    watch.lap("batches")
    swapped = commit_replace(plan, done) if plan.mode == "replace" and not plan.complete else 0
    clean_up(plan)
    watch.lap("swap_and_clean_up")
    live_feed = refresh_live_feed(plan)
    watch.lap("live_feed")
    # A bulk load touches nearly every entity: one rebuild from current silver instead of a per-batch
    # update (which re-reads the touched entities' rows every batch). Every run does it, so a re-run
    # also repairs gold after a crash between the last silver commit and this step.
    gold = rebuild_gold()
    watch.lap("gold")
    totals = sum_counts(done)
    report = RunReport(
        flow="historical-load",
        run_id=rid,
        counts=pl.DataFrame([{"agency": agency, "dataset": dataset} | totals]).select(
            "agency", "dataset", *COUNT_COLUMNS
        ),
        quality=pl.DataFrame(
            {"issue": list(quality), "rows": list(quality.values())},
            schema={"issue": pl.String, "rows": pl.Int64},
        ).sort("rows", descending=True),
        written=written,
        timings=watch.timings(),
        extra={
            "load_id": plan.load_id,
            "mode": plan.mode,
            "batches": plan.batches,
            "skipped_batches": skipped,
            "files_swapped_in": swapped,
            "gold": gold,
            "live_feed": live_feed,
        },
    )
    publish_report(report, key=f"historical-load-{agency}-{dataset}")
    return report.as_dict()
