"""``ventureos demo``: the main job on the embedded default over bundled real data."""

from __future__ import annotations

import polars as pl

from ventureos.cli.output import console, print_frame
from ventureos.cli.query import run_query
from ventureos.cli.serving import serving_top
from ventureos.demo import (
    DEMO_DATE,
    loaded_lines,
    next_lines,
    penalty_lines,
    serving_lines,
    set_aside_lines,
    stage_demo,
    wrapped,
)
from ventureos.gold import LEVELS
from ventureos.lakehouse import current_lakehouse

NAME_WIDTH = 34
"""Company names are cut to this many characters so a leaderboard fits ``WIDTH`` columns."""


def say(lines: list[str]) -> None:
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def leaderboard(by: str, limit: int) -> pl.DataFrame:
    """Top companies of the serving layer as a narrow table: rank, name, violations, penalties."""
    top = serving_top("company", by=by, limit=limit)
    name = pl.col("name").fill_null(pl.col("entity_key"))
    return top.select(
        pl.int_range(1, pl.len() + 1).alias("#"),
        pl.when(name.str.len_chars() > NAME_WIDTH)
        .then(name.str.slice(0, NAME_WIDTH - 1) + "…")
        .otherwise(name)
        .alias("company"),
        "violations",
        "penalties",
    )


def demo() -> None:
    """Stage real OSHA severe-injury reports and EPA ECHO facilities into a fresh embedded home, ingest
    them, sync gold to the serving store, and show the leaderboards as the API reads them."""
    settings = current_lakehouse().settings
    files = stage_demo(settings)
    say(
        wrapped(
            f"VentureOS demo: real public samples (OSHA severe injury reports and EPA ECHO facilities,"
            f" {len(files)} bronze files dated {DEMO_DATE}) into a fresh lakehouse at {settings.home}"
        )
    )
    from flows.daily_ingest import daily_ingest

    report = daily_ingest(date=DEMO_DATE)
    totals = report["totals"]
    say(["", *wrapped(f"Read {totals['read']:,} records; {totals['inserted']:,} are violations:")])
    say(loaded_lines(report["datasets"]))
    quarantine = run_query("select agency, dataset, reason, source_uri from silver_violations_quarantine")
    say(["", *set_aside_lines(quarantine, totals["read"])])
    if not report["reconciled"]:
        say(["", "warning: the run's counts do not reconcile; see `ventureos run daily-ingest --json`"])

    from flows.gold_sync import gold_sync

    synced = gold_sync()
    entities = {
        level: run_query(f"select count(*) from gold_{level}_stats where agency = 'all'").item()
        for level in LEVELS
    }
    say(["", *serving_lines(entities, synced["written"])])

    penalized = run_query(
        "select agency, dataset, count(*) as n, sum(penalty_amount) as total from silver_violations"
        " where is_current and penalty_amount > 0 group by agency, dataset order by total desc"
    )
    say(["", *penalty_lines(penalized, report["datasets"])])
    print_frame(leaderboard("penalty", 10), title="Top 10 companies by penalties")
    print_frame(leaderboard("count", 5), title="Top 5 companies by violations")
    say(["", *next_lines()])
