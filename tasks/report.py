"""Run reports as Prefect artifacts a person reads."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from slugify import slugify

from tasks.policy import PURE_TASK
from ventureos.report import RunReport


@task(name="publish-report", **PURE_TASK)
def publish_report(report: RunReport, key: str) -> None:
    """Keyed artifacts, so the dashboard shows the trend of each flow across runs."""
    key = slugify(key)
    create_markdown_artifact(
        markdown=report.markdown(), key=f"{key}-report", description=report.summary_line()
    )
    create_table_artifact(
        table=report.counts.to_dicts(), key=f"{key}-counts", description="records per dataset"
    )
