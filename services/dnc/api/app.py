"""The FastAPI application: routers, error mapping. Routes stay thin."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dnc.api import observe, web
from dnc.api.context import ApiContext
from dnc.api.limits import ENVELOPE, BodyLimit
from dnc.api.routes import (
    audience,
    check,
    entries,
    exports,
    history,
    imports,
    me,
    ops,
    overview,
    reviews,
    unsubscribe,
)
from dnc.errors import IndexNotReady, IndexUnavailable, InvalidValue, ViewUnavailable

_MAX_ECHO = 200  # characters of a rejected value shown back in a 422

# Every router, in the order they are mounted.
ROUTERS: list[APIRouter] = [
    ops.router,
    entries.router,
    check.router,
    history.router,
    overview.router,
    reviews.router,
    audience.router,
    unsubscribe.router,
    imports.router,
    exports.router,
    me.router,
    web.router,
]


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Do Not Contact",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        description="Manage the Do Not Contact list: view, filter, add, remove, import, "
        "export, and check whether a person is on the list and why.",
    )
    app.state.ctx = context
    limit = context.settings.api.import_max_bytes
    app.add_middleware(BodyLimit, max_bytes=limit + ENVELOPE, file_limit=limit)
    observe.install(app, context)
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(InvalidValue)
    async def invalid_value(_: Request, exc: InvalidValue) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "error": str(exc),
                "field": exc.field,
                "value": _echo(exc.value),
                "reason": exc.reason,
            },
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # The same shape as InvalidValue, for the first problem; all of them in "errors".
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = "body" if first.get("type") == "json_invalid" else ".".join(loc) or "body"
        reason = str(first.get("msg", "is not valid"))
        value = _echo(first.get("input"))
        return JSONResponse(
            status_code=422,
            content={
                "error": f"{field}: {reason}",
                "field": field,
                "value": value,
                "reason": reason,
                "errors": [
                    {"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg")}
                    for e in errors[:20]
                ],
            },
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # One error shape for every status: {"error": "..."} (422s add field/value/reason).
        body: dict[str, Any] = {"error": str(exc.detail)}
        return JSONResponse(
            status_code=exc.status_code, content=body, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(IndexUnavailable)
    @app.exception_handler(IndexNotReady)
    @app.exception_handler(ViewUnavailable)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503, content={"error": str(exc)}, headers={"Retry-After": "1"}
        )

    return app


def _echo(value: object) -> Any:
    """A rejected value as JSON, cut short: it is shown back, not stored."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 1] + "…"
