"""The read API (``/api/v2``): one FastAPI app over the serving store, built by ``create_app``.

Each resource is a router module of this package; ``ROUTERS`` lists them (add one line for a new one).
The app holds one serving store, opened on first use, and never imports the orchestrator.
"""

from __future__ import annotations

import threading

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response

from ventureos.api import config, entities, search, status, summaries, top, violations
from ventureos.api.common import AnswerCache, plain_json
from ventureos.api.problems import install_problem_handlers
from ventureos.settings import Settings, load_settings
from ventureos.web import router as pages

PREFIX = "/api/v2"
ROUTERS: tuple[APIRouter, ...] = (
    entities.router,
    top.router,
    search.router,
    config.router,
    status.router,
    violations.router,
    summaries.router,
)
"""Resource routers mounted under ``PREFIX``, in this order."""

PING = {"ok": True}
_PING_BODY = plain_json(PING).body


def ping() -> Response:
    """A constant answer: the benchmark's baseline for the cost of the app itself."""
    return Response(_PING_BODY, media_type="application/json")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app for ``settings`` (default: the environment's, ``load_settings``)."""
    settings = settings or load_settings()
    app = FastAPI(
        title="VentureOS violations API",
        version="2",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = None
    app.state.store_lock = threading.Lock()
    app.state.status_cache = status.StatusCache()
    app.state.answers = AnswerCache()
    install_problem_handlers(app)
    if settings.cors_origins:
        # Browsers on these origins may read answers; any other origin gets no CORS headers.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["If-None-Match", "Content-Type"],
            expose_headers=["ETag"],
        )
    app.add_api_route(f"{PREFIX}/ping", ping, methods=["GET"], tags=["meta"], summary="Constant answer")
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    # The pages for people (ventureos/web), at the root; they read the API above.
    app.include_router(pages)
    return app
