"""``ventureos demo``: the main job on the embedded default over bundled real data."""

from __future__ import annotations

from ventureos.cli.output import console, print_frame, print_report
from ventureos.cli.query import run_query
from ventureos.demo import DEMO_DATE, stage_demo
from ventureos.lakehouse import current_lakehouse

TOP_COMPANIES = """
select company_slug, first(company_name) as company, count(*) as violations,
       count(distinct state) as states
from silver_violations where is_current group by company_slug
order by violations desc, company_slug limit 10
"""


def demo() -> None:
    """Stage real OSHA severe-injury reports into a fresh embedded home, ingest them, summarize."""
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
    print_frame(run_query(TOP_COMPANIES), title="Top 10 companies by violation count")
    console.print(f"catalog: {settings.sql_catalog_uri}  lake: {settings.lake}")
