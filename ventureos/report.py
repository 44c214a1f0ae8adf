"""Run reports: per-dataset counts and the reconciliation every run must satisfy.

records read = inserted + updated + deleted + unchanged + stale + duplicates + quarantined

``stale`` records are older than the version silver holds of their violation (the monotonic guard,
``silver.plan_scd2``): they change nothing, and are counted, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ventureos.batch import NormalizedBatch
from ventureos.silver import SCD2_COUNTS, Scd2Plan
from ventureos.summary import names_markdown

RUN_COUNTS = ("read", "inserted", "updated", "deleted", "unchanged", "stale", "duplicates", "quarantined")


@dataclass
class RunReport:
    flow: str
    run_id: str
    counts: pl.DataFrame
    """One row per agency/dataset with ``RUN_COUNTS``."""
    quality: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"issue": pl.String, "rows": pl.Int64})
    )
    written: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        return {c: int(self.counts[c].sum()) for c in RUN_COUNTS}

    @property
    def unreconciled(self) -> pl.DataFrame:
        """Datasets whose counts do not add up (empty when the run lost nothing)."""
        accounted = pl.sum_horizontal(*(pl.col(c) for c in RUN_COUNTS[1:]))
        return self.counts.filter(pl.col("read") != accounted)

    @property
    def reconciled(self) -> bool:
        return self.unreconciled.is_empty()

    def summary_line(self) -> str:
        t = self.totals
        status = "reconciled" if self.reconciled else "NOT RECONCILED"
        return (
            f"read {t['read']} = inserted {t['inserted']} + updated {t['updated']} + deleted {t['deleted']}"
            f" + unchanged {t['unchanged']} + stale {t['stale']} + duplicates {t['duplicates']}"
            f" + quarantined {t['quarantined']} ({status})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "run_id": self.run_id,
            "totals": self.totals,
            "reconciled": self.reconciled,
            "datasets": self.counts.to_dicts(),
            "quality_issues": dict(zip(self.quality["issue"], self.quality["rows"], strict=True)),
            "written": self.written,
            "timings": self.timings,
            **self.extra,
        }

    def markdown(self, written_key: str | None = None) -> str:
        """The report for a person: counts, quality, timings and a summary of the files written (the
        whole list is in the artifact ``written_key`` when given)."""
        header = "| agency | dataset | " + " | ".join(RUN_COUNTS) + " |"
        lines = [f"# {self.flow} — {self.summary_line()}", ""]
        # Warnings come first: a missing dataset must not hide below an empty table.
        if self.extra.get("warnings"):
            lines += ["## Warnings", "", *(f"- {w}" for w in self.extra["warnings"]), ""]
        lines += [
            header,
            "|" + "---|" * (len(RUN_COUNTS) + 2),
        ]
        for row in self.counts.iter_rows(named=True):
            cells = [row["agency"], row["dataset"], *(str(row[c]) for c in RUN_COUNTS)]
            lines.append("| " + " | ".join(cells) + " |")
        if not self.quality.is_empty():
            lines += ["", "## Quality issues", "", "| issue | rows |", "|---|---|"]
            lines += [f"| {i} | {n} |" for i, n in self.quality.iter_rows()]
        if self.timings:
            lines += ["", "## Timings (s)", ""] + [f"- {k}: {v:.2f}" for k, v in self.timings.items()]
        lines += names_markdown("Written", self.written, written_key)
        return "\n".join(lines)


def build_report(
    flow: str, run_id: str, batches: list[NormalizedBatch], plan: Scd2Plan, written: list[str]
) -> RunReport:
    """The report of a daily or feed run: per dataset what was read and where each record went."""
    read = pl.DataFrame(
        {
            "agency": [b.agency for b in batches],
            "dataset": [b.dataset for b in batches],
            "read": [b.records_read for b in batches],
            "quarantined": [b.rejects.height for b in batches],
        },
        schema={"agency": pl.String, "dataset": pl.String, "read": pl.Int64, "quarantined": pl.Int64},
    )
    # Withdrawn deletes are quarantined too: counted from the plan, not re-joined.
    withdrawn = plan.withdrawn.group_by("agency", "dataset").agg(_withdrawn=pl.len().cast(pl.Int64))
    counts = (
        read.join(plan.counts, on=["agency", "dataset"], how="left")
        .join(withdrawn, on=["agency", "dataset"], how="left")
        .with_columns(quarantined=pl.col("quarantined") + pl.col("_withdrawn").fill_null(0))
        .with_columns(pl.col(c).fill_null(0) for c in SCD2_COUNTS)
        .select("agency", "dataset", *RUN_COUNTS)
    )
    # A recalled record's issues are those of its completed version (the plan's), not the batch's.
    issues = (
        [plan.quality_issues]
        if plan.quality_issues is not None
        else [b.valid["quality_issues"] for b in batches if not b.valid.is_empty()]
    )
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


def combine_reports(first: RunReport, second: RunReport) -> RunReport:
    """One report for a batch ingested in two parts: counts, quality, files and timings added up."""
    counts = (
        pl.concat([first.counts, second.counts])
        .group_by("agency", "dataset", maintain_order=True)
        .agg(pl.col(c).sum() for c in RUN_COUNTS)
    )
    quality = (
        pl.concat([first.quality, second.quality])
        .group_by("issue", maintain_order=True)
        .agg(pl.col("rows").sum())
        .sort("rows", descending=True, maintain_order=True)
    )
    timings = {
        k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0) for k in first.timings | second.timings
    }
    bronze = first.extra.get("bronze", []) + second.extra.get("bronze", [])
    return RunReport(
        first.flow,
        first.run_id,
        counts,
        quality,
        first.written + second.written,
        timings,
        first.extra | second.extra | {"bronze": bronze},
    )
