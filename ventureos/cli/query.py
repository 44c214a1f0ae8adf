"""``ventureos query "SQL"``: Polars SQL over every Iceberg table of the catalog, and nothing else.

Polars SQL also has table functions (``read_csv``, ``read_parquet``, ``read_json``, ``read_ndjson``,
``read_ipc``) that read any local path or URL: a query calling one is refused before anything runs.
"""

from __future__ import annotations

import re
from typing import Annotated

import polars as pl
import typer

from ventureos.cli.output import print_frame, print_json
from ventureos.gold import LEVELS, gold_table, removals_table
from ventureos.lakehouse import current_lakehouse

_DOLLAR_QUOTE = re.compile(r"\$\w*\$")
# Every Polars SQL table function is read_<format>; a relation called with arguments is one.
_TABLE_FUNCTION = re.compile(r"[\"`]?\b(read_\w*)[\"`]?\s*\(", re.IGNORECASE)


def _code(sql: str) -> str:
    """``sql`` with its string literals and comments blanked, tokenized as Polars' SQL parser does
    (nested block comments, ``''`` in strings, backslash escapes only in ``E'...'``, ``$tag$`` quotes).
    Quoted identifiers are kept: ``"read_csv"(...)`` is the same call."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        start, c = i, sql[i]
        if sql.startswith("--", i):
            i = n if (end := sql.find("\n", i)) < 0 else end
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith(("/*", "*/"), i):
                    depth += 1 if sql[i] == "/" else -1
                    i += 2
                else:
                    i += 1
        elif c == "'":
            escapes = sql[i - 1 : i] in ("e", "E") and not re.match(r"\w", sql[i - 2 : i - 1])
            i += 1
            while i < n and (sql[i] != "'" or sql.startswith("''", i)):
                i += 2 if sql.startswith("''", i) or (escapes and sql[i] == "\\") else 1
            i += 1
        elif c == "$" and (tag := _DOLLAR_QUOTE.match(sql, i)):
            i = n if (end := sql.find(tag.group(), tag.end())) < 0 else end + len(tag.group())
        else:
            if c in '"`':  # a quoted identifier, kept whole
                i = n if (end := sql.find(c, i + 1)) < 0 else end + 1
            else:
                i += 1
            out.append(sql[start:i])
            continue
        out.append(" ")
    return "".join(out)


class QueryNotAllowed(ValueError):
    """The query reaches outside the lake's registered tables."""


def check_query(sql: str) -> None:
    """Refuse table functions: a query reads only the registered tables, never files or URLs."""
    if match := _TABLE_FUNCTION.search(_code(sql)):
        raise QueryNotAllowed(
            f"{match.group(1).lower()}() is not allowed: queries read only the lake's tables "
            "(silver_violations, silver_violations_quarantine, gold_company_stats, ...), not files or URLs"
        )


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
    check_query(sql)
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
