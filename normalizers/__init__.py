"""Normalizers: pure Polars, one module per (agency, dataset), and the registry that names them.

Adding a dataset = one module with ``normalize(raw, **lookups) -> frame`` plus one entry in ``REGISTRY``.
Datasets published as several tables (OSHA inspections + violations, EPA cases + facilities) name their
extra tables in ``lookups``: a bronze file whose name contains a lookup's name holds that table, every
other file holds the records themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl

from normalizers.common import finalize
from normalizers.epa import echo, icis_fec
from normalizers.faa import enforcement as faa_enforcement
from normalizers.osha import enforcement, severe_injury


@dataclass(frozen=True)
class Recall:
    """How a record that arrives without its lookup row gets that row back: rebuilt from the current
    silver version of the same violation. Sources re-send a changed violation without the table it
    was joined to (an OSHA penalty settled, a feed message of one violation row); without this, the
    new version would lose what only the lookup gave it (company, site) and leave its company."""

    lookup: str
    """The lookup table the record lacked (a key of ``Dataset.lookups``)."""
    flag: str
    """The quality flag the normalizer sets on a record whose lookup row was absent."""
    rows: Callable[[pl.DataFrame], pl.DataFrame]
    """``rows(current) -> lookup rows``: from current versions (silver's columns) that had their lookup
    row, that lookup's rows as the source spells them, such that normalizing a record again with them
    gives exactly what normalizing it with the original lookup row gave. Pure Polars."""


@dataclass(frozen=True)
class Dataset:
    agency: str
    dataset: str
    normalize: Callable[..., pl.DataFrame]
    """``normalize(raw, **lookups) -> frame``, the extension point. ``raw``: one batch of the source's rows,
    every column a string as the source spells it, plus the lineage columns (``ROW``, ``SOURCE_URI``); a
    column the batch lacks counts as blank. ``lookups``: each lookup table's rows for the batch (or None).
    Returns one row per input row, in input order: the unified violation columns (``common.conform``),
    ``violation_details`` (the unmapped fields with a value), ``quality_issues`` and ``reject_reason``
    (null for a violation, else why not); ``common.finalize`` then adds ids, company slug, quality score
    and record hash. Pure Polars: no I/O, deterministic."""
    lookups: Mapping[str, str] = field(default_factory=dict)
    """Lookup table name -> the column it is joined on."""
    recall: Recall | None = None
    """How a record re-sent without its lookup row gets it back from silver (None: it stays flagged)."""
    id_columns: tuple[str, ...] = ()
    """Columns every record file has (a bulk file without them is the wrong file, not bad rows)."""
    absent: tuple[str, ...] = ()
    """Unified columns the source never has (OSHA enforcement has no coordinates): no quality flag
    says they are missing."""
    cadence_days: int | None = None
    """How often the source publishes, in days: 1 = every daily-ingest must find its files; the
    dataset is stale once its last ingest is older than this (plus a grace). None: no expectation.
    Overridden per dataset by ``VENTUREOS_DATASET_CADENCE_DAYS``."""

    @property
    def key(self) -> str:
        return f"{self.agency}/{self.dataset}"

    def lookup_of(self, file_name: str) -> str | None:
        """The lookup table a bronze file holds, or None when it holds records."""
        name = file_name.rsplit("/", 1)[-1].lower()
        return next((lookup for lookup in self.lookups if lookup in name), None)


REGISTRY: dict[str, Dataset] = {
    d.key: d
    for d in (
        # Cadences: DOL's enforcement catalog refreshes daily; FAA, ECHO and ICIS weekly; OSHA's
        # severe injury reports monthly.
        Dataset("osha", "severe_injury", severe_injury.normalize, id_columns=("ID",), cadence_days=31),
        Dataset(
            "osha",
            "enforcement",
            enforcement.normalize,
            lookups={"inspection": enforcement.KEY},
            recall=Recall("inspection", enforcement.MISSING_INSPECTION, enforcement.recalled_inspections),
            id_columns=(enforcement.KEY, "citation_id"),
            absent=enforcement.ABSENT,
            cadence_days=1,
        ),
        Dataset(
            "faa", "enforcement", faa_enforcement.normalize, absent=faa_enforcement.ABSENT, cadence_days=7
        ),
        Dataset("epa", "echo", echo.normalize, cadence_days=7),
        Dataset(
            "epa",
            "icis_fec",
            icis_fec.normalize,
            lookups={"facilities": icis_fec.KEY},
            id_columns=(icis_fec.KEY,),
            absent=icis_fec.ABSENT,
            cadence_days=7,
        ),
    )
}


class UnknownDatasetError(KeyError):
    def __str__(self) -> str:
        return f"unknown dataset {self.args[0]!r}; known: {', '.join(sorted(REGISTRY))}"


def check_selection(agency: str | None, dataset: str | None) -> None:
    """A run's agency/dataset filters name registered datasets: a typo fails, it does not load nothing."""
    if dataset and not agency:
        raise ValueError("dataset needs agency (datasets are named per agency, e.g. --agency osha)")
    if agency and dataset:
        get_dataset(agency, dataset)
    elif agency and not any(d.agency == agency for d in REGISTRY.values()):
        raise UnknownDatasetError(f"{agency}/*")


def get_dataset(agency: str, dataset: str) -> Dataset:
    try:
        return REGISTRY[f"{agency}/{dataset}"]
    except KeyError:
        raise UnknownDatasetError(f"{agency}/{dataset}") from None


def normalize(
    raw: pl.DataFrame, agency: str, dataset: str, lookups: dict[str, pl.DataFrame] | None = None
) -> pl.DataFrame:
    """Raw frame of one dataset -> normalized, finalized frame (rejects still in, with a reason)."""
    entry = get_dataset(agency, dataset)
    return finalize(entry.normalize(raw, **(lookups or {})), agency, dataset, entry.absent)
