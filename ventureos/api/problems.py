"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

``{type, title, status, detail, instance}`` plus, for a bad request, ``parameter`` (the name of the
query or path parameter at fault, as the client spelled it). No handler ever puts an exception's text
or a traceback into a body: unexpected errors are logged server-side and answered with a fixed 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ventureos.serving.base import MissingServingTable

PROBLEM_JSON = "application/problem+json"
LOG = logging.getLogger("ventureos.api")


class Problem(Exception):
    """An error answer: raise it from a route; ``parameter`` names the request parameter at fault."""

    def __init__(self, status: int, detail: str, parameter: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.parameter = parameter


def not_found(detail: str) -> Problem:
    return Problem(404, detail)


def bad_parameter(parameter: str, detail: str) -> Problem:
    return Problem(400, detail, parameter)


def problem_response(
    request: Request, status: int, detail: str, parameter: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if parameter is not None:
        body["parameter"] = parameter
    return JSONResponse(body | extra, status_code=status, media_type=PROBLEM_JSON)


def _parameter_name(location: tuple[Any, ...]) -> str:
    """``("query", "limit")`` -> ``limit``; a body or unknown location names what is there."""
    names = [str(part) for part in location[1:]] or [str(part) for part in location]
    return ".".join(names)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc.status, exc.detail, exc.parameter)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 list of errors as one problem naming the first bad parameter (all are listed)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"parameter": _parameter_name(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"parameter": "request", "message": "invalid"}
    detail = f"{first['parameter']}: {first['message']}"
    return problem_response(request, 422, detail, first["parameter"], errors=errors)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path 404, wrong method 405) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    response = problem_response(request, exc.status_code, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _on_missing_table(request: Request, exc: Exception) -> JSONResponse:
    # The store is reachable but not set up: the operator's fix, not the client's.
    LOG.error("serving table missing: %s", exc)
    return problem_response(request, 503, "the serving store is not initialised")


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server log only; the client learns nothing about the internals.
    LOG.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "internal error; the request was logged")


def install_problem_handlers(app: FastAPI) -> None:
    """Every error path of ``app`` answers a problem body."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(MissingServingTable, _on_missing_table)
    app.add_exception_handler(Exception, _on_error)
