"""``/violations/{id}`` and ``/{company|city|state}/{slug}/violations``: full histories from the lake.

The serving store keeps only the latest five violations per agency; these read ``silver.violations``
through ``ventureos.history`` (its lookup layout makes both a page and an id a few row groups). A page
is keyset-paginated with an opaque ``cursor`` (the previous answer's ``next_cursor``); ``format=csv``
answers the same page as CSV with the next cursor in the ``X-Next-Cursor`` header.
"""

from __future__ import annotations

import csv
import io
import threading
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from normalizers import REGISTRY
from ventureos.api.common import AGENCY_PATTERN, Slug, StateCode, money, plain_json, settings_of, store_of
from ventureos.api.entities import city_key, company_key, state_key
from ventureos.api.problems import bad_parameter, not_found
from ventureos.history import MAX_LIMIT, PAGE_COLUMNS, Page, entity_violations, violation_record
from ventureos.lakehouse import Lakehouse
from ventureos.serving.base import ENTITIES

router = APIRouter(tags=["violations"])

VIEW_MAX_AGE = 1.0
"""Seconds an API process reuses its view of silver's snapshot before asking the catalog again: a
commit shows up within a second, and pagination stays exact across it (keyset cursors)."""
MONEY_COLUMNS = ("penalty_amount", "initial_penalty")
ID_PATTERN = r"^[a-z][a-z0-9_]{0,19}:[a-z][a-z0-9_]{0,29}:[A-Za-z0-9_.:#/-]{1,120}$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}$"

ViolationId = Annotated[
    str, Path(pattern=ID_PATTERN, description="agency:dataset:source id, e.g. osha:enforcement:1234-01001")
]
Agency = Annotated[str | None, Query(pattern=AGENCY_PATTERN, description="Only this agency (osha, epa, faa)")]
Year = Annotated[int | None, Query(ge=1900, le=2100, description="Only violations of this event year")]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="The previous page's next_cursor")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Violations per page, 1..{MAX_LIMIT}")]
Format = Annotated[Literal["json", "csv"], Query()]


@dataclass(frozen=True)
class PageQuery:
    """The query of a history page, the same for companies, cities and states."""

    agency: str | None
    year: int | None
    cursor: str | None
    limit: int
    format: str


def page_query(
    agency: Agency = None,
    year: Year = None,
    cursor: Cursor = None,
    limit: PageLimit = 50,
    format: Format = "json",
) -> PageQuery:
    return PageQuery(agency, year, cursor, limit, format)


PageParams = Annotated[PageQuery, Depends(page_query)]

_LAKEHOUSE_LOCK = threading.Lock()


def lakehouse_of(request: Request) -> Lakehouse:
    """The app's lakehouse, built on first use (its catalog and storage are opened once)."""
    state = request.app.state
    lakehouse = getattr(state, "lakehouse", None)
    if lakehouse is None:
        with _LAKEHOUSE_LOCK:
            lakehouse = getattr(state, "lakehouse", None)
            if lakehouse is None:
                lakehouse = state.lakehouse = Lakehouse(settings_of(request))
    return lakehouse


def wire(value: Any, column: str = "") -> Any:
    """JSON value of a lake value: money as text with two decimals, dates and times ISO."""
    if column in MONEY_COLUMNS or isinstance(value, Decimal):
        return money(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, dict):
        # The source's own fields stay as the source wrote them.
        return {k: v if k == "violation_details" else wire(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value


AGENCIES = frozenset(d.agency for d in REGISTRY.values())


def _page(request: Request, level: str, slug: str, key: str, query: PageQuery) -> Response:
    if query.agency is not None and query.agency not in AGENCIES:
        raise bad_parameter(
            "agency", f"unknown agency {query.agency!r}; known: {', '.join(sorted(AGENCIES))}"
        )
    try:
        page = entity_violations(
            lakehouse_of(request), level, slug, agency=query.agency, year=query.year, cursor=query.cursor,
            limit=query.limit, max_age=VIEW_MAX_AGE,
        )  # fmt: skip
    except ValueError as exc:
        raise bad_parameter("cursor", str(exc)) from exc
    if page.rows.is_empty() and query.cursor is None and not _known(request, key):
        raise not_found(f"no {level} {slug!r}")
    rows = [{c: wire(v, c) for c, v in row.items()} for row in page.rows.iter_rows(named=True)]
    if query.format == "csv":
        return _csv(rows, page, f"{level}-{slug}-violations.csv")
    return plain_json({"key": key, "violations": rows, "next_cursor": page.next_cursor})


def _known(request: Request, key: str) -> bool:
    return store_of(request).get_item(ENTITIES, key, "METADATA") is not None


def _csv(rows: list[dict[str, Any]], page: Page, name: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PAGE_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/company/{slug}/violations", summary="Every current violation of a company, newest first")
def company_violations(request: Request, slug: Slug, query: PageParams) -> Response:
    return _page(request, "company", slug, company_key(slug), query)


@router.get("/city/{slug}/violations", summary="Every current violation in a city (slug-st), newest first")
def city_violations(request: Request, slug: Slug, query: PageParams) -> Response:
    if len(slug) < 4 or slug[-3] != "-":
        raise bad_parameter("slug", "a city slug ends in -{state}, e.g. austin-tx")
    return _page(request, "city", slug, city_key(slug), query)


@router.get("/state/{code}/violations", summary="Every current violation in a state, newest first")
def state_violations(request: Request, code: StateCode, query: PageParams) -> Response:
    return _page(request, "state", code.lower(), state_key(code), query)


@router.get(
    "/violations/{violation_id}", summary="One violation: record, SCD2 versions, lineage, agency page"
)
def violation(request: Request, violation_id: ViolationId) -> Response:
    record = violation_record(lakehouse_of(request), violation_id, max_age=VIEW_MAX_AGE)
    if record is None:
        raise not_found(f"no violation {violation_id!r}")
    return plain_json(wire(record))
