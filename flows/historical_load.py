"""historical-load: bulk files -> silver (+ buffer) in bounded, resumable batches.

Its versions never enter the live feed; live (daily/feed) violations it updated or removed leave it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.common import Stopwatch, run_id, utc_now
from normalizers import get_dataset
from tasks.gold import rebuild_gold, update_gold
from tasks.historical import clean_up, commit_replace, load_batch, open_target, prepare_load
from tasks.report import publish_report
from tasks.serving import refresh_live_feed
from ventureos.historical import notify_progress, read_batches
from ventureos.layout import historical_prefix
from ventureos.load import add_quality, load_report


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
    load = prepare_load(agency, dataset, source or historical_prefix(agency, dataset), mode)
    done = dict(load.done)
    skipped = sorted(done)
    progress = create_progress_artifact(
        progress=100.0 * len(done) / max(load.batches, 1),
        key=f"historical-load-{agency}-{dataset}".replace("_", "-"),
        description=f"{load.mode} load {load.load_id}: batches committed of {load.batches}",
    )
    notify_progress(len(done), load.batches, f"resuming: {len(done)} batches already committed")
    watch.lap("prepare")
    quality: dict[str, int] = {}
    written: list[str] = []
    # A one-batch append updates gold like a daily run (the entities it touched). A bulk load touches
    # nearly every entity: one rebuild from current silver instead, as does a replace and a resumed
    # run (its skipped batches' gold updates may never have happened: the rebuild repairs them).
    incremental = load.mode == "append" and load.batches == 1 and not skipped
    gold: list[dict[str, Any]] = []
    if not load.complete and len(done) < load.batches:
        target = open_target(load)
        for number, uri, frame in read_batches(load, skip=done):
            outcome = load_batch(load, target, number, uri, frame, rid, now)
            if incremental:
                gold = update_gold(outcome.plan)
            done[number] = outcome.counts
            written += outcome.written
            add_quality(quality, outcome.quality)
            update_progress_artifact(progress, 100.0 * len(done) / load.batches)
            notify_progress(len(done), load.batches, f"batch {number} committed")
    watch.lap("batches")
    swapped = commit_replace(load, done) if load.mode == "replace" and not load.complete else 0
    clean_up(load)
    watch.lap("swap_and_clean_up")
    live_feed = refresh_live_feed(load)
    watch.lap("live_feed")
    if not incremental:
        gold = rebuild_gold()
    watch.lap("gold")
    report = load_report(
        load,
        rid,
        done,
        quality,
        {"skipped_batches": skipped, "files_swapped_in": swapped, "gold": gold, "live_feed": live_feed},
    )
    report.written, report.timings = written, watch.timings()
    publish_report(report, key=f"historical-load-{agency}-{dataset}")
    return report.as_dict()
