"""Every router of the API, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

from dnc.api import (
    routes_audience,
    routes_check,
    routes_entries,
    routes_exports,
    routes_history,
    routes_imports,
    routes_me,
    routes_ops,
    routes_unsubscribe,
    web,
)

ROUTERS: list[APIRouter] = [
    routes_ops.router,
    routes_entries.router,
    routes_check.router,
    routes_history.router,
    routes_audience.router,
    routes_unsubscribe.router,
    routes_imports.router,
    routes_exports.router,
    routes_me.router,
    web.router,
]
