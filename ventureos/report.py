"""Run reports: per-dataset counts and the reconciliation every run must satisfy.

records read = inserted + updated + deleted + unchanged + duplicates + quarantined
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

COUNT_COLUMNS = ("read", "inserted", "updated", "deleted", "unchanged", "duplicates", "quarantined")


@dataclass
class RunReport:
    flow: str
    run_id: str
    counts: pl.DataFrame
    """One row per agency/dataset with ``COUNT_COLUMNS``."""
    quality: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"issue": pl.String, "rows": pl.Int64})
    )
    written: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        return {c: int(self.counts[c].sum()) for c in COUNT_COLUMNS}

    @property
    def unreconciled(self) -> pl.DataFrame:
        """Datasets whose counts do not add up (empty when the run lost nothing)."""
        accounted = pl.sum_horizontal(*(pl.col(c) for c in COUNT_COLUMNS[1:]))
        return self.counts.filter(pl.col("read") != accounted)

    @property
    def reconciled(self) -> bool:
        return self.unreconciled.is_empty()

    def summary_line(self) -> str:
        t = self.totals
        status = "reconciled" if self.reconciled else "NOT RECONCILED"
        return (
            f"read {t['read']} = inserted {t['inserted']} + updated {t['updated']} + deleted {t['deleted']}"
            f" + unchanged {t['unchanged']} + duplicates {t['duplicates']} + quarantined {t['quarantined']}"
            f" ({status})"
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

    def markdown(self) -> str:
        header = "| agency | dataset | " + " | ".join(COUNT_COLUMNS) + " |"
        lines = [
            f"# {self.flow} — {self.summary_line()}",
            "",
            header,
            "|" + "---|" * (len(COUNT_COLUMNS) + 2),
        ]
        for row in self.counts.iter_rows(named=True):
            cells = [row["agency"], row["dataset"], *(str(row[c]) for c in COUNT_COLUMNS)]
            lines.append("| " + " | ".join(cells) + " |")
        if not self.quality.is_empty():
            lines += ["", "## Quality issues", "", "| issue | rows |", "|---|---|"]
            lines += [f"| {i} | {n} |" for i, n in self.quality.iter_rows()]
        if self.timings:
            lines += ["", "## Timings (s)", ""] + [f"- {k}: {v:.2f}" for k, v in self.timings.items()]
        if self.written:
            lines += ["", "## Written", ""] + [f"- `{uri}`" for uri in self.written]
        return "\n".join(lines)
