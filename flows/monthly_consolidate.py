"""monthly-consolidate: the buffer files of one ingest month -> archive month files, then maintenance."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.common import utc_now
from tasks.consolidate import consolidate_month_task, publish_consolidation_report
from tasks.maintenance import maintain_tables
from ventureos.archive import parse_month, previous_month


def _run_name() -> str:
    return f"monthly-consolidate-{flow_run.parameters.get('month') or previous_month(utc_now().date())}"


@flow(name="monthly-consolidate", flow_run_name=_run_name)
def monthly_consolidate(month: str | None = None) -> dict[str, Any]:
    """Consolidate ``month`` (YYYY-MM; default the previous month, the schedule runs on the 1st).

    Args:
        month: Ingest month to consolidate, YYYY-MM; default the previous month.
    """
    now = utc_now()
    target = parse_month(month) if month else previous_month(now.date())
    result = consolidate_month_task(target)
    maintenance = maintain_tables(now)
    publish_consolidation_report(result, maintenance)
    return result.as_dict() | {"maintenance": maintenance}
