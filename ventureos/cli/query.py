"""``ventureos query "SQL"``: Polars SQL over every Iceberg table of the catalog."""

from __future__ import annotations

from typing import Annotated

import polars as pl
import typer

from ventureos.cli.output import print_frame, print_json
from ventureos.gold import LEVELS, gold_table, removals_table
from ventureos.lakehouse import current_lakehouse


def sql_context() -> pl.SQLContext:
    """Tables registered as ``{namespace}_{table}``, e.g. ``silver_violations``."""
    lakehouse = current_lakehouse()
    # Silver, quarantine and gold are queryable from the start ("no rejects yet" is a count of 0).
    lakehouse.violations(), lakehouse.quarantine(), removals_table(lakehouse.catalog)
    for level in LEVELS:
        gold_table(lakehouse.catalog, level)
    catalog = lakehouse.catalog
    frames = {}
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            frames["_".join(identifier)] = pl.scan_iceberg(catalog.load_table(identifier))
    return pl.SQLContext(frames)


def run_query(sql: str) -> pl.DataFrame:
    return sql_context().execute(sql, eager=True)


def query(
    sql: Annotated[
        str, typer.Argument(help="SQL, e.g. 'select state, count(*) from silver_violations group by 1'")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Rows as a JSON list.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
) -> None:
    result = run_query(sql)
    print_json(result.head(limit).to_dicts()) if as_json else print_frame(result, max_rows=limit)
