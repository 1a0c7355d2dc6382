"""Metrics and request logs for every route, and the request id each request carries.

Metrics live in a registry of their own per app (nothing is registered at import time,
and two apps in one test process do not collide). Labels and logs name the route
template (``/u/{token}``), never the URL: paths and query strings carry contacts and
tokens.
"""

from __future__ import annotations

import base64
import logging
import secrets
import time

import orjson
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dnc.api.context import ApiContext

log = logging.getLogger("dnc.api.access")

# An import runs from seconds (a few rows) to many minutes (millions).
_IMPORT_SECONDS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
IMPORT_OUTCOMES = ("finished", "failed", "cancelled")


class ImportMetrics:
    """The imports this API instance ran (``dnc.api.imports.jobs``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "dnc_api_imports_started", "imports started on this instance", registry=registry
        )
        self.finished = Counter(
            "dnc_api_imports_finished",
            "imports ended on this instance, by outcome: finished (effective at the gate), "
            "failed (an error; importing again is safe), cancelled (the API stopped)",
            ["outcome"],
            registry=registry,
        )
        self.rows = Counter(
            "dnc_api_import_rows",
            "import rows read, by result: accepted (submitted for every account) or rejected",
            ["result"],
            registry=registry,
        )
        self.seconds = Histogram(
            "dnc_api_import_duration_seconds",
            "an import from its start to its end (effective at the gate, when finished), "
            "by outcome",
            ["outcome"],
            buckets=_IMPORT_SECONDS,
            registry=registry,
        )
        self.running = Gauge(
            "dnc_api_imports_running", "imports running on this instance", registry=registry
        )
        for outcome in IMPORT_OUTCOMES:  # every series from the start: rates need a zero
            self.finished.labels(outcome)
            self.seconds.labels(outcome)
        for result in ("accepted", "rejected"):
            self.rows.labels(result)

    def begun(self) -> None:
        self.started.inc()
        self.running.inc()

    def read(self, rows: int, rejected: int) -> None:
        self.rows.labels("accepted").inc(rows - rejected)
        self.rows.labels("rejected").inc(rejected)

    def ended(self, outcome: str, seconds: float) -> None:
        self.running.dec()
        self.finished.labels(outcome).inc()
        self.seconds.labels(outcome).observe(seconds)


class ApiMetrics:
    def __init__(self, context: ApiContext) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dnc_api_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dnc_api_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        lag = Gauge(
            "dnc_api_view_lag_records",
            "changelog records the list view has not applied yet",
            registry=self.registry,
        )
        lag.set_function(lambda: float(context.view.lag() or 0))
        caught_up = Gauge(
            "dnc_api_view_caught_up", "1 once the list view has caught up", registry=self.registry
        )
        caught_up.set_function(lambda: float(context.view.caught_up))
        # The review queue (README, "Opt-outs in people's own words"): the FCC gives ten
        # business days to honour an opt-out, so the oldest open item is the one to alert on.
        open_reviews = Gauge(
            "dnc_reviews_open", "replies waiting for a person's review", registry=self.registry
        )
        open_reviews.set_function(lambda: float(len(context.reviews.select_all_open())))
        oldest = Gauge(
            "dnc_reviews_oldest_open_age_seconds",
            "age of the oldest reply waiting for review (0 when none)",
            registry=self.registry,
        )
        oldest.set_function(lambda: context.reviews.oldest_open_age_s() or 0.0)
        self.imports = ImportMetrics(self.registry)


def new_request_id() -> str:
    """128 random bits in base32: hardly ever seven digits in a row, so the log masking
    (which hides digit runs that could be phone numbers) leaves the id readable."""
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


class RequestObserver:
    """Pure ASGI middleware (no per-request task or body buffering: the check endpoint is
    on a latency budget). Gives each request an id (``request.state.request_id``, the
    ``X-Request-Id`` header, and the ``ref`` of the commands it submits)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(code)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s",
                    orjson.dumps(
                        {
                            "event": "request",
                            "method": method,
                            "route": route,
                            "status": code,
                            "ms": round(elapsed * 1000, 2),
                            "request_id": rid,
                        }
                    ).decode(),
                )


def install(app: FastAPI, context: ApiContext) -> None:
    """Metrics and request logs for every route of ``app``."""
    metrics = ApiMetrics(context)
    app.state.metrics = metrics
    app.add_middleware(RequestObserver, metrics=metrics)
