"""Consolidation steps: buffer -> month files, month files -> year file, and the run report artifact."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.policy import IO_TASK, PURE_TASK
from tasks.report import publish_file_list
from ventureos.archive import ConsolidationResult, consolidate_month, consolidate_year
from ventureos.lakehouse import current_lakehouse
from ventureos.summary import names_markdown


@task(name="consolidate-month", **IO_TASK)
def consolidate_month_task(month: str) -> ConsolidationResult:
    """Safe to retry: a retry first completes whatever the failed attempt committed."""
    return consolidate_month(current_lakehouse().storage, month, current_lakehouse().violations())


@task(name="consolidate-year", **IO_TASK)
def consolidate_year_task(year: str, today: date, force: bool) -> ConsolidationResult:
    return consolidate_year(current_lakehouse().storage, year, today, force)


def consolidation_markdown(result: ConsolidationResult, written_key: str | None) -> str:
    """Summary, metrics and the first few files written (the whole list in ``written_key``)."""
    lines = [f"# {result.kind}-consolidate {result.scope}", "", result.summary_line(), ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result.as_dict().items() if isinstance(v, int | bool)]
    lines += names_markdown("Written", result.written, written_key)
    return "\n".join(lines)


@task(name="publish-consolidation-report", **PURE_TASK)
def publish_consolidation_report(result: ConsolidationResult, maintenance: list[dict]) -> None:
    """Keyed artifacts (one key per flow), so the trend across runs is visible; the files written are
    counted in the report and listed in full in ``{kind}-consolidate-written``."""
    key = f"{result.kind}-consolidate"
    written_key = publish_file_list(f"{key}-written", f"{key} files written", result.written)
    create_markdown_artifact(
        markdown=consolidation_markdown(result, written_key),
        key=f"{key}-report",
        description=result.summary_line(),
    )
    if maintenance:
        create_table_artifact(table=maintenance, key=f"{key}-maintenance", description="Iceberg maintenance")
