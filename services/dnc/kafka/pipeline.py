"""Exactly-once consume → transform → produce, the loop under ingest, list writer and gate.

Per batch from ``getmany``: a ``Handler`` turns the records into output records (one
``BatchWriter`` per input partition), then each input partition commits its outputs and
its consumer offset in one Kafka transaction of its own producer. A crash anywhere before
the commit leaves nothing visible to ``read_committed`` readers and the same records are
processed again; after it, nothing is processed twice.

Each input partition has its own transactional producer whose id is derived from the
partition: aiokafka's transactional offset commit predates consumer-group fencing
(KIP-447), so it is the new owner re-using the id that fences a zombie former owner.

Failure policy comes from the error and the chain of its causes (``dnc.kafka.failures``):

- a retriable error while handling (Redis unavailable, the index behind) → abort, rewind
  the consumer, wait, fetch and redo the same records (the gate re-checks them: an
  opt-out may have arrived meanwhile);
- brokers or coordinators unavailable during a transaction step (begin, produce, offsets,
  commit, abort) → the partition's producer is replaced by a new one with the same
  transactional id, which resolves the open transaction and fences the old producer;
  the batch is redone from the committed offset (``dnc.kafka.producers``);
- fenced → another producer took the transactional id: drop the producer, and open a new
  one after a pause if the partition is still ours (a transaction that outlived its
  time-out is fenced by the coordinator itself);
- anything else (authorisation, configuration, a bug) → abort and stop the role, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.kafka import clients as kafka
from dnc.kafka.batches import BatchWriter, Sent
from dnc.kafka.failures import Failure, classify, describe
from dnc.kafka.producers import PartitionProducers
from dnc.kafka.progress import Heartbeat, ProgressWatch, stuck
from dnc.metrics import RoleMetrics
from dnc.settings import Settings

log = logging.getLogger(__name__)

# After being fenced, how long to wait before taking the transactional id back: if another
# instance owns the partition now, our consumer learns of the rebalance within a few
# heartbeats and the partition is revoked instead.
FENCED_RECHECK_S = 3.0
# Closing after the batch in flight finished: both fit in the runtime's close allowance
# (5 s after the shutdown deadline), so an unavailable coordinator cannot turn an orderly
# stop into a failed one.
CONSUMER_CLOSE_S = 2.5
PRODUCERS_CLOSE_S = 1.5
# How often the loop re-evaluates the role_ready metric (cheap, but not every poll).
READY_REFRESH_S = 0.5

Records = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


class Handler(Protocol):
    async def handle(self, batch: Records, writers: Mapping[TopicPartition, BatchWriter]) -> None:
        """Append the outputs of every record to its partition's writer. Raise a retriable
        ``DncError`` to have the whole batch redone; never swallow an error."""

    async def committed(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]], sent: list[Sent]
    ) -> None:
        """Called after the partition's transaction committed, with the batches it sent."""

    def accepts(self, tp: TopicPartition) -> bool:
        """False = not now (e.g. the partition is catching up): its records are put back."""

    async def assigned(self, tps: set[TopicPartition]) -> None: ...

    async def revoked(self, tps: set[TopicPartition]) -> None: ...

    async def idle(self) -> None: ...


class TransactionalPipeline:
    def __init__(
        self,
        settings: Settings,
        role: str,
        topics: Sequence[str],
        handler: Handler,
        *,
        max_records: int = 2000,
        poll_timeout_ms: int = 50,
        retry_backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
        metrics: RoleMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or RoleMetrics(role)
        self.role = role
        self.topics = list(topics)
        self.handler = handler
        self.group_id = settings.group_id(role)
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.retry_backoff_s = retry_backoff_s
        self.max_backoff_s = max_backoff_s
        self.consumer: AIOKafkaConsumer | None = None
        self.producers = PartitionProducers(
            settings,
            role,
            on_ready=self._producer_ready,
            on_fatal=self._fail,
            metrics=self.metrics,
            backoff_s=retry_backoff_s,
            max_backoff_s=max(max_backoff_s, 2.0),
        )
        self._fatal: BaseException | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._started = False
        self._failures = 0
        # Touched while the loop turns and no owned partition is stuck (dnc.kafka.progress).
        self.heartbeat = Heartbeat(role, settings.heartbeat_file, settings.heartbeat_interval_s)
        self.progress = ProgressWatch(settings.stall_after_s)
        self._stuck: list[TopicPartition] = []
        self._ready_at = 0.0
        self._assigned_once = False
        self.batches = 0
        self.records = 0
        self.producers_replaced = 0

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.heartbeat.forget()
        self.consumer = kafka.make_consumer(
            self.settings, group_id=self.group_id, max_records=self.max_records
        )
        await self.consumer.start()
        self.producers.consumer = self.consumer
        self.consumer.subscribe(self.topics, listener=_Listener(self))

    async def drain(self) -> None:
        """Stop taking work and let the batch in flight finish (up to the shutdown
        deadline); the clients stay open (``stop`` closes them)."""
        self._stopping.set()
        if not self._started:
            return
        try:
            await asyncio.wait_for(self._lock.acquire(), self.settings.shutdown_deadline_s)
            self._lock.release()
        except TimeoutError:
            log.warning("%s: in-flight batch did not finish within the deadline", self.role)

    async def stop(self) -> None:
        """Stop taking work; the batch in flight finishes (up to the shutdown deadline)."""
        await self.drain()
        if not self._started:
            return
        self._started = False
        self.heartbeat.forget()
        if self.consumer is not None:
            await kafka.close_consumer(self.consumer, CONSUMER_CLOSE_S)
        await self.producers.close_all(PRODUCERS_CLOSE_S)

    async def run(self) -> None:
        """Process batches until ``stop``. Raises what the policy says must stop us."""
        assert self.consumer is not None, "start() first"
        while not self._stopping.is_set():
            if self._fatal is not None:
                break
            self._beat()
            batch = await self.consumer.getmany(
                timeout_ms=self.poll_timeout_ms, max_records=self.max_records
            )
            if not batch:
                await self._idle()
                continue
            async with self._lock:
                owned = {}
                consumer = self.consumer
                assignment = consumer.assignment()
                now = time.monotonic()
                for tp, records in batch.items():
                    if tp not in assignment:
                        continue  # revoked meanwhile: the new owner starts at the commit
                    self.progress.waiting(tp, now)
                    end = consumer.last_stable_offset(tp)
                    if end is not None:
                        self.metrics.lag(tp.topic, tp.partition, end - records[0].offset)
                    if tp not in self.producers or not self.handler.accepts(tp):
                        # Not ready for it yet (its producer is opening, after an
                        # assignment or a failed transaction, or the handler is catching
                        # up): put the records back.
                        if tp in self.producers.failing:
                            self.metrics.fail_closed.enter("kafka_unreachable")
                        consumer.seek(tp, records[0].offset)
                        continue
                    owned[tp] = records
                if owned:
                    await self._process(owned)
        if self._fatal is not None:
            raise self._fatal

    def request_stop(self) -> None:
        self._stopping.set()

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self._ready_at >= READY_REFRESH_S:
            self._ready_at = now
            self.metrics.ready = self._ready()
            self._stuck = stuck(self.progress.stalled(now), self.metrics.fail_closed.reason)
            self.metrics.partitions_stalled.set(len(self._stuck))
        self.heartbeat.beat(now, self._stuck)

    def _ready(self) -> bool:
        """Every owned partition is being processed and nothing is held back (an instance
        that owns no partition, one more than there are partitions, is a ready standby)."""
        assert self.consumer is not None
        if not self._assigned_once or self.metrics.fail_closed.reason is not None:
            return False
        accepts = self.handler.accepts
        return all(tp in self.producers and accepts(tp) for tp in self.consumer.assignment())

    # --- one batch ----------------------------------------------------------------------

    async def _process(self, batch: Records) -> None:
        started = time.perf_counter()
        writers = {tp: BatchWriter(self.producers[tp]) for tp in batch}
        try:
            for tp in batch:
                await self.producers[tp].begin_transaction()
            await self.handler.handle(batch, writers)
        except BaseException as exc:
            policy = Failure.FATAL if isinstance(exc, asyncio.CancelledError) else classify(exc)
            await self._abort(batch, replace_on_failure=policy is not Failure.FATAL)
            if policy is Failure.FATAL:
                raise
            # Nothing was produced or committed: put the records back and fetch them
            # again after a pause. Polling on keeps this member in its group, and the
            # retry re-checks everything (an opt-out may have become effective).
            self._rewind(batch)
            await self._backoff(describe(exc))
            return
        committing = time.perf_counter()
        results = await asyncio.gather(
            *(self._commit(tp, recs, writers[tp]) for tp, recs in batch.items()),
            return_exceptions=True,
        )
        metrics = self.metrics
        metrics.transaction_seconds.observe(time.perf_counter() - committing)
        failed = False
        fatal: BaseException | None = None
        for (tp, records), result in zip(list(batch.items()), results, strict=True):
            if not isinstance(result, BaseException):
                self.batches += 1
                self.records += len(records)
                writer = writers[tp]
                metrics.committed(tp.topic, writer.tally, writer.dead)
                self.progress.done(tp)
                await self.handler.committed(tp, records, result)
                continue
            policy = classify(result)
            if policy is Failure.FATAL:
                fatal = fatal or result
            elif policy is Failure.FENCED:
                log.warning("%s: fenced on %s (%s)", self.role, tp, describe(result))
                await self._replace_producer(tp, delay_s=FENCED_RECHECK_S)
            else:
                failed = True
                metrics.fail_closed.enter("kafka_unreachable")
                log.warning(
                    "%s: transaction on %s failed (%s); replacing its producer and redoing "
                    "the batch from the committed offset",
                    self.role,
                    tp,
                    describe(result),
                )
                await self._replace_producer(tp)
        if fatal is not None:
            raise fatal
        if failed:
            await self._backoff("transaction failed")
        else:
            self._failures = 0
            metrics.fail_closed.clear()
        metrics.batch_seconds.observe(time.perf_counter() - started)

    async def _idle(self) -> None:
        """The handler's idle work (keeping offsets current, noticing a lost index) meets
        the same outages as a batch does, and waits them out the same way: an outage never
        stops a role."""
        try:
            await self.handler.idle()
        except Exception as exc:
            if classify(exc) is not Failure.RETRY:
                raise
            await self._backoff(f"idle work failed: {describe(exc)}")
            return
        self._failures = 0

    def _rewind(self, batch: Records) -> None:
        assert self.consumer is not None
        for tp, records in batch.items():
            if tp in self.producers:
                self.consumer.seek(tp, records[0].offset)

    async def _backoff(self, reason: str) -> None:
        self._failures += 1
        delay = min(self.retry_backoff_s * self._failures, self.max_backoff_s)
        log.warning(
            "%s: %s; retrying in %.1fs (attempt %d)", self.role, reason, delay, self._failures
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _commit(
        self,
        tp: TopicPartition,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        writer: BatchWriter,
    ) -> list[Sent]:
        producer = self.producers[tp]
        async with asyncio.timeout(self.settings.kafka_step_timeout_s):
            metadata = await writer.flush()
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self.group_id)
            await producer.commit_transaction()
        return metadata

    async def _abort(
        self, tps: Mapping[TopicPartition, object], *, replace_on_failure: bool
    ) -> None:
        """Abort each partition's open transaction. One that cannot be aborted (its
        producer's state is unknown) gets a new producer, which aborts it for us."""
        for tp in tps:
            if tp not in self.producers:
                continue
            producer = self.producers[tp]
            try:
                async with asyncio.timeout(self.settings.kafka_step_timeout_s):
                    await producer.abort_transaction()
            except Exception as exc:
                log.warning("%s: abort on %s failed (%s)", self.role, tp, describe(exc))
                if replace_on_failure:
                    await self._replace_producer(tp)

    async def _replace_producer(self, tp: TopicPartition, *, delay_s: float = 0.0) -> None:
        """Drop the partition's producer and open a new one in the background. The handler
        sees the partition revoked now and assigned again when the new producer is ready,
        so that whatever it keeps per partition is rebuilt from what was committed."""
        self.producers.discard(tp)
        self.producers_replaced += 1
        self.metrics.producers_replaced.inc()
        await self.handler.revoked({tp})
        self.producers.open(tp, delay_s=delay_s)

    def _fail(self, exc: BaseException) -> None:
        """A background step failed in a way no retry can fix: stop the role with it."""
        if self._fatal is None:
            self._fatal = exc
        self._stopping.set()

    # --- partitions come and go ---------------------------------------------------------

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        # Producers open in the background (a rebalance callback must not wait on a
        # broker that may be down, and aiokafka only logs what a callback raises); until a
        # partition's producer is ready, run() puts its records back.
        self._assigned_once = True
        for tp in assigned:
            self.producers.open(tp)

    async def _producer_ready(self, tp: TopicPartition) -> None:
        await self.handler.assigned({tp})

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:  # let the batch in flight finish first
            # Producers first: a producer still opening must not tell the handler that a
            # partition being revoked is (re)assigned.
            await self.producers.close(revoked)
            await self.handler.revoked(revoked)
            for tp in revoked:
                self.metrics.forget(tp.topic, tp.partition)
                self.progress.forget(tp)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pipeline: TransactionalPipeline) -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.pipeline._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.pipeline._on_assigned(set(assigned))
