"""One error shape for every refusal of the JSON API, and no server error for any input.

Every 4xx answer of ``/api`` is ``{"error": "<what is wrong and what to do>", "field": <where, or
null>}``, whatever raised it: a route's ``HTTPException`` (401, 403, 404, 409, 413), FastAPI's
request validation (422, ``field`` is the parameter's path such as ``query.limit`` or
``body.run_id``), or paramedic's ``PayloadError``. Starlette's own 404/405 for unknown routes get
the same shape.

Identifiers in paths and bodies are declared with ``Id`` / ``BodyId`` (1 to 2^63 - 1), so the
schema says so and an id the database could not hold is a 422 before any query. As a safety net an
``OverflowError`` (a driver refusing a number, a date past year 9999) is a 422 too, never a 500.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_ID = 2**63 - 1

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2^63 - 1)")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]


MAX_JSON_DEPTH = 64  # an Alertmanager webhook is 4 deep; paramedic's own bodies at most 6
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit`` (strings are skipped).

    Checked before parsing, so the parser never reaches Python's recursion limit: on CPython 3.11
    a ``RecursionError`` in the decoder can leave the interpreter's AST recursion counter off, and
    later template compilation then fails with ``SystemError``.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for m in _JSON_TOKEN.finditer(body):
        token = m.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": message, "field": field}


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else None


def _validation_message(err: dict[str, Any]) -> str:
    where = _field(err.get("loc", ())) or "the request"
    return f"{where}: {err.get('msg', 'is not valid')}"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (before the UI's own, which take their own exceptions)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(error_body(detail, getattr(exc, "field", None)), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        first = errors[0] if errors else {}
        message = "; ".join(_validation_message(e) for e in errors[:5]) or "the request is not valid"
        return JSONResponse(error_body(message, _field(first.get("loc", ()))), 422)

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        return JSONResponse(error_body(f"a value in the request is out of range: {exc}"), 422)


__all__ = ["MAX_ID", "MAX_JSON_DEPTH", "BodyId", "Id", "error_body", "install", "json_too_deep"]
