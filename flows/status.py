"""status: the freshness of every dataset; the run fails while an expected dataset is stale."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import utc_now
from tasks.policy import IO_TASK
from ventureos.lakehouse import current_lakehouse
from ventureos.status import DatasetStatus, check_freshness, describe_stale, markdown, parse_now

ARTIFACT_KEY = "dataset-freshness"


class StaleDatasetsError(RuntimeError):
    """An expected dataset is older than its cadence allows: the run fails so automations alert."""


def _run_name() -> str:
    return f"status-{utc_now():%Y-%m-%dT%H%M}"


@task(name="check-freshness", **IO_TASK)
def freshness(now: datetime) -> list[DatasetStatus]:
    return check_freshness(current_lakehouse(), now)


@flow(name="status", flow_run_name=_run_name)
def status(at: str | None = None) -> list[dict[str, Any]]:
    """Check every dataset's last ingest against its cadence; fail when an expected one is stale.

    Args:
        at: Judge freshness as of this ISO timestamp (default now, UTC).
    """
    now = parse_now(at, utc_now())
    statuses = freshness(now)
    create_markdown_artifact(
        markdown=markdown(statuses, now),
        key=ARTIFACT_KEY,
        description=describe_stale(statuses) or "every expected dataset is fresh",
    )
    problem = describe_stale(statuses)
    if problem:
        raise StaleDatasetsError(problem)
    return [s.as_dict() for s in statuses]
