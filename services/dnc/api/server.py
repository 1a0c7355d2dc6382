"""``dnc api``: the HTTP server as a role (start / run / request_stop / stop)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn

from dnc.api.app import create_app
from dnc.api.context import ApiContext
from dnc.settings import Settings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals are handled once, by dnc.runtime; uvicorn must not take them over.
        yield


class ApiServer:
    def __init__(self, settings: Settings) -> None:
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

    async def start(self) -> None:
        await self.context.start()

    async def run(self) -> None:
        await self.server.serve()

    def request_stop(self) -> None:
        self.server.should_exit = True

    async def stop(self) -> None:
        self.request_stop()
        await self.context.stop()

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
