"""Normalizers: pure Polars, one module per (agency, dataset), and the registry that names them.

Adding a dataset = one module with ``normalize(raw) -> frame`` plus one entry in ``REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from normalizers.common import finalize
from normalizers.osha import severe_injury


@dataclass(frozen=True)
class Dataset:
    agency: str
    dataset: str
    normalize: Callable[[pl.DataFrame], pl.DataFrame]

    @property
    def key(self) -> str:
        return f"{self.agency}/{self.dataset}"


REGISTRY: dict[str, Dataset] = {
    d.key: d for d in (Dataset("osha", "severe_injury", severe_injury.normalize),)
}


class UnknownDatasetError(KeyError):
    def __str__(self) -> str:
        return f"unknown dataset {self.args[0]!r}; known: {', '.join(sorted(REGISTRY))}"


def get_dataset(agency: str, dataset: str) -> Dataset:
    try:
        return REGISTRY[f"{agency}/{dataset}"]
    except KeyError:
        raise UnknownDatasetError(f"{agency}/{dataset}") from None


def normalize(raw: pl.DataFrame, agency: str, dataset: str) -> pl.DataFrame:
    """Raw frame of one dataset -> normalized, finalized frame (rejects still in, with a reason)."""
    return finalize(get_dataset(agency, dataset).normalize(raw), agency, dataset)
