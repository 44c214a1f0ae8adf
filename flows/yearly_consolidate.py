"""yearly-consolidate: after the July-1 grace, a year's month files -> one immutable year file."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.common import utc_now
from tasks.consolidate import consolidate_year_task, publish_consolidation_report
from tasks.maintenance import maintain_tables
from ventureos.archive import parse_year, previous_year


def _run_name() -> str:
    return f"yearly-consolidate-{flow_run.parameters.get('year') or previous_year(utc_now().date())}"


@flow(name="yearly-consolidate", flow_run_name=_run_name)
def yearly_consolidate(year: str | None = None, force: bool = False) -> dict[str, Any]:
    """Close ``year`` (default the previous year); refuses before July 1 of the next year unless forced.

    Args:
        year: Year to fold into one immutable file, YYYY; default the previous year.
        force: Close the year before the 6-month grace (July 1 of the next year) is over.
    """
    now = utc_now()
    target = parse_year(year) if year else previous_year(now.date())
    result = consolidate_year_task(target, now.date(), force)
    maintenance = maintain_tables(now)
    publish_consolidation_report(result, maintenance)
    return result.as_dict() | {"maintenance": maintenance}
