"""The list view as an API instance reads it with ``DNC_VIEW__BACKEND=postgres``: the tables
``dnc viewwriter`` keeps for every instance (``writerrole``). The instance builds nothing and
holds no file, so it serves its first list request as soon as the database answers.

Read-your-writes holds as with a view of its own: the offsets the view holds are read from
the database (the writers store them with the rows), and a write waits until they reach the
changelog offsets of its commands. While someone waits they are read every ``WAITING_POLL_S``,
otherwise every ``IDLE_POLL_S``.

PostgreSQL down: reads answer ``ViewUnavailable`` (503, naming the database), and writes stop
waiting for the view at once (they are effective without it); checks never read the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from dnc.api.view import store
from dnc.api.view.backend import view_identity, view_schema
from dnc.api.view.pgstore import PostgresStore
from dnc.api.view.served import READER_THREADS, View
from dnc.api.view.tailing import stop_tailing
from dnc.errors import ViewUnavailable
from dnc.kafka import clients as kafka
from dnc.settings import Settings

log = logging.getLogger(__name__)

WAITING_POLL_S = 0.02
IDLE_POLL_S = 0.5
ENDS_EVERY_S = 5.0  # how often the logs' ends are asked for (lag, for metrics)


class SharedView(View):
    """Reads the PostgreSQL view that the ``dnc viewwriter`` group keeps."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pg: PostgresStore | None = None
        self._waiting = 0
        self._wake = asyncio.Event()
        self._ends: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        if self._task is not None:
            return
        counts = await kafka.topic_partitions(self.settings, self.topic, self.history_topic)
        parts, hparts = counts[self.topic], counts[self.history_topic]
        self._tps = [TopicPartition(self.topic, p) for p in range(parts)]
        self._htps = [TopicPartition(self.history_topic, p) for p in range(hparts)]
        consumer = kafka.make_consumer(self.settings, group_id=None)
        await consumer.start()  # for the logs' ends only: it consumes nothing
        self._consumer = consumer
        ends = await consumer.end_offsets(self._tps + self._htps)
        self._ends = dict(ends)
        self._start_targets = {tp.partition: ends[tp] for tp in self._tps}
        self._history_targets = {tp.partition: ends[tp] for tp in self._htps}
        self._progress = asyncio.Condition()
        self._read_pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="dnc-view-read")
        view = PostgresStore(
            self.settings.view.postgres_url.get_secret_value(),
            view_identity(self.settings, parts, hparts),
            schema=view_schema(self.settings),
            pool_size=self.settings.view.postgres_pool_size,
            statement_timeout_s=self.settings.view.postgres_statement_timeout_s,
        )
        view.open_readers()  # connects in the background: the database may be down now
        self._store = self._pg = view
        self._task = asyncio.create_task(self._run(), name="list-view-offsets")

    async def stop(self) -> None:
        task, self._task = self._task, None
        consumer, self._consumer = self._consumer, None
        await stop_tailing(task, consumer)
        if self._store is not None:
            view, self._store, self._pg = self._store, None, None
            await asyncio.to_thread(view.close)
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=True)
            self._read_pool = None

    async def _run(self) -> None:
        assert self._progress is not None
        asked = time.monotonic()
        while True:
            try:
                assert self._pg is not None
                held = await asyncio.get_running_loop().run_in_executor(
                    self._read_pool, self._pg.held_offsets
                )
                async with self._progress:
                    self.offsets = dict(held.get(store.CHANGES, {}))
                    self.history_offsets = dict(held.get(store.HISTORY, {}))
                    self._progress.notify_all()
                if self.error is not None:
                    log.info("view: %s answers again", self._where)
                self.error = None
                if not self._caught_up and self._reached(self._start_targets):
                    self._caught_up = self._reached(self._history_targets, self.history_offsets)
                if time.monotonic() - asked > ENDS_EVERY_S:
                    asked = time.monotonic()
                    await self._refresh_ends()
            except ViewUnavailable as exc:  # retriable: reads answer 503 meanwhile
                if self.error is None:
                    log.warning("view: %s", exc)
                self.error = str(exc)
                async with self._progress:
                    self._progress.notify_all()  # writers stop waiting for the view
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                interval = WAITING_POLL_S if self._waiting else IDLE_POLL_S
                await asyncio.wait_for(self._wake.wait(), interval)

    async def _refresh_ends(self) -> None:
        """The logs' ends, for the lag metric only: a broker that does not answer leaves the
        last ones (readiness asks the broker itself)."""
        if self._consumer is None:
            return
        try:
            self._ends = dict(await self._consumer.end_offsets(self._tps + self._htps))
        except KafkaError as exc:
            log.warning("view: the logs' ends are unknown for now: %r", exc)

    async def ensure_readable(self) -> None:
        if self._pg is None or self._read_pool is None:
            raise RuntimeError("the view is not started")
        await asyncio.get_running_loop().run_in_executor(self._read_pool, self._pg.held_offsets)

    @property
    def _where(self) -> str:
        return self._store.where if self._store is not None else "the list view's database"

    async def _wait_until(self, held: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        # The database down: the write is effective without the view, so it does not wait
        # (the list shows it once the database is back).
        self._waiting += 1
        self._wake.set()
        try:
            await super()._wait_until(lambda: held() or self.error is not None, timeout)
        finally:
            self._waiting -= 1
        return held()

    def lag(self) -> int | None:
        if not self._ends:
            return None
        return sum(
            max(
                0,
                end
                - (self.offsets if tp.topic == self.topic else self.history_offsets).get(
                    tp.partition, 0
                ),
            )
            for tp, end in self._ends.items()
        )
