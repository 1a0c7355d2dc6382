"""The FastAPI application: routers, error mapping. Routes stay thin."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dnc.api import routes
from dnc.api.context import ApiContext
from dnc.errors import IndexNotReady, IndexUnavailable, InvalidValue


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
    for router in routes.ROUTERS:
        app.include_router(router)

    @app.exception_handler(InvalidValue)
    async def invalid_value(_: Request, exc: InvalidValue) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"error": str(exc), "field": exc.field, "reason": exc.reason},
        )

    @app.exception_handler(IndexUnavailable)
    @app.exception_handler(IndexNotReady)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"error": str(exc)}, headers={"Retry-After": "1"})

    return app
