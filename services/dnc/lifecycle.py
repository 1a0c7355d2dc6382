"""Start, run and stop of every role (ingest, list writer, gate, api), written once.

A role opens its resources in ``_open`` and registers each one's close as it opens it, so
``stop`` closes exactly what was opened, newest first, also after a start that failed
half-way. ``stop`` first stops taking work (``request_stop``) and cancels the role's
background tasks, then closes: the pipeline, which is closed first, finishes its batch in
flight and commits before its clients close. Both ``start`` and ``stop`` are idempotent.

Background tasks are started with ``spawn`` and supervised: a task that fails stops the
role, and ``run`` raises the task's error (``dnc.runtime`` then exits non-zero), because a
role that silently lost part of its work (a partition's catch-up, the expiry sweep) may
never make an opt-out effective. ``stop`` lets the work in flight finish first
(``_drain``: a pipeline's last batch may start a catch-up), then cancels the background
tasks (one spawned from then on is cancelled before it runs), then closes; a task that
failed and was not reported by ``run`` is raised by ``stop``, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any, Self

from dnc.metrics import RoleMetrics
from dnc.settings import Settings

log = logging.getLogger(__name__)


class Role(ABC):
    #: The role's name in logs, the CLI, consumer groups and transactional ids.
    name: str
    settings: Settings

    def __init__(self, metrics: RoleMetrics | None = None) -> None:
        # Built with the role (in main(), or by a test), served from start() on
        # DNC_METRICS_PORT (dnc.metrics).
        self.metrics = metrics or RoleMetrics(self.name)
        self._exits: AsyncExitStack | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failure: BaseException | None = None
        self._reported = False
        self._stopping = False

    @abstractmethod
    async def _open(self, exits: AsyncExitStack) -> None:
        """Open the role's resources, each followed by ``exits.push_async_callback`` of
        its close."""

    @abstractmethod
    async def _serve(self) -> None:
        """Do the role's work until ``request_stop``."""

    @abstractmethod
    def request_stop(self) -> None:
        """Stop taking work (safe from a signal handler: no await)."""

    async def start(self) -> None:
        if self._exits is not None:
            return
        self._stopping, self._reported = False, False
        self._exits = exits = AsyncExitStack()
        port = self.settings.metrics_port
        if port is not None:
            # Served from the start: a role stuck opening shows up=0 rather than nothing.
            self.metrics.serve(port)
            exits.push_async_callback(asyncio.to_thread, self.metrics.close)
        await self._open(exits)
        self.metrics.up = True

    async def run(self) -> None:
        """Work until stopped; raise the error of a background task that failed."""
        await self._serve()
        if self._failure is not None:
            self._reported = True
            raise self._failure

    async def stop(self) -> None:
        exits, self._exits = self._exits, None
        if exits is None:
            return
        self.metrics.up = False
        self._stopping = True
        self.request_stop()
        try:
            await self._drain()
        finally:
            await self._cancel_tasks()
            try:
                await exits.aclose()
            finally:
                await self._cancel_tasks()
        if self._failure is not None and not self._reported:
            self._reported = True
            raise self._failure

    async def _drain(self) -> None:  # noqa: B027 - a hook: most roles have nothing to drain
        """Let the work in flight finish (it may still spawn tasks); clients stay open."""

    async def _cancel_tasks(self) -> None:
        # Their failures are not lost: _finished records the first (stop raises it).
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` in the background, supervised (see the module's docstring)."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        if self._stopping:
            task.cancel()  # before it runs a line: nothing would stop it later
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        log.error("%s: %s failed: %r", self.name, task.get_name(), exc, exc_info=exc)
        if self._failure is None:
            self._failure = exc
        self.request_stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
