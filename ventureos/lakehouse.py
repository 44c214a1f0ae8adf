"""The lakehouse of the current settings: object store plus Iceberg catalog, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from ventureos.catalog import open_catalog, quarantine_table, violations_table
from ventureos.settings import Settings, load_settings
from ventureos.storage import Storage


@dataclass(frozen=True)
class Lakehouse:
    settings: Settings

    @cached_property
    def storage(self) -> Storage:
        return Storage.from_settings(self.settings)

    @cached_property
    def catalog(self) -> Catalog:
        return open_catalog(self.settings)

    def violations(self) -> Table:
        return violations_table(self.catalog)

    def quarantine(self) -> Table:
        return quarantine_table(self.catalog)


@lru_cache(maxsize=8)
def _lakehouse(settings: Settings) -> Lakehouse:
    return Lakehouse(settings)


def current_lakehouse() -> Lakehouse:
    """The lakehouse for the settings in the environment now (tests switch homes between runs)."""
    return _lakehouse(load_settings())
