"""A small TCP proxy that makes the network between the roles and Redis slow and flaky.

``ChaosProxy(target_port)`` listens on a free loopback port and forwards every connection
to the target, in a thread with its own event loop (so the test's own work never delays
the traffic, and the traffic never delays the test). It can

- add latency (with jitter) to every chunk in both directions, preserving order;
- cut every open connection (``cut``), as a restarted load balancer or a NAT timeout does;
- stall (``stall(seconds)``): accept connections and bytes but forward nothing, then reset
  every connection that was open during the stall, as a network partition does;
- do both at random (``chaos``) until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.ports import free_port

T = TypeVar("T")


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0
    connections_cut: int = 0
    stalls: int = 0
    stalled_s: float = 0.0
    bytes: int = 0


class _Link:
    """One proxied connection: client ⇄ target."""

    def __init__(
        self,
        proxy: ChaosProxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.target_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False

    async def run(self) -> None:
        try:
            await self.proxy._wait_unstalled()
            reader, writer = await asyncio.open_connection("127.0.0.1", self.proxy.target_port)
        except OSError:
            self.close()
            return
        self.target_writer = writer
        self.tasks = [
            asyncio.create_task(self._pump(self.client_reader, writer)),
            asyncio.create_task(self._pump(reader, self.client_writer)),
        ]
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                due, data = item
                await self.proxy._wait_unstalled()
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                dst.write(data)
                await dst.drain()

        writer = asyncio.create_task(deliver())
        try:
            while data := await src.read(65536):
                self.proxy.stats.bytes += len(data)
                queue.put_nowait((time.monotonic() + self.proxy._delay(), data))
            queue.put_nowait(None)
            await writer
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for w in (self.client_writer, self.target_writer):
            if w is not None:
                w.transport.abort()
        for t in self.tasks:
            t.cancel()
        self.proxy._links.discard(self)


class ChaosProxy:
    def __init__(
        self,
        target_port: int,
        *,
        latency_s: tuple[float, float] = (0.0, 0.0),
        seed: int | None = None,
    ) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.latency_s = latency_s
        self.rng = random.Random(seed)
        self.stats = ProxyStats()
        self._links: set[_Link] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._unstalled: asyncio.Event | None = None
        self._chaos: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # --- lifecycle (called from the test's thread) ---------------------------------

    def start(self) -> ChaosProxy:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                self._unstalled = asyncio.Event()
                self._unstalled.set()
                self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
                ready.set()

            loop.run_until_complete(serve())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for link in list(self._links):
                link.close()
            if self._unstalled is not None:
                self._unstalled.set()
            me = asyncio.current_task()
            others = [t for t in asyncio.all_tasks() if t is not me]
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # --- faults (callable from the test's thread) ----------------------------------

    def set_latency(self, low: float, high: float) -> None:
        self.latency_s = (low, high)

    def cut(self) -> int:
        """Reset every open connection; return how many."""

        async def cut() -> int:
            return self._cut_all()

        return self._call(cut())

    def stall(self, seconds: float) -> None:
        """Forward nothing for `seconds`, then reset the connections (blocking call)."""

        async def stall() -> None:
            await self._stall(seconds)

        self._call(stall())

    def start_chaos(
        self,
        *,
        cut_every_s: tuple[float, float] = (0.5, 2.5),
        stall_chance: float = 0.2,
        stall_s: tuple[float, float] = (1.5, 3.0),
    ) -> None:
        """Until ``stop_chaos``: cut all connections at random moments, and now and then
        stall the network for longer than the clients' time-outs instead."""

        async def chaos() -> None:
            while True:
                await asyncio.sleep(self.rng.uniform(*cut_every_s))
                if self.rng.random() < stall_chance:
                    await self._stall(self.rng.uniform(*stall_s))
                else:
                    self._cut_all()

        async def begin() -> None:
            self._chaos = asyncio.create_task(chaos())

        self._call(begin())

    def stop_chaos(self) -> None:
        async def end() -> None:
            if self._chaos is not None:
                self._chaos.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._chaos
                self._chaos = None
            assert self._unstalled is not None
            if not self._unstalled.is_set():
                self._unstalled.set()
                self._cut_all()

        self._call(end())

    # --- inside the proxy's loop -----------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        link = _Link(self, (reader, writer))
        self._links.add(link)
        await link.run()

    def _delay(self) -> float:
        low, high = self.latency_s
        return self.rng.uniform(low, high) if high > 0 else 0.0

    async def _wait_unstalled(self) -> None:
        assert self._unstalled is not None
        await self._unstalled.wait()

    def _cut_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.close()
        self.stats.cuts += 1
        self.stats.connections_cut += len(links)
        return len(links)

    async def _stall(self, seconds: float) -> None:
        assert self._unstalled is not None
        self.stats.stalls += 1
        self._unstalled.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.stats.stalled_s += seconds
            # Bytes held during the partition are lost with their connections.
            self._cut_all()
            self._unstalled.set()
