"""Operations: ``/healthz``, ``/readyz`` and ``/metrics`` (fed by ``dnc.api.observe``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dnc.api.context import ApiContext
from dnc.api.deps import api_context
from dnc.errors import DncError

router = APIRouter(tags=["operations"])

Ctx = Annotated[ApiContext, Depends(api_context)]

PROBE_TIMEOUT_S = 2.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Kafka, Redis, index and list view are ready")
async def readyz(c: Ctx) -> JSONResponse:
    checks: dict[str, Any] = {}
    missing: list[str] = []
    try:
        lag = await asyncio.wait_for(c.view.end_lag(), PROBE_TIMEOUT_S)
        checks["kafka"] = "ok"
    except Exception as exc:  # whatever the failure, the answer is "not ready"
        lag = None
        checks["kafka"] = f"unreachable ({type(exc).__name__})"
        missing.append("kafka")
    try:
        meta = await asyncio.wait_for(c.index.meta(), PROBE_TIMEOUT_S)
        checks["redis"] = "ok"
        checks["index"] = "complete" if meta.complete() else "incomplete (being built)"
        if not meta.complete():
            missing.append("index")
    except (TimeoutError, DncError, OSError) as exc:
        checks["redis"] = f"unreachable ({type(exc).__name__})"
        missing += ["redis", "index"]
    checks["view"] = {"caught_up": c.view.caught_up, "lag": lag, "error": c.view.error}
    if not c.view.caught_up:
        missing.append("view")
    if missing:
        return JSONResponse(
            {"status": "not ready", "missing": missing, "checks": checks}, status_code=503
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
