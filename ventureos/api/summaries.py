"""``/api/v2/violations/{id}/summary``: read a violation's lazy summary, or ask for one to be written.

``POST`` is the one write of the API: it answers at once (``202``, the summary is written by a background
task after the answer; ``200`` with the summary when one exists) and is guarded by a per-client rate
limit and the daily budget (``429`` with ``Retry-After``), ``404`` for an id that is not a current
violation. ``GET`` answers ``{"status": "none" | "pending" | "done", ...}`` so a page can say what it
is waiting for. The rules live in ``ventureos.summaries``; this module is HTTP only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse

from ventureos.api.common import settings_of, store_of
from ventureos.api.problems import problem_response
from ventureos.api.violations import ViolationId, lakehouse_of
from ventureos.lakehouse import Lakehouse
from ventureos.serving.base import ServingStore
from ventureos.settings import Settings
from ventureos.silver import current_versions
from ventureos.summaries import (
    RECORD_FIELDS,
    RateLimiter,
    Summarizer,
    SummaryStore,
    generate,
    open_summarizer,
)

router = APIRouter(tags=["summaries"])


class SummaryService:
    """What the summary routes keep per app (``app.state.summaries``): the rate limiter's buckets, the
    summarizer (a Bedrock client is built once) and the lake for record reads."""

    def __init__(self, settings: Settings, store: ServingStore, lakehouse: Lakehouse) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.summary_rate_per_minute, settings.summary_rate_burst)
        self.summaries = SummaryStore(store, settings.summary_daily_budget, settings.summary_pending_seconds)
        self.lakehouse = lakehouse

    @cached_property
    def summarizer(self) -> Summarizer:
        return open_summarizer(self.settings)

    def record(self, violation_id: str) -> Mapping[str, Any] | None:
        """The current version of a violation (lake read), or ``None`` for an unknown or deleted id."""
        rows = current_versions(self.lakehouse.violations(), [violation_id], ("violation_id", *RECORD_FIELDS))
        return rows.row(0, named=True) if rows.height else None


_SERVICE_LOCK = threading.Lock()


def service(request: Request) -> SummaryService:
    state = request.app.state
    with _SERVICE_LOCK:
        if getattr(state, "summaries", None) is None:
            state.summaries = SummaryService(settings_of(request), store_of(request), lakehouse_of(request))
    summaries: SummaryService = state.summaries
    return summaries


def _problem(request: Request, status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    response = problem_response(request, status, detail, title=title)
    response.headers.update(headers)
    return response


def _answer(item: Mapping[str, Any] | None) -> dict[str, Any]:
    if not item or item.get("status") == "failed":  # a failed generation may simply be asked again
        return {"status": "none"}
    if item.get("status") != "done":
        return {"status": "pending"}
    return {
        "status": "done",
        "summary": item["summary"],
        "model_id": item.get("model_id"),
        "label": item.get("label"),
        "created_at": item.get("created_at"),
    }


@router.get("/violations/{violation_id}/summary")
def get_summary(violation_id: ViolationId, request: Request) -> Any:
    """The summary of a violation: ``none`` (never asked), ``pending`` (being written) or ``done``."""
    return _answer(service(request).summaries.get(violation_id))


@router.post("/violations/{violation_id}/summary", status_code=202)
def request_summary(violation_id: ViolationId, request: Request, background: BackgroundTasks) -> Any:
    """Ask for a summary: 202 while it is written, 200 when it exists, 404 unknown id, 429 over a limit."""
    svc = service(request)
    client = request.client.host if request.client else "unknown"
    if not svc.limiter.allow(client):
        return _problem(
            request, 429, "Too many summary requests", "Try again in a minute.", **{"Retry-After": "60"}
        )
    existing = svc.summaries.get(violation_id)
    if existing and existing.get("status") == "done":
        return JSONResponse(_answer(existing), status_code=200)
    record = svc.record(violation_id)
    if record is None:
        return _problem(request, 404, "Violation not found", f"No current violation {violation_id!r}.")
    outcome = svc.summaries.claim(violation_id, datetime.now(UTC))
    if outcome == "done":
        return JSONResponse(_answer(svc.summaries.get(violation_id)), status_code=200)
    if outcome == "over_budget":
        return _problem(
            request,
            429,
            "Summary budget spent",
            "Today's summaries are all written; the raw description is shown. Try again tomorrow.",
            **{"Retry-After": "3600"},
        )
    if outcome == "claimed":
        background.add_task(generate, svc.summaries, svc.summarizer, violation_id, dict(record))
    return {"status": "pending"}
