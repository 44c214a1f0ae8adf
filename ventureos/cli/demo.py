"""``ventureos demo``: the main job on the embedded default over bundled real data."""

from __future__ import annotations

from ventureos.cli.output import console, print_frame, print_report
from ventureos.cli.query import run_query
from ventureos.cli.serving import serving_top
from ventureos.demo import DEMO_DATE, stage_demo
from ventureos.lakehouse import current_lakehouse


def demo() -> None:
    """Stage real OSHA severe-injury reports into a fresh embedded home, ingest them, sync gold to the
    serving store and end with the top 10 companies as the API reads them."""
    settings = current_lakehouse().settings
    files = stage_demo(settings)
    console.print(f"staged {len(files)} bronze files for {DEMO_DATE} under {settings.lake}")
    from flows.daily_ingest import daily_ingest

    report = daily_ingest(date=DEMO_DATE)
    print_report(report)
    silver = run_query(
        "select count(*) as rows, count(distinct violation_id) as violations from silver_violations"
    )
    quarantined = run_query("select count(*) as n from silver_violations_quarantine").item()
    console.print(
        f"silver.violations: {silver['rows'].item()} rows ({silver['violations'].item()} violations); "
        f"quarantined: {quarantined}"
    )
    from flows.gold_sync import gold_sync

    synced = gold_sync()
    console.print(f"gold-sync: {synced['written']} Entities items written to {settings.serving_backend}")
    console.print(f"catalog: {settings.sql_catalog_uri}  lake: {settings.lake}")
    print_frame(serving_top("company", limit=10), title="Top 10 companies by violation count (serving layer)")
