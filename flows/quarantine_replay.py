"""quarantine-replay: quarantined records re-normalized with today's normalizers; those that pass go to
silver, gold and the live feed (the daily path's tasks), then leave the quarantine."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.common import Stopwatch, run_id, utc_now
from normalizers import check_selection
from tasks.gold import update_gold
from tasks.quarantine import keep_out_stale, load_quarantine, release_quarantine, renormalize
from tasks.report import publish_report
from tasks.serving import update_live_feed
from tasks.silver import write_silver
from ventureos.quarantine import Selection, parse_since
from ventureos.report import build_report


@flow(name="quarantine-replay")
def quarantine_replay(
    agency: str | None = None,
    dataset: str | None = None,
    reason: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """Replay the selected quarantine rows; a re-run (or a run after a crash) changes nothing more.

    Args:
        agency: Only this agency's rows (e.g. osha).
        dataset: Only this dataset of the agency (e.g. severe_injury).
        reason: Only rows whose reason contains this text (case-insensitive).
        since: Only rows quarantined on or after this day, YYYY-MM-DD.
    """
    check_selection(agency, dataset)
    selection = Selection(agency, dataset, reason, parse_since(since))
    rid, now, watch = run_id(), utc_now(), Stopwatch()
    rows = load_quarantine(selection)
    replay = keep_out_stale(renormalize(rows), rows)
    watch.lap("read_and_normalize")
    # flows.common.write_daily_path's steps, called one by one: the release needs the silver plan (which
    # deletes were withdrawn), and it runs only after the silver commit.
    silver = write_silver(replay.batches, rid, now, now.date().isoformat())
    watch.lap("silver")
    update_gold(silver.plan)
    watch.lap("gold")
    update_live_feed(silver.plan)
    watch.lap("live_feed")
    released = release_quarantine(replay.released(silver.plan, rows))
    watch.lap("release")
    report = build_report("quarantine-replay", rid, replay.batches, silver.plan, silver.written)
    report.counts = replay.with_stale(report.counts)
    report.timings = watch.timings()
    report.extra["released"] = released
    report.extra["stale"] = sum(len(d.stale) for d in replay.datasets)
    report.extra["not_replayable"] = replay.not_replayable()
    for why, count in report.extra["not_replayable"].items():
        get_run_logger().info("%d rows left in quarantine: %s", count, why)
    publish_report(report, key=f"quarantine-replay-{agency or 'all'}-{dataset or 'all'}")
    return report.as_dict()
