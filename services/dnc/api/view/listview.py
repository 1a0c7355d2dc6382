"""The list's query view: a database materialised from ``dnc.changes`` and
``dnc.history`` (a local SQLite file, or PostgreSQL: ``dnc.api.view.backend``).

Listing, filtering, counting and export need queries the Redis index is not built for
(newest first, by sender, by source, by time). The changelog is the source of truth, so
each API instance keeps its own copy of it in SQLite, consuming every partition of both
topics with one non-group consumer (read_committed) and storing the consumed offsets in
the same SQLite transaction as the rows: a restart resumes where it stopped, and a missing
or foreign file is rebuilt from offset 0.

All database work runs on threads, never on the event loop: one writer thread applies
the changelog; reader threads run the queries (the store keeps their connections).

Far behind on the changelog (an import, a rebuild), the view reads only it and the
history follows once the list is near its end (``tailing.HistoryFollows``): the same work
in the order a user looks at it.

Read-your-writes: after a write is effective at the gate, the API reads the index's
``chg:<p>`` offsets and ``wait_for`` them here, so the list shows the write too, and
waits for its partitions of the history up to their end (``wait_for_history``), which the
list writer's committed transaction has moved (``dnc.api.writes.apply``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from aiokafka import TopicPartition

from dnc.api.view import history as view_history
from dnc.api.view import store
from dnc.api.view.backend import make_store, view_identity
from dnc.api.view.served import READER_THREADS, View
from dnc.api.view.tailing import HistoryFollows, behind, stop_tailing
from dnc.kafka import clients as kafka
from dnc.settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

# Records (of both logs) per SQLite transaction, at most. While the view is behind (an
# import, a rebuild) it takes what the consumer has fetched, up to this many, in one
# transaction: each commit writes every index page the batch touched, and an import's
# rows land all over the indexes, so per row a 5000-record transaction cost 69 µs and a
# 50000-record one 45 (300k imported entries, /tmp micro-benchmark of ViewWriter.apply;
# more than that spills the page cache mid-transaction and costs more again). Tailing,
# a batch is whatever arrived in the last poll, a few records.
BATCH = 50_000
# The view's writer thread runs at this lower CPU priority (nice): under a large import it
# is the API's biggest CPU user, and on a small machine it would take cores from the list
# writer and the gate, whose work is what makes an opt-out effective. It is only a lag.
WRITER_NICE = 10
RETRY_S = 1.0


def view_file(settings: Settings) -> Path:
    """The configured path with the deployment's app id in the name, so that two
    namespaces on one host never share a file."""
    path = Path(settings.api.view_path)
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.app_id)
    return path.with_name(f"{path.stem}.{tag}{path.suffix or '.sqlite3'}")


class ListView(View):
    """A view of this instance's own, which it consumes into (the embedded default)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = view_file(settings)
        self._write_pool: ThreadPoolExecutor | None = None
        self._history = HistoryFollows(ask_ends=True)  # the lag metric counts the paused history

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        counts = await kafka.topic_partitions(self.settings, self.topic, self.history_topic)
        parts, hparts = counts[self.topic], counts[self.history_topic]
        self._progress = asyncio.Condition()
        self._write_pool = ThreadPoolExecutor(
            1, thread_name_prefix="dnc-view-write", initializer=_yield_to_enforcement
        )
        self._read_pool = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="dnc-view-read")
        self._store = make_store(
            self.settings, self.path, view_identity(self.settings, parts, hparts)
        )
        writer = self._store
        changes = await self._write(writer.open)
        history = await self._write(writer.offsets, store.HISTORY)
        stored = {
            **{TopicPartition(self.topic, p): o for p, o in changes.items()},
            **{TopicPartition(self.history_topic, p): o for p, o in history.items()},
        }
        consumer = kafka.make_consumer(self.settings, group_id=None, max_records=BATCH)
        await consumer.start()
        self._consumer = consumer
        self._tps = [TopicPartition(self.topic, p) for p in range(parts)]
        self._htps = [TopicPartition(self.history_topic, p) for p in range(hparts)]
        every = self._tps + self._htps
        consumer.assign(every)
        begin = await consumer.beginning_offsets(every)
        end = await consumer.end_offsets(every)
        if any(not begin[tp] <= stored.get(tp, begin[tp]) <= end[tp] for tp in every):
            log.warning(
                "view: %s does not match %s / %s (recreated?); rebuilding",
                writer.where,
                self.topic,
                self.history_topic,
            )
            await self._write(writer.reset)
            stored = {}
        for tp in every:
            consumer.seek(tp, stored.get(tp, begin[tp]))
        self.offsets = {tp.partition: stored.get(tp, begin[tp]) for tp in self._tps}
        self.history_offsets = {tp.partition: stored.get(tp, begin[tp]) for tp in self._htps}
        self._start_targets = {tp.partition: end[tp] for tp in self._tps}
        self._history_targets = {tp.partition: end[tp] for tp in self._htps}
        self._caught_up = self._reached(self._start_targets) and self._reached(
            self._history_targets, self.history_offsets
        )
        self._task = asyncio.create_task(self._run(), name="list-view")

    async def stop(self) -> None:
        task, self._task = self._task, None
        consumer, self._consumer = self._consumer, None
        await stop_tailing(task, consumer)
        if self._store is not None:
            writer, self._store = self._store, None
            await self._write(writer.close)
        for pool in (self._write_pool, self._read_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._write_pool = self._read_pool = None

    # --- consuming -----------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._consumer is not None
        assert self._store is not None
        consumer, writer = self._consumer, self._store
        while True:
            try:
                await self._history.update(
                    consumer,
                    {tp: self.offsets.get(tp.partition, 0) for tp in self._tps},
                    self._htps,
                )
                # A short poll: a transaction marker alone moves the position too, and
                # writers may be waiting for exactly that offset.
                batch = await consumer.getmany(timeout_ms=100, max_records=BATCH)
                # Positions, not last offsets + 1: they move past transaction markers, and
                # the index's chg:<p> (what writers wait for) counts those too.
                positions = {tp.partition: await consumer.position(tp) for tp in self._tps}
                moved = {p: o for p, o in positions.items() if o != self.offsets.get(p)}
                hpositions = {tp.partition: await consumer.position(tp) for tp in self._htps}
                hmoved = {p: o for p, o in hpositions.items() if o != self.history_offsets.get(p)}
                if not moved and not hmoved:
                    continue
                records: list[store.Change] = []
                history: list[view_history.Record] = []
                for tp, rs in batch.items():
                    if tp.topic == self.topic:
                        records += [(r.partition, r.offset, r.key, r.value) for r in rs if r.key]
                    else:
                        history += [(r.partition, r.offset, r.key, r.value) for r in rs if r.key]
                self.skipped += await self._write(writer.apply, records, moved, history, hmoved)
                await self._advanced(moved, hmoved)
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the view alive; readyz shows the error
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("view: applying %s failed; retrying", self.topic)
                await asyncio.sleep(RETRY_S)
                for tp in self._tps:  # redo from what the store holds
                    consumer.seek(tp, self.offsets[tp.partition])
                for tp in self._htps:
                    consumer.seek(tp, self.history_offsets[tp.partition])

    async def _advanced(self, moved: dict[int, int], hmoved: dict[int, int]) -> None:
        assert self._progress is not None
        assert self._store is not None
        async with self._progress:
            self.offsets.update(moved)
            self.history_offsets.update(hmoved)
            self._progress.notify_all()
        if (
            not self._caught_up
            and self._reached(self._start_targets)
            and self._reached(self._history_targets, self.history_offsets)
        ):
            self._caught_up = True
            log.info(
                "view: caught up with %s and %s (%s)",
                self.topic,
                self.history_topic,
                self._store.where,
            )
            # Fresh statistics after a rebuild, so the planner picks the ordered indexes.
            await self._write(self._store.optimize)

    def lag(self) -> int | None:
        """Records behind the last stable offsets seen in fetches (no I/O; for metrics)."""
        consumer = self._consumer
        if consumer is None:
            return None
        changes = {tp: self.offsets.get(tp.partition, 0) for tp in self._tps}
        history = {tp: self.history_offsets.get(tp.partition, 0) for tp in self._htps}
        return behind(consumer, changes, {}) + behind(consumer, history, self._history.ends)

    # --- threads -----------------------------------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: object) -> T:
        if self._write_pool is None:
            raise RuntimeError("the view is not started")
        return await asyncio.get_running_loop().run_in_executor(self._write_pool, fn, *args)


def _yield_to_enforcement() -> None:
    """Lower the calling thread's priority (Linux: nice applies per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
