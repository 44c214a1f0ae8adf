"""Read bronze: find what a day holds and parse its files."""

from __future__ import annotations

from prefect import task

from normalizers import REGISTRY
from tasks.policy import IO_TASK
from ventureos.bronze import RawBatch, read_raw_batch
from ventureos.lakehouse import current_lakehouse
from ventureos.layout import DAILY_PREFIX, daily_prefix


@task(name="find-daily-datasets", **IO_TASK)
def find_daily_datasets(
    date: str, agency: str | None = None, dataset: str | None = None
) -> list[tuple[str, str]]:
    """(agency, dataset) pairs with a folder for ``date`` under bronze/daily, narrowed by the filters."""
    storage = current_lakehouse().storage
    agencies = [agency] if agency else storage.list_dirs(DAILY_PREFIX)
    found = []
    for a in agencies:
        datasets = [dataset] if dataset else storage.list_dirs(f"{DAILY_PREFIX}/{a}")
        found += [(a, d) for d in datasets if storage.list(daily_prefix(a, d, date))]
    return found


@task(name="read-bronze", **IO_TASK)
def read_bronze(prefix: str, agency: str, dataset: str) -> RawBatch:
    """Every file under a bronze prefix, parsed into one raw frame (unreadable files become rejects)."""
    storage = current_lakehouse().storage
    files = [(storage.uri(k), storage.read_bytes(k)) for k in storage.list(prefix)]
    entry = REGISTRY.get(f"{agency}/{dataset}")
    # An unknown dataset still gets read: normalize quarantines its records with the reason.
    return read_raw_batch(files, entry.lookup_of) if entry else read_raw_batch(files)
