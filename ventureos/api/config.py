"""``/config/{brand}``: a product's branding and scope (the Projects table, ``serving/projects.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from ventureos.api.common import BRAND_PATTERN, cached_json, store_of
from ventureos.api.problems import not_found
from ventureos.serving.base import PROJECTS
from ventureos.serving.projects import CONFIG

router = APIRouter(tags=["config"])


@router.get("/config/{brand}", summary="Brand colours, navigation and the agencies a product covers")
def config(request: Request, brand: Annotated[str, Path(pattern=BRAND_PATTERN)]) -> Response:
    item = store_of(request).get_item(PROJECTS, f"BRAND#{brand}", CONFIG)
    if item is None:
        raise not_found(f"no brand {brand!r}")
    return cached_json(request, {k: v for k, v in item.items() if k not in ("PK", "SK")})
