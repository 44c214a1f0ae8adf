"""``/top``: leaderboards of companies, cities or states, as JSON or CSV.

One leaderboard is one serving item (``TOP#{level}#{by}#{agency}`` / filter), precomputed by gold-sync:
all time, per state, per NAICS sector or since a year; one filter at a time.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ventureos.api.common import AGENCY_PATTERN, STATE_PATTERN, Limit, money, plain_json, store_of
from ventureos.api.problems import bad_parameter
from ventureos.serving.reads import leaderboard

router = APIRouter(tags=["leaderboards"])

CSV_COLUMNS = ("rank", "key", "name", "count", "penalty", "state", "industry")
FILTERS = ("state", "industry", "since")
# Which filters a level's leaderboards exist for (the contract's SK families).
FILTERS_OF_LEVEL = {"company": {"state", "industry", "since"}, "city": {"state", "since"}, "state": {"since"}}


def filter_sk(level: str, state: str | None, industry: str | None, since: int | None) -> str:
    """The leaderboard's sort key: ``ALL``, ``STATE#{ST}``, ``SECTOR#{NN}`` or ``SINCE#{YYYY}``."""
    given = {name: value for name, value in zip(FILTERS, (state, industry, since), strict=True) if value}
    if len(given) > 1:
        names = sorted(given)
        raise bad_parameter(names[1], f"one filter at a time: got {' and '.join(names)}")
    for name in given:
        if name not in FILTERS_OF_LEVEL[level]:
            raise bad_parameter(name, f"{level} leaderboards have no {name} filter")
    if state:
        return f"STATE#{state.upper()}"
    if industry:
        return f"SECTOR#{industry}"
    if since:
        return f"SINCE#{since}"
    return "ALL"


def ranked(entries: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    rows = []
    for rank, entry in enumerate(entries[:limit], start=1):
        row = {
            "rank": rank,
            "key": entry["key"],
            "name": entry.get("name"),
            "count": int(entry.get("count", 0)),
            "penalty": money(entry.get("penalty", 0)),
        }
        rows.append(row | {k: entry[k] for k in ("state", "industry") if entry.get(k)})
    return rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@router.get("/top", summary="Leaderboard: the worst companies, cities or states")
def top(
    request: Request,
    level: Annotated[Literal["company", "city", "state"], Query()] = "company",
    by: Annotated[Literal["penalty", "count"], Query()] = "penalty",
    agency: Annotated[str, Query(pattern=AGENCY_PATTERN, description="osha, faa, epa or all")] = "all",
    state: Annotated[str | None, Query(pattern=STATE_PATTERN, description="Only this state")] = None,
    industry: Annotated[
        str | None, Query(pattern=r"^[0-9]{2}$", description="Only this 2-digit NAICS sector")
    ] = None,
    since: Annotated[
        int | None, Query(ge=1900, le=2100, description="Only violations from this year on")
    ] = None,
    limit: Limit = 10,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    sk = filter_sk(level, state, industry, since)
    rows = ranked(leaderboard(store_of(request), level, by, agency, sk), limit)
    if format == "csv":
        name = f"top-{level}-{by}-{agency}-{sk.replace('#', '-').lower()}.csv"
        return Response(
            as_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    body = {"level": level, "by": by, "agency": agency, "filter": sk, "entries": rows}
    return plain_json(body)
