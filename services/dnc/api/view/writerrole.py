"""``dnc viewwriter``: the one view writer of every API instance (``DNC_VIEW__BACKEND=postgres``).

Instances form the consumer group ``<app>.viewwriter`` over ``dnc.changes`` and
``dnc.history`` and apply each partition they own to PostgreSQL with the store's own write
code (``PostgresStore.apply_fenced``). A partition's next offset moves in the same
transaction as its rows, as a compare-and-set on the offset the batch started from, so:

- exactly once: a batch is kept whole or not at all, and after a rebalance the old owner's
  late batch and the new owner's first one cannot both be kept (the second finds the offset
  moved and is dropped; its owner reads the stored offset again and seeks there);
- a restart, or a partition that moved, resumes from the offset stored with the rows (Kafka
  keeps no offsets for this group); a stored offset outside the partition (the topic was
  recreated) empties the view and every partition starts again from its beginning;
- PostgreSQL down stops nothing: the batch is retried from the stored offsets when it is back.

The code lives beside the view it writes (schema, record parsing, migrations) rather than in a
package of its own: the role and the API share all of it, and roles import nothing of each
other (README, "The list view's backends").
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack, suppress
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError

from dnc.api.view import history as view_history
from dnc.api.view import store
from dnc.api.view.backend import view_identity, view_schema
from dnc.api.view.pgstore import Move, PostgresStore
from dnc.api.view.tailing import HistoryFollows
from dnc.errors import ConfigurationError, ViewUnavailable
from dnc.kafka import clients as kafka
from dnc.lifecycle import Role
from dnc.metrics import RoleMetrics
from dnc.settings import Settings

log = logging.getLogger(__name__)

# Records of every owned partition per transaction while behind (an import, a rebuild):
# PostgreSQL too rewrites each index page a batch touched at every commit, and an import's
# rows land all over the indexes (bench_view.py --rows 500000 --history, apply alone:
# 15.7k rows/s at 5000, 17.7k at 50000). Tailing, a batch is what one poll brought.
BATCH = 50_000
RETRY_S = 1.0


class _Moves(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions given to this instance wait (paused) until their stored offsets are read;
    partitions taken away are forgotten once the batch in flight is done."""

    def __init__(self, writer: ViewWriterRole) -> None:
        self.writer = writer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            log.info("viewwriter: giving back %s", _named(revoked))
        async with self.writer.applying:
            for tp in revoked:
                self.writer.held.pop(tp, None)
                self.writer.unsynced.discard(tp)
                self.writer.metrics.forget(tp.topic, tp.partition)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self.writer.consumer
        assert consumer is not None
        consumer.pause(*assigned)
        self.writer.unsynced.update(assigned)
        log.info("viewwriter: given %s", _named(assigned))


def _named(tps: list[TopicPartition]) -> str:
    return ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in tps)) or "nothing"


class ViewWriterRole(Role):
    name = "viewwriter"

    def __init__(self, settings: Settings, metrics: RoleMetrics | None = None) -> None:
        super().__init__(metrics)
        self.settings = settings
        self.changes, self.history = settings.topics.changes, settings.topics.history
        self.store: PostgresStore | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.held: dict[TopicPartition, int | None] = {}  # owned → offset stored (None: none)
        self.unsynced: set[TopicPartition] = set()  # owned, stored offset not read yet
        self.applying = asyncio.Lock()
        self.error: str | None = None  # the last database error, until a batch is applied
        self._opened = False  # the schema is migrated and the tables are this view's
        self._heartbeat = Path(settings.heartbeat_file) if settings.heartbeat_file else None
        self._beat_at = 0.0
        self._stop = asyncio.Event()
        self.follows = HistoryFollows(ask_ends=False)  # its lag metric is per applied batch

    async def _open(self, exits: AsyncExitStack) -> None:
        if self.settings.view.backend != "postgres":
            raise ConfigurationError(
                "dnc viewwriter writes the PostgreSQL list view: set DNC_VIEW__BACKEND=postgres "
                "and DNC_VIEW__POSTGRES_URL (with sqlite each API instance writes its own file)"
            )
        counts = await kafka.topic_partitions(self.settings, self.changes, self.history)
        self.store = PostgresStore(
            self.settings.view.postgres_url.get_secret_value(),
            view_identity(self.settings, counts[self.changes], counts[self.history]),
            schema=view_schema(self.settings),
        )
        exits.push_async_callback(asyncio.to_thread, self.store.close)
        consumer = kafka.make_consumer(
            self.settings, group_id=self.settings.group_id(self.name), max_records=BATCH
        )
        consumer.subscribe([self.changes, self.history], listener=_Moves(self))
        self.consumer = consumer
        await consumer.start()
        exits.push_async_callback(kafka.close_consumer, consumer, self.settings.shutdown_deadline_s)

    def request_stop(self) -> None:
        self._stop.set()

    async def _serve(self) -> None:
        while not self._stop.is_set():
            self._beat()
            try:
                if not self._opened:
                    # Here, not in _open: a database that is down delays the view, it does
                    # not stop the role (nor `dnc dev` with it).
                    assert self.store is not None
                    await asyncio.to_thread(self.store.open_shared)
                    self._opened = True
                    log.info("viewwriter: writing %s", self.store.where)
                if self.unsynced:
                    await self._sync()
                await self._history_follows()
                await self._step()
                if self.error is not None:
                    log.info("viewwriter: the list view's database answers again")
                self.error = None
                self.metrics.ready = not self.unsynced
            except ViewUnavailable as exc:
                # Retriable by policy: what was not applied is read again from the stored
                # offsets once the database answers.
                if self.error is None:
                    log.warning("viewwriter: %s; retrying every %.0fs", exc, RETRY_S)
                self.error = str(exc)
                self.metrics.ready = False
                async with self.applying:
                    self._resync(list(self.held))
                await self._pause(RETRY_S)

    def _beat(self) -> None:
        """Touch the heartbeat file (the liveness probe): the loop goes round, database up
        or down; only a stuck loop lets it go stale."""
        now = time.monotonic()
        if self._heartbeat is None or now - self._beat_at < self.settings.heartbeat_interval_s:
            return
        self._beat_at = now
        try:
            self._heartbeat.touch()
        except OSError as exc:
            log.warning("viewwriter: cannot touch heartbeat file %s: %s", self._heartbeat, exc)

    async def _pause(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _resync(self, tps: list[TopicPartition]) -> None:
        """Forget what these partitions hold: their stored offsets are read again."""
        assert self.consumer is not None
        owned = [tp for tp in tps if tp in self.held]
        for tp in owned:
            del self.held[tp]
        self.unsynced.update(owned)
        if owned:
            self.consumer.pause(*owned)

    async def _sync(self) -> None:
        """Seek the partitions just given (or fenced) to the offsets stored with the rows."""
        assert self.consumer is not None
        assert self.store is not None
        async with self.applying:
            tps = [tp for tp in self.unsynced if tp in self.consumer.assignment()]
            self.unsynced.intersection_update(tps)
            if not tps:
                return
            stored = await asyncio.to_thread(self.store.applied)
            begin = await self.consumer.beginning_offsets(tps)
            end = await self.consumer.end_offsets(tps)
            at = {tp: stored.get((self._log(tp), tp.partition), (None, 0))[0] for tp in tps}
            if any(o is not None and not begin[tp] <= o <= end[tp] for tp, o in at.items()):
                log.warning(
                    "viewwriter: %s does not match %s / %s (recreated?); rebuilding",
                    self.store.where,
                    self.changes,
                    self.history,
                )
                # Every other instance's next batch is then fenced, and re-reads: from 0.
                await asyncio.to_thread(self.store.reset)
                at = dict.fromkeys(tps)
            for tp, offset in at.items():
                self.consumer.seek(tp, begin[tp] if offset is None else offset)
                self.held[tp] = offset
            self.unsynced.difference_update(tps)
            self.consumer.resume(*tps)

    async def _history_follows(self) -> None:
        """While this instance's changelog partitions are far behind, its history
        partitions wait (``tailing.HistoryFollows``)."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        owned = [tp for tp in self.held if tp in assigned]
        await self.follows.update(
            self.consumer,
            {tp: self.held[tp] or 0 for tp in owned if tp.topic == self.changes},
            [tp for tp in owned if tp.topic == self.history],
        )

    def _log(self, tp: TopicPartition) -> str:
        return store.CHANGES if tp.topic == self.changes else store.HISTORY

    async def _step(self) -> None:
        """One batch of every owned partition, applied in one transaction."""
        assert self.consumer is not None
        assert self.store is not None
        consumer = self.consumer
        # A short poll: a transaction marker alone moves a position, and API instances
        # may be waiting for exactly that offset (read-your-writes).
        batch = await consumer.getmany(timeout_ms=100, max_records=BATCH)
        async with self.applying:
            positions: dict[TopicPartition, int] = {}
            for tp in list(self.held):
                try:
                    # Positions, not last offsets + 1: they move past transaction markers,
                    # which the index's chg:<p> (what writes wait for) counts too.
                    positions[tp] = await consumer.position(tp)
                except IllegalStateError:  # taken away meanwhile
                    continue
            # A partition with no stored offset yet moves too: its first batch claims it.
            moved = {tp: o for tp, o in positions.items() if o != self.held[tp]}
            if not moved:
                return
            records: list[store.Change] = []
            history: list[view_history.Record] = []
            counts = dict.fromkeys(moved, 0)
            for tp, rs in batch.items():
                if tp not in moved:
                    continue  # its records are read again by whoever owns it
                keyed = [r for r in rs if r.key]
                counts[tp] = len(keyed)
                if tp.topic == self.changes:
                    records += [(r.partition, r.offset, r.key, r.value) for r in keyed]
                else:
                    history += [(r.partition, r.offset, r.key, r.value) for r in keyed]
            moves = {
                (self._log(tp), tp.partition): Move(self.held[tp], o, counts[tp])
                for tp, o in moved.items()
            }
            started = time.perf_counter()
            bad = await asyncio.to_thread(self.store.apply_fenced, records, history, moves)
            if bad is None:
                log.info("viewwriter: another instance applied %s first; re-reading", moves)
                self._resync(list(moved))
                return
            if bad:
                log.warning("viewwriter: %d records could not be read (skipped)", bad)
            self.held.update(moved)
            self._measured(moved, counts, bad, time.perf_counter() - started)

    def _measured(
        self,
        moved: dict[TopicPartition, int],
        counts: dict[TopicPartition, int],
        bad: int,
        seconds: float,
    ) -> None:
        """The same metrics as the pipeline roles' (dnc_records_consumed, lag, batch time)."""
        assert self.consumer is not None
        self.metrics.batch_seconds.observe(seconds)
        for tp, offset in moved.items():
            self.metrics.committed(tp.topic, {"applied": counts[tp]}, {})
            end = self.consumer.last_stable_offset(tp)
            if end is None or end < 0:
                end = self.consumer.highwater(tp)
            if end is not None and end >= 0:
                self.metrics.lag(tp.topic, tp.partition, end - offset)
        if bad:
            self.metrics.committed(self.changes, {"unreadable": bad}, {})
