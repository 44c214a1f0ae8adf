"""Run reports: counts, reconciliation and quality as Prefect artifacts a person reads."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from slugify import slugify

from tasks.policy import PURE_TASK
from ventureos.batch import NormalizedBatch
from ventureos.report import COUNT_COLUMNS, RunReport
from ventureos.silver import COUNT_COLUMNS as SCD2_COUNTS
from ventureos.silver import Scd2Plan


def build_report(
    flow: str, run_id: str, batches: list[NormalizedBatch], plan: Scd2Plan, written: list[str]
) -> RunReport:
    read = pl.DataFrame(
        {
            "agency": [b.agency for b in batches],
            "dataset": [b.dataset for b in batches],
            "read": [b.records_read for b in batches],
            "quarantined": [b.rejects.height for b in batches],
        },
        schema={"agency": pl.String, "dataset": pl.String, "read": pl.Int64, "quarantined": pl.Int64},
    )
    # Withdrawn deletes are quarantined too (write_quarantine): counted from the plan, not re-joined.
    withdrawn = plan.withdrawn.group_by("agency", "dataset").agg(_withdrawn=pl.len().cast(pl.Int64))
    counts = (
        read.join(plan.counts, on=["agency", "dataset"], how="left")
        .join(withdrawn, on=["agency", "dataset"], how="left")
        .with_columns(quarantined=pl.col("quarantined") + pl.col("_withdrawn").fill_null(0))
        .with_columns(pl.col(c).fill_null(0) for c in SCD2_COUNTS)
        .select("agency", "dataset", *COUNT_COLUMNS)
    )
    issues = [b.valid["quality_issues"] for b in batches if not b.valid.is_empty()]
    quality = (
        pl.concat(issues)
        .explode()
        .drop_nulls()
        .value_counts(sort=True, name="rows")
        .rename({"quality_issues": "issue"})
        if issues
        else RunReport(flow, run_id, counts).quality
    )
    return RunReport(
        flow=flow, run_id=run_id, counts=counts, quality=quality.cast({"rows": pl.Int64}), written=written
    )


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
