"""``dnc api``: the HTTP server as a role (``dnc.lifecycle``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack

import uvicorn

from dnc.api.app import create_app
from dnc.api.context import ApiContext
from dnc.lifecycle import Role
from dnc.settings import Settings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are handled once, by dnc.runtime; uvicorn must not take them over.
        yield


class ApiServer(Role):
    name = "api"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.context = ApiContext.build(settings)
        self.app = create_app(self.context)
        config = uvicorn.Config(
            self.app,
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(settings.shutdown_deadline_s),
        )
        self.server = _Server(config)

    async def _open(self, exits: AsyncExitStack) -> None:
        # Process-wide, so set by the role that owns the process, before its threads start.
        sys.setswitchinterval(self.settings.api.gil_switch_interval_ms / 1000)
        await self.context.start()
        exits.push_async_callback(self.context.stop)

    async def _serve(self) -> None:
        await self.server.serve()

    def request_stop(self) -> None:
        self.server.should_exit = True
