"""What the routers share: the app's serving store, parameter rules, money as text, cached answers."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import Response

from ventureos.serving.base import ServingStore, open_store
from ventureos.settings import Settings

# Path and query rules, checked by FastAPI before a route runs (so before any store call).
# Company slugs are lower-case words joined by "-", city slugs end in "-{state}" (entities.city_key).
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,99}$"
STATE_PATTERN = r"^[A-Za-z]{2}$"
AGENCY_PATTERN = r"^[a-z][a-z0-9_]{0,19}$"
BRAND_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
MAX_LIMIT = 100

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="Entity slug: lower-case letters, digits, '-'.")]
StateCode = Annotated[str, Path(pattern=STATE_PATTERN, description="Two-letter state code (any case).")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows to answer, 1..100.")]

ENTITY_CACHE_CONTROL = "public, max-age=300"
"""Entity answers change at most once per gold-sync: shared caches may keep them five minutes."""


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def store_of(request: Request) -> ServingStore:
    """The app's one serving store, opened on first use (a test app that is never called opens none)."""
    state = request.app.state
    if state.store is None:
        with state.store_lock:
            if state.store is None:
                state.store = open_store(state.settings)
    store: ServingStore = state.store
    return store


def money(value: Any) -> str | None:
    """Money as text with two decimals (``125000.00``): exact, never a float; None stays None."""
    if value is None:
        return None
    if type(value) is int:
        return f"{value}.00"
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, default=_default, ensure_ascii=False, separators=(",", ":")).encode()


def etag_of(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def cached_json(request: Request, body: Mapping[str, Any]) -> Response:
    """A JSON answer with ``ETag`` (hash of the body) and ``Cache-Control``; 304 when the client
    already holds it (``If-None-Match``)."""
    content = json_bytes(body)
    return cached_content(request, content, etag_of(content))


def cached_content(request: Request, content: bytes, etag: str) -> Response:
    """``cached_json`` of an answer already encoded (``content``, its ``etag``)."""
    headers = {"ETag": etag, "Cache-Control": ENTITY_CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


def plain_json(body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json_bytes(body), media_type="application/json", headers=dict(headers or {}))


class AnswerCache:
    """Encoded answers by key, each kept with the serving store's ``change_token`` it was read under and
    given back only while the token is the same: exactly what a new read would answer, without it.
    Stores without a token (DynamoDB) are read every time. Up to ``max_bytes`` of answers, least
    recently used out first."""

    def __init__(self, max_bytes: int = 32 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._answers: OrderedDict[str, tuple[object, bytes, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, token: object | None) -> tuple[bytes, str] | None:
        """(content, etag) of ``key`` read under ``token``, or None."""
        if token is None:
            return None
        with self._lock:
            kept = self._answers.get(key)
            if kept is None or kept[0] != token:
                return None
            self._answers.move_to_end(key)
            return kept[1], kept[2]

    def put(self, key: str, token: object | None, content: bytes) -> str:
        """Keep ``content`` (read after ``token`` was taken); returns its etag."""
        etag = etag_of(content)
        if token is not None:
            with self._lock:
                replaced = self._answers.pop(key, None)
                self._bytes += len(content) - (len(replaced[1]) if replaced else 0)
                self._answers[key] = (token, content, etag)
                while self._bytes > self.max_bytes:
                    _, (_, dropped, _) = self._answers.popitem(last=False)
                    self._bytes -= len(dropped)
        return etag
