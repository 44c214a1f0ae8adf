"""Silver's physical layout for lookups by entity and by violation id: one design for both.

Within each partition (agency, event year) the rows of one write are ordered by ``company_slug``, then
``violation_id``, cut into files of at most ``FILE_ROWS`` rows and written in row groups of
``ROW_GROUP_ROWS``. Then:

- a company's rows sit in about one file per event year, which the manifests' ``company_slug`` bounds
  find without opening any other file (``write.metadata.metrics.column.company_slug=full``, see
  ``SILVER_LAYOUT_PROPERTIES``), and inside that file in one or two neighbouring row groups: an
  entity's history page decodes only those (the row group is the unit Parquet decodes; a company's
  rows spread over every row group of its files would cost a page the whole files);
- a violation id: each company's run inside a file is in id order, so a row group's id range is
  narrow where the file holds few companies and wide where it holds many small ones. The write path
  reads the id column of the row groups whose range holds a wanted id (``silver_files.SilverView.
  locate``); the API's one-id lookup keeps a per-file digest of id hashes with their row group;
- cities and states are large: their newest page lies in the newest event years, read first.

Every silver data file goes through ``datafiles.encode_partitions``, which applies ``cluster`` when the
table is silver-shaped: the daily and feed writes, every historical batch, a replace load's staging
table and maintenance compaction (which merges a partition's small files into clustered ones) all
write this layout with no code of their own. Files pyiceberg rewrites itself (a commit that closes
versions copies the rest of a file) keep their rows' order; ``write.parquet.row-group-limit`` keeps
their row groups small.
"""

from __future__ import annotations

import polars as pl
from pyiceberg.schema import Schema

FILE_ROWS = 32_768
"""Rows per file of one partition of one write: small enough that a file spans few companies, large
enough that a 8M-row lake holds a few hundred files (each id lookup probes one row group per file)."""
ROW_GROUP_ROWS = 1_024
"""Rows per row group: the unit a lookup decodes (an id lookup one column of it, a page a few)."""
FILE_KEY = "_key__lookup_file"
"""The split key numbering a partition's files; named like ``encode_partitions``' key columns so the
Parquet sink leaves it out of the files."""
CLUSTER_COLUMNS = ("company_slug", "violation_id")

SILVER_LAYOUT_PROPERTIES = {
    # Exact manifest bounds for the entity columns (the default truncates strings to 16 characters:
    # long slugs sharing a prefix would all match) and the id.
    **{
        f"write.metadata.metrics.column.{c}": "full"
        for c in ("company_slug", "city", "state", "violation_id")
    },
    "write.parquet.row-group-limit": str(ROW_GROUP_ROWS),
}
"""Table properties of silver that go with the layout (``catalog.SILVER_PROPERTIES``)."""


def is_clustered(schema: Schema) -> bool:
    """True for silver and its staging tables: the tables whose files follow this layout."""
    names = {field.name for field in schema.fields}
    return set(CLUSTER_COLUMNS) <= names


def cluster(rows: pl.DataFrame, partition_keys: list[pl.Expr]) -> tuple[pl.DataFrame, pl.Expr]:
    """``rows`` ordered for the layout, plus the split key that numbers each partition's files.

    ``partition_keys`` are the expressions that split rows into partitions (and any extra keys of the
    caller, e.g. dataset). Rows are ordered by those keys and ``CLUSTER_COLUMNS`` (nulls last),
    numbered within their partition and cut every ``FILE_ROWS``. The returned frame carries the file
    number in ``FILE_KEY``.
    """
    keys = [key.alias(f"_lookup_part_{i}") for i, key in enumerate(partition_keys)]
    part = [f"_lookup_part_{i}" for i in range(len(keys))]
    ordered = (
        rows.with_columns(keys)
        .sort([*part, *CLUSTER_COLUMNS], nulls_last=True)
        .with_columns(
            (pl.int_range(pl.len()).over(part) // FILE_ROWS if part else pl.int_range(pl.len()) // FILE_ROWS)
            .cast(pl.Int64)
            .alias(FILE_KEY)
        )
        .drop(part)
    )
    return ordered, pl.col(FILE_KEY)
