"""``/search``: type-ahead over company, city and state names, from the serving search index."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ventureos.api.common import Limit, money, plain_json, store_of
from ventureos.serving.reads import search as search_index

router = APIRouter(tags=["search"])

MAX_QUERY = 100


@router.get("/search", summary="Find companies, cities and states by any word of their name")
def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY, description="Words or word prefixes")],
    limit: Limit = 10,
) -> Response:
    found = search_index(store_of(request), q, limit)
    results = [
        {
            "key": hit["key"],
            "type": hit.get("entity_type"),
            "name": hit.get("name"),
            "count": int(hit.get("count", 0)),
            "penalty": money(hit.get("penalty", 0)),
        }
        | ({"state": hit["state"]} if hit.get("state") else {})
        for hit in found
    ]
    return plain_json({"q": q, "results": results})
