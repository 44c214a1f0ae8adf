"""Run reports as Prefect artifacts a person reads."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from slugify import slugify

from tasks.policy import PURE_TASK
from ventureos.report import RunReport
from ventureos.summary import SHOWN_NAMES, full_list_markdown


def publish_file_list(key: str, title: str, names: list[str]) -> str | None:
    """The whole list as its own keyed artifact when the report shows only the first few; its key."""
    if len(names) <= SHOWN_NAMES:
        return None
    create_markdown_artifact(
        markdown=full_list_markdown(title, names), key=key, description=f"{len(names)} {title}"
    )
    return key


@task(name="publish-report", **PURE_TASK)
def publish_report(report: RunReport, key: str) -> None:
    """Keyed artifacts, so the dashboard shows the trend of each flow across runs. The report lists
    the first few files written; the whole list is the ``{key}-written`` artifact."""
    key = slugify(key)
    written_key = publish_file_list(f"{key}-written", f"{report.flow} files written", report.written)
    create_markdown_artifact(
        markdown=report.markdown(written_key), key=f"{key}-report", description=report.summary_line()
    )
    create_table_artifact(
        table=report.counts.to_dicts(), key=f"{key}-counts", description="records per dataset"
    )
