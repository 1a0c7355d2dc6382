"""``dnc listwriter``: the list writer. Commands in; changelog and Redis index out.

For each partition ``p`` of ``dnc.commands`` it owns, a list writer instance is the only
writer of changelog partition ``p`` and of the index entries of the contacts in it:

1. On assignment it starts the partition's transactional producer (fencing any zombie
   owner), then *catches up*: applies ``dnc.changes[p]`` to Redis from the offset Redis
   says it has (nothing = empty index = rebuild from the start) to the end, each batch of
   records merged in Redis by one ``replay.lua`` call (``dnc.listwriter.catchup``). Only then does
   it take commands from ``p``.
2. Per batch of commands: load the current entries of the contacts involved from Redis,
   evaluate the commands in order (``dnc.domain.entries.apply_op``: rule 1, opt-in semantics),
   and produce the resulting changes and history records together with the command
   offsets in one transaction.
3. After the commit, write the new entries to Redis with ``chg:p`` in the same Lua script
   (compare-and-set on the previous offset). If that fails — Redis down, flushed,
   restarted without its last second — the partition pauses and catches up from the
   changelog again, so Redis converges on exactly what the changelog says.

A change is *effective* at the gate when step 3 has run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.domain.entries import Command
from dnc.domain.timestamps import now_ms
from dnc.errors import ConfigurationError, DncError, IndexDiverged, IndexUnavailable
from dnc.index import Index, make_index
from dnc.kafka import clients as kafka
from dnc.kafka.batches import BatchWriter, Sent
from dnc.kafka.deadletter import DeadLetters
from dnc.kafka.failures import Failure, classify, describe
from dnc.kafka.pipeline import TransactionalPipeline
from dnc.kafka.role import PipelineRole
from dnc.listwriter.catchup import ChangelogReplay
from dnc.listwriter.evaluate import Evaluated, Evaluator, paused_gc
from dnc.listwriter.expiry import ExpirySweeper
from dnc.metrics import ListWriterMetrics
from dnc.settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

IDLE_CHECK_S = 0.25
CATCH_UP_BACKOFF_S = 0.2
CATCH_UP_MAX_BACKOFF_S = 5.0


@dataclass(slots=True)
class Owned:
    """What this instance knows about a partition it owns."""

    ready: bool = False
    offset: int | None = None  # chg:p as last written by us
    last_write: float = 0.0
    pending: Evaluated = field(default_factory=Evaluated)


class ListWriter(PipelineRole):
    name = "listwriter"

    metrics: ListWriterMetrics

    def __init__(self, settings: Settings, index: Index | None = None) -> None:
        super().__init__(ListWriterMetrics(self.name, enabled=settings.metrics_enabled))
        self.settings = settings
        self.index = index or make_index(settings)
        self.topics = settings.topics
        self.pipeline = TransactionalPipeline(
            settings,
            self.name,
            [settings.topics.commands],
            self,
            max_records=5000,
            metrics=self.metrics,
        )
        self.dead_letters = DeadLetters(settings.topics.dead_letter)
        self.epoch = ""
        self.parts = 0
        self.owned: dict[int, Owned] = {}
        self._catch_ups: dict[int, asyncio.Task[None]] = {}
        self._offsets: AIOKafkaConsumer | None = None
        self._last_idle = 0.0
        self.sweeper = ExpirySweeper(
            settings, self.index, lambda: [p for p, o in self.owned.items() if o.ready]
        )
        self.evaluator: Evaluator | None = None
        self._changelog = ChangelogReplay(
            settings, self.index, lambda: self.parts, self._retrying, self._set_epoch
        )
        self.applied = 0

    async def _open(self, exits: AsyncExitStack) -> None:
        t = self.topics
        counts = await kafka.topic_partitions(
            self.settings, t.commands, t.changes, t.history, t.dead_letter
        )
        if counts[t.commands] != counts[t.changes] or counts[t.history] != counts[t.changes]:
            raise ConfigurationError(
                f"{t.commands}, {t.changes} and {t.history} must have the same number of "
                f"partitions (have {counts[t.commands]}, {counts[t.changes]}, {counts[t.history]})"
            )
        self.parts = counts[t.changes]
        self.dead_letters.partitions = counts[t.dead_letter]
        allowed = kafka.channel_topics(t) or [t.allowed]
        self.evaluator = Evaluator(
            self.settings, self.index, await kafka.topic_partitions(self.settings, *allowed)
        )
        await self.index.start()
        exits.push_async_callback(self.index.stop)
        self.epoch = await self._retrying(functools.partial(self.index.init, self.parts))
        self._offsets = offsets = kafka.make_consumer(self.settings, group_id=None)
        await offsets.start()
        exits.push_async_callback(offsets.stop)
        await self.pipeline.start()
        exits.push_async_callback(self.pipeline.stop)
        await self.sweeper.start()
        exits.push_async_callback(self.sweeper.stop)
        self.spawn(self.sweeper.run(), "expiry sweep")

    # --- partitions ---------------------------------------------------------------------

    async def assigned(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.owned[tp.partition] = Owned()
            self._schedule_catch_up(tp.partition)

    async def revoked(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.owned.pop(tp.partition, None)
            self.metrics.forget_changelog(tp.partition)
            task = self._catch_ups.pop(tp.partition, None)
            if task is not None:
                task.cancel()

    def _schedule_catch_up(self, p: int) -> None:
        owned = self.owned.get(p)
        if owned is None or p in self._catch_ups:
            return
        owned.ready = False
        assert self.pipeline.consumer is not None
        commands = TopicPartition(self.topics.commands, p)
        self.pipeline.consumer.pause(commands)
        # Its commands wait until the catch-up is done: a catch-up that stops moving
        # without a reason in dnc_fail_closed stops the heartbeat (dnc.kafka.progress).
        self.pipeline.progress.waiting(commands, time.monotonic())
        task = self.spawn(self._catch_up(p), f"catch-up of partition {p}")
        self._catch_ups[p] = task
        task.add_done_callback(functools.partial(self._catch_up_done, p))

    def _catch_up_done(self, p: int, task: asyncio.Task[None]) -> None:
        # A failed catch-up (not retriable: a bug or a broken deployment) stops the role
        # (Role.spawn) rather than run with a partition whose index is unknown.
        if self._catch_ups.get(p) is task:
            del self._catch_ups[p]

    async def _catch_up(self, p: int) -> None:
        """Make Redis hold exactly changelog partition p, then resume its commands.

        Kafka or Redis unavailable (during an outage, ``end_offsets`` or the consumer's
        start fail) is waited out with back-off, as the pipeline waits: an outage never
        restarts a pod. Anything else stops the role (``Role.spawn``)."""
        failures = 0
        while True:
            try:
                await self._catch_up_once(p)
                return
            except Exception as exc:
                if classify(exc) is not Failure.RETRY:
                    raise
                if not isinstance(exc, DncError):
                    self.metrics.fail_closed.enter("kafka_unreachable")  # commands wait
                failures += 1
                delay = min(CATCH_UP_BACKOFF_S * 2 ** min(failures - 1, 6), CATCH_UP_MAX_BACKOFF_S)
                log.warning(
                    "listwriter: catch-up of partition %d failed (%s); retrying in %.1fs "
                    "(attempt %d)",
                    p,
                    describe(exc),
                    delay,
                    failures,
                )
                await asyncio.sleep(delay)

    async def _catch_up_once(self, p: int) -> None:
        commands = TopicPartition(self.topics.commands, p)
        started = time.monotonic()
        self.metrics.catch_ups.inc()
        remaining = self.metrics.catch_up_remaining.labels(self.name, str(p))

        def progressed(left: int) -> None:
            self.pipeline.progress.progressed(commands, time.monotonic())
            remaining.set(left)

        offset, applied = await self._changelog.run(p, progressed, self._mark_commands_done)
        owned = self.owned.get(p)
        if owned is None:  # revoked meanwhile: not ours to resume
            return
        owned.offset, owned.ready, owned.last_write = offset, True, time.monotonic()
        remaining.set(0)
        self.pipeline.progress.done(commands)
        closed = self.metrics.fail_closed
        if closed.reason == "kafka_unreachable" and not self.pipeline.producers.failing:
            closed.clear()
        log.info(
            "listwriter: partition %d caught up at %s (%d changes in %.2fs)",
            p,
            offset,
            applied,
            time.monotonic() - started,
        )
        assert self.pipeline.consumer is not None
        self.pipeline.consumer.resume(commands)

    async def _mark_commands_done(self, p: int, offset: int, epoch: str) -> None:
        """Commands whose changes were replayed were processed: say so in cmd:p, or an API
        request waiting for them would wait until the next command arrives."""
        assert self.pipeline.consumer is not None
        committed = await self.pipeline.consumer.committed(TopicPartition(self.topics.commands, p))
        if committed is None:
            return
        await self.index.apply(
            epoch=epoch,
            partition=p,
            expected=offset,
            new_offset=offset,
            new_command_offset=committed,
            updates=[],
            now=now_ms(),
        )

    # --- commands (pipeline Handler) ----------------------------------------------------

    def accepts(self, tp: TopicPartition) -> bool:
        owned = self.owned.get(tp.partition)
        return owned is not None and owned.ready

    async def handle(
        self,
        batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        writers: Mapping[TopicPartition, BatchWriter],
    ) -> None:
        try:
            await self._handle(batch, writers)
        except IndexUnavailable:
            # Commands wait (the pipeline redoes the batch): say why in the metric.
            self.metrics.fail_closed.enter("redis_unreachable")
            raise

    async def _handle(
        self,
        batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        writers: Mapping[TopicPartition, BatchWriter],
    ) -> None:
        assert self.evaluator is not None
        with paused_gc():
            for tp, records in batch.items():
                owned = self.owned.get(tp.partition)
                if owned is None or not owned.ready:
                    raise IndexDiverged(f"partition {tp.partition} is catching up")
                commands: list[tuple[int, Command]] = []
                out = writers[tp]
                for r in records:
                    try:
                        commands.append((r.offset, Command.from_json(r.value)))
                    except (ValueError, KeyError, TypeError) as exc:  # not ours: dead-letter it
                        self.dead_letters.append(
                            out, r, f"value: is not a list command ({exc!r})", "not_a_command"
                        )
                meta, contacts = await self.evaluator.load(commands)
                if meta.epoch != self.epoch or meta.changes.get(tp.partition) != owned.offset:
                    self._schedule_catch_up(tp.partition)
                    raise IndexDiverged(
                        f"partition {tp.partition}: Redis has {meta.changes.get(tp.partition)}, "
                        f"we wrote {owned.offset}"
                    )
                owned.pending = self.evaluator.evaluate(tp.partition, commands, contacts, out)

    async def committed(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]], sent: list[Sent]
    ) -> None:
        owned = self.owned.get(tp.partition)
        if owned is None:
            return
        last = [s.last_offset for s in sent if s.topic == self.topics.changes]
        new_offset = max(last) + 1 if last else owned.offset
        assert new_offset is not None
        done = owned.pending
        try:
            await self.index.apply(
                epoch=self.epoch,
                partition=tp.partition,
                expected=owned.offset,
                new_offset=new_offset,
                new_command_offset=records[-1].offset + 1,
                updates=done.updates,
                now=now_ms(),
                counters=done.counters,
                expiry=done.expiry,
            )
        except (IndexDiverged, IndexUnavailable) as exc:
            # The changes are committed in Kafka; catching up from the changelog puts them
            # into Redis. Until then the partition takes no more commands.
            log.warning(
                "listwriter: partition %d: %s; catching up from the changelog", tp.partition, exc
            )
            owned.pending = Evaluated()
            self._schedule_catch_up(tp.partition)
            return
        self.applied += len(done.updates)
        owned.offset, owned.pending, owned.last_write = new_offset, Evaluated(), time.monotonic()
        # Effective now. Once per partition batch, for its oldest command (the worst delay).
        self.metrics.effective_delay.observe(max(now_ms() - records[0].timestamp, 0) / 1000)

    async def idle(self) -> None:
        """Keep chg:p at the changelog's end while quiet (transaction markers advance it),
        and notice a Redis that lost data even when no commands arrive."""
        now = time.monotonic()
        if now - self._last_idle < IDLE_CHECK_S:
            return
        self._last_idle = now
        ready = [p for p, o in self.owned.items() if o.ready and now - o.last_write >= IDLE_CHECK_S]
        if not ready or self._offsets is None:
            return
        closed = self.metrics.fail_closed
        try:
            meta = await self.index.meta()
        except IndexUnavailable as exc:
            log.warning("listwriter: %s", exc)
            closed.enter("redis_unreachable")
            return
        if closed.reason == "redis_unreachable":
            closed.clear()
        tps = [TopicPartition(self.topics.changes, p) for p in ready]
        # Brokers away: the pipeline runs idle work under its failure policy (backs off and
        # asks again next turn), as it does a batch.
        ends = await self._offsets.end_offsets(tps)
        for tp in tps:
            owned = self.owned.get(tp.partition)
            if owned is None or not owned.ready:
                continue
            if meta.epoch != self.epoch or meta.changes.get(tp.partition) != owned.offset:
                log.warning(
                    "listwriter: Redis no longer holds partition %d as written "
                    "(epoch %s, offset %s); catching up",
                    tp.partition,
                    meta.epoch,
                    meta.changes.get(tp.partition),
                )
                self._schedule_catch_up(tp.partition)
                continue
            end = ends[tp]
            applied = meta.changes.get(tp.partition) or 0
            self.metrics.index_lag.labels(self.name, str(tp.partition)).set(max(end - applied, 0))
            if owned.offset is not None and end > owned.offset:
                try:
                    await self.index.apply(
                        epoch=self.epoch,
                        partition=tp.partition,
                        expected=owned.offset,
                        new_offset=end,
                        new_command_offset=None,
                        updates=[],
                        now=now_ms(),
                    )
                    owned.offset = end
                except (IndexDiverged, IndexUnavailable):
                    self._schedule_catch_up(tp.partition)

    # --- helpers ------------------------------------------------------------------------

    def _set_epoch(self, epoch: str) -> None:
        self.epoch = epoch

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        delay = 0.1
        while True:
            try:
                return await fn()
            except DncError as exc:
                if not exc.retriable:
                    raise
                if isinstance(exc, IndexUnavailable):
                    self.metrics.fail_closed.enter("redis_unreachable")
                log.warning("listwriter: %s; retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
