"""Consolidation steps: buffer -> month files, month files -> year file, and the run report artifact."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.policy import IO_TASK, PURE_TASK
from ventureos.archive import ConsolidationResult, consolidate_month, consolidate_year
from ventureos.lakehouse import current_lakehouse


@task(name="consolidate-month", **IO_TASK)
def consolidate_month_task(month: str) -> ConsolidationResult:
    """Safe to retry: a retry first completes whatever the failed attempt committed."""
    return consolidate_month(current_lakehouse().storage, month, current_lakehouse().violations())


@task(name="consolidate-year", **IO_TASK)
def consolidate_year_task(year: str, today: date, force: bool) -> ConsolidationResult:
    return consolidate_year(current_lakehouse().storage, year, today, force)


@task(name="publish-consolidation-report", **PURE_TASK)
def publish_consolidation_report(result: ConsolidationResult, maintenance: list[dict]) -> None:
    """Keyed artifacts (one key per flow), so the trend across runs is visible."""
    key = f"{result.kind}-consolidate"
    create_markdown_artifact(
        markdown=result.markdown(), key=f"{key}-report", description=result.summary_line()
    )
    if maintenance:
        create_table_artifact(table=maintenance, key=f"{key}-maintenance", description="Iceberg maintenance")
