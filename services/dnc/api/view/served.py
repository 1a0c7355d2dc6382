"""What every API instance asks of the list view, whichever keeps it current: queries on
reader threads over the view's store (``backend.ViewStore``), and the offsets it holds, which
writes wait for (read-your-writes). ``listview.ListView`` keeps a view of the instance's own
(SQLite, or PostgreSQL with one instance); ``shared.SharedView`` reads the PostgreSQL view
that ``dnc viewwriter`` keeps for every instance."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from dnc.api.view import history as view_history
from dnc.api.view import sorting as view_sorting
from dnc.api.view import store
from dnc.api.view.backend import ViewStore
from dnc.api.view.pages import HistoryPage, Page, decode_history_cursor, encode_cursor
from dnc.api.view.query import EntryQuery
from dnc.api.view.sorting import DEFAULT_SORT, parse_sort
from dnc.domain.entries import Entry, EntryKey
from dnc.domain.timestamps import now_ms
from dnc.settings import Settings

T = TypeVar("T")

READER_THREADS = 4


class View(ABC):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics.changes
        self.history_topic = settings.topics.history
        self.offsets: dict[int, int] = {}  # partition → next offset the view holds
        self.history_offsets: dict[int, int] = {}  # the same, of dnc.history
        self.skipped = 0  # changelog records that could not be read
        self.error: str | None = None  # the last error keeping the view behind, until it recovers
        self._start_targets: dict[int, int] = {}  # the logs' ends when the view started
        self._history_targets: dict[int, int] = {}
        self._caught_up = False
        self._store: ViewStore | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []
        self._htps: list[TopicPartition] = []
        self._read_pool: ThreadPoolExecutor | None = None
        self._progress: asyncio.Condition | None = None

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def lag(self) -> int | None:
        """Records behind the changelog's end as last seen (no I/O; for metrics)."""

    async def ensure_readable(self) -> None:  # noqa: B027 - a local file is always there
        """Raise ``ViewUnavailable`` unless the view's database answers now."""

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
        return await self._wait_until(lambda: self._reached(offsets), timeout)

    async def wait_for_history(self, partitions: Sequence[int], timeout: float) -> bool:  # noqa: ASYNC109
        """True once the view holds ``dnc.history`` partitions up to their current end
        (after an effective write: its history records are committed, so within it)."""
        if self._consumer is None:
            return False
        tps = [tp for tp in self._htps if tp.partition in set(partitions)]
        ends = {tp.partition: o for tp, o in (await self._consumer.end_offsets(tps)).items()}
        return await self._wait_until(lambda: self._reached(ends, self.history_offsets), timeout)

    async def _wait_until(self, held: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """``held()`` once it is true (the view's progress notifies), or as it is at the end
        of ``timeout``."""
        if self._progress is None:
            return False
        with contextlib.suppress(TimeoutError):
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(held), timeout)
        return held()

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
        bound = self.settings.view.count_bound
        total, lower = await self._read(lambda v: v.total, q, bound)
        more = len(found) > limit
        last = view_sorting.position(found[limit - 1], order) if more else None
        cursor = view_sorting.encode_position(order, last) if more else None
        return Page([e for e, _ in found[:limit]], total, cursor, total_is_lower_bound=lower)

    async def _ordered(
        self, q: EntryQuery, limit: int, order: tuple[str, bool], after: Any
    ) -> list[store.Listed]:
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
            found = await self._ordered(q, chunk, order, after)
            if found:
                yield [e for e, _ in found]
            if len(found) < chunk:
                return
            after = view_sorting.position(found[-1], order)

    async def keys(self, q: EntryQuery) -> list[EntryKey]:
        return await self._read(lambda v: v.keys, q)

    async def get(self, keys: Sequence[EntryKey]) -> dict[EntryKey, Entry]:
        """The entries of these keys that the view holds."""
        return await self._read(lambda v: v.get, list(keys))

    async def listed(self, keys: Sequence[EntryKey]) -> dict[EntryKey, store.Listed]:
        """``get``, each entry with its place in the listing's order (``kh``)."""
        return await self._read(lambda v: v.listed, list(keys))

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
