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

Read-your-writes: after a write is effective at the gate, the API reads the index's
``chg:<p>`` offsets and ``wait_for`` them here, so the list shows the write too; a write
whose history matters (an erasure) also waits for the history's end
(``wait_for_history``), which the list writer's committed transaction has moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from dnc.api.view import history as view_history
from dnc.api.view import sorting as view_sorting
from dnc.api.view import store
from dnc.api.view.backend import ViewStore, make_store
from dnc.api.view.pages import HistoryPage, Page, decode_history_cursor, encode_cursor
from dnc.api.view.query import EntryQuery
from dnc.api.view.sorting import DEFAULT_SORT, parse_sort
from dnc.domain.entries import Entry, EntryKey
from dnc.domain.timestamps import now_ms
from dnc.kafka import clients as kafka
from dnc.settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

READER_THREADS = 4
BATCH = 5000
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


class ListView:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics.changes
        self.history_topic = settings.topics.history
        self.path = view_file(settings)
        self.offsets: dict[int, int] = {}  # partition → next offset stored in SQLite
        self.history_offsets: dict[int, int] = {}  # the same, of dnc.history
        self.skipped = 0  # changelog records that could not be read
        self.error: str | None = None  # the last error of the consume loop, until it recovers
        self._start_targets: dict[int, int] = {}
        self._history_targets: dict[int, int] = {}
        self._caught_up = False
        self._store: ViewStore | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []
        self._htps: list[TopicPartition] = []
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._progress: asyncio.Condition | None = None

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
            self.settings,
            self.path,
            {
                "bootstrap": self.settings.kafka_bootstrap,
                "topic": self.topic,
                "partitions": str(parts),
                "history": self.history_topic,
                "history_partitions": str(hparts),
            },
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
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
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
                records: list[tuple[bytes, bytes | None]] = []
                history: list[view_history.Record] = []
                for tp, rs in batch.items():
                    if tp.topic == self.topic:
                        records += [(r.key, r.value) for r in rs if r.key]
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

    def _reached(self, targets: dict[int, int], held: dict[int, int] | None = None) -> bool:
        have = self.offsets if held is None else held
        return all(have.get(p, 0) >= o for p, o in targets.items())

    @property
    def caught_up(self) -> bool:
        """The view has consumed the changelog as it was when the view started."""
        return self._caught_up and self._task is not None and not self._task.done()

    # A timeout argument (not asyncio.timeout) because running out of time is an answer
    # here (False), not an error; the same shape as CommandWriter.wait_effective.
    async def wait_for(self, offsets: dict[int, int], timeout: float) -> bool:  # noqa: ASYNC109
        """True once the view holds ``dnc.changes`` up to ``offsets`` (partition → next)."""
        if self._progress is None:
            return False
        try:
            async with self._progress:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._reached(offsets)), timeout
                )
        except TimeoutError:
            return self._reached(offsets)
        return True

    async def wait_for_history(self, partitions: Sequence[int], timeout: float) -> bool:  # noqa: ASYNC109
        """True once the view holds ``dnc.history`` partitions up to their current end
        (after an effective write: its history records are committed, so within it)."""
        if self._progress is None or self._consumer is None:
            return False
        tps = [tp for tp in self._htps if tp.partition in set(partitions)]
        ends = {tp.partition: o for tp, o in (await self._consumer.end_offsets(tps)).items()}

        def held() -> bool:
            return self._reached(ends, self.history_offsets)

        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(held), timeout)
        except TimeoutError:
            return held()
        return True

    def lag(self) -> int | None:
        """Records behind the last stable offsets seen in fetches (no I/O; for metrics)."""
        consumer = self._consumer
        if consumer is None:
            return None
        total = 0
        for tp in self._tps + self._htps:
            held = self.offsets if tp.topic == self.topic else self.history_offsets
            lso = consumer.last_stable_offset(tp)
            if lso is None or lso < 0:
                lso = consumer.highwater(tp)
            if lso is not None and lso >= 0:
                total += max(0, lso - held.get(tp.partition, 0))
        return total

    async def end_lag(self) -> int:
        """Records behind the changelog's current end, asking the broker (readiness)."""
        if self._consumer is None:
            raise RuntimeError("the view is not started")
        ends = await self._consumer.end_offsets(self._tps + self._htps)
        return sum(
            max(
                0,
                end
                - (self.offsets if tp.topic == self.topic else self.history_offsets).get(
                    tp.partition, 0
                ),
            )
            for tp, end in ends.items()
        )

    # --- threads -----------------------------------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: object) -> T:
        if self._write_pool is None:
            raise RuntimeError("the view is not started")
        return await asyncio.get_running_loop().run_in_executor(self._write_pool, fn, *args)

    async def _read(self, fn: Callable[[ViewStore], Callable[..., T]], *args: object) -> T:
        """``fn(store)(*args)`` on a reader thread (``fn`` picks the store's method)."""
        view = self._store
        if self._read_pool is None or view is None:
            raise RuntimeError("the view is not started")
        return await asyncio.get_running_loop().run_in_executor(
            self._read_pool, lambda: fn(view)(*args)
        )

    # --- queries -------------------------------------------------------------------------

    async def query(
        self, q: EntryQuery, *, limit: int, cursor: str | None, sort: str = DEFAULT_SORT
    ) -> Page:
        """A page of entries (newest first, or ``sort``: see ``sorting.parse_sort``), and
        how many entries ``q`` matches in all."""
        order = parse_sort(sort)
        after = view_sorting.decode_position(cursor, order) if cursor else None
        found = await self._ordered(q, limit + 1, order, after)
        total = await self._read(lambda v: v.count, q)
        entries = found[:limit]
        more = len(found) > limit
        last = view_sorting.position(entries[-1], order) if more else None
        return Page(entries, total, view_sorting.encode_position(order, last) if more else None)

    async def _ordered(
        self, q: EntryQuery, limit: int, order: tuple[str, bool], after: Any
    ) -> list[Entry]:
        if order == view_sorting.NEWEST:
            return await self._read(lambda v: v.page, q, limit, after)
        return await self._read(lambda v: v.sorted_page, q, limit, order, after)

    async def overview(self, accounts: list[str], days: int) -> dict[str, Any]:
        """Totals by source and channel, and changes per day (``dnc.api.view.overview``)."""
        return await self._read(lambda v: v.overview, accounts, days, now_ms())

    async def count(self, q: EntryQuery) -> int:
        return await self._read(lambda v: v.count, q)

    async def stream(
        self, q: EntryQuery, chunk: int = 1000, sort: str = DEFAULT_SORT
    ) -> AsyncIterator[list[Entry]]:
        """Every entry ``q`` matches in the listing's order ``sort`` (newest first by
        default), ``chunk`` at a time (memory bounded: each chunk is its own keyset
        query). An export writes the list in the order the page shows it."""
        order = parse_sort(sort)
        after: Any = None
        while True:
            entries = await self._ordered(q, chunk, order, after)
            if entries:
                yield entries
            if len(entries) < chunk:
                return
            after = view_sorting.position(entries[-1], order)

    async def keys(self, q: EntryQuery) -> list[EntryKey]:
        return await self._read(lambda v: v.keys, q)

    async def get(self, keys: Sequence[EntryKey]) -> dict[EntryKey, Entry]:
        """The entries of these keys that the view holds."""
        return await self._read(lambda v: v.get, list(keys))

    # --- history -------------------------------------------------------------------------

    async def history(
        self, accounts: Sequence[str], contacts: Sequence[str], *, limit: int, cursor: str | None
    ) -> HistoryPage:
        """A person's history records (``contacts``: every form of them), newest first."""
        after = decode_history_cursor(cursor) if cursor else None
        items = await self._read(lambda v: v.history_page, accounts, contacts, limit + 1, after)
        more = len(items) > limit
        items = items[:limit]
        return HistoryPage(items, encode_cursor(items[-1].position) if more else None)

    async def history_keys(self, account: str, contacts: Sequence[str]) -> list[list[Any]]:
        return await self._read(lambda v: v.history_keys, account, contacts)

    async def history_stream(
        self, q: EntryQuery, chunk: int = 1000
    ) -> AsyncIterator[list[view_history.HistoryItem]]:
        """The history of every person with an entry ``q`` matches, ``chunk`` at a time."""
        after: view_history.ExportPosition | None = None
        while True:
            items = await self._read(lambda v: v.history_of_matching, q, chunk, after)
            if items:
                yield items
            if len(items) < chunk:
                return
            after = view_history.export_position(items[-1])

    async def history_of(self, people: Sequence[tuple[str, str]]) -> list[view_history.HistoryItem]:
        return await self._read(lambda v: v.history_of_people, people)


def _yield_to_enforcement() -> None:
    """Lower the calling thread's priority (Linux: nice applies per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
