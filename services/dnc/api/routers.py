"""Every router of the API, in the order they are mounted."""

from __future__ import annotations

from fastapi import APIRouter

from dnc.api import web
from dnc.api.routes import audience as routes_audience
from dnc.api.routes import check as routes_check
from dnc.api.routes import entries as routes_entries
from dnc.api.routes import exports as routes_exports
from dnc.api.routes import history as routes_history
from dnc.api.routes import imports as routes_imports
from dnc.api.routes import me as routes_me
from dnc.api.routes import ops as routes_ops
from dnc.api.routes import unsubscribe as routes_unsubscribe

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
