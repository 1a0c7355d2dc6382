"""Exactly-once consume → transform → produce, the loop under ingest, list writer and gate.

Per batch from ``getmany``: a ``Handler`` turns the records into output records (one
``BatchWriter`` per input partition), then each input partition commits its outputs and
its consumer offset in one Kafka transaction of its own producer. A crash anywhere before
the commit leaves nothing visible to ``read_committed`` readers and the same records are
processed again; after it, nothing is processed twice.

Each input partition has its own transactional producer whose id is derived from the
partition: aiokafka's transactional offset commit predates consumer-group fencing
(KIP-447), so it is the new owner re-using the id that fences a zombie former owner.

Failure policy comes from the error class (``dnc.errors``): retriable → abort, rewind the
consumer, wait, fetch and redo the same records (the gate re-checks them: an opt-out may
have arrived meanwhile);
``ProducerFenced`` → this instance lost the partition, drop its records; anything else →
abort and stop the component, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import ConsumerRecord

from dnc.errors import DncError
from dnc.kafka import clients as kafka
from dnc.kafka.clients import BatchWriter, Sent
from dnc.settings import Settings

log = logging.getLogger(__name__)

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
    ) -> None:
        self.settings = settings
        self.role = role
        self.topics = list(topics)
        self.handler = handler
        self.group_id = settings.group_id(role)
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.retry_backoff_s = retry_backoff_s
        self.max_backoff_s = max_backoff_s
        self.consumer: AIOKafkaConsumer | None = None
        self.producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._started = False
        self._failures = 0
        # The loop keeps turning while Kafka or Redis are down (poll timeouts, put-back
        # records, back-off), so only a stuck loop lets the heartbeat go stale.
        self._heartbeat = Path(settings.heartbeat_file) if settings.heartbeat_file else None
        self._beat_at = 0.0
        self.batches = 0
        self.records = 0

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._forget_heartbeat()
        self.consumer = kafka.make_consumer(
            self.settings, group_id=self.group_id, max_records=self.max_records
        )
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_Listener(self))

    async def stop(self) -> None:
        """Stop taking work; the batch in flight finishes (up to the shutdown deadline)."""
        self._stopping.set()
        if not self._started:
            return
        self._started = False
        self._forget_heartbeat()
        try:
            await asyncio.wait_for(self._lock.acquire(), self.settings.shutdown_deadline_s)
            self._lock.release()
        except TimeoutError:
            log.warning("%s: in-flight batch did not finish within the deadline", self.role)
        if self.consumer is not None:
            await self.consumer.stop()
        await self._close_producers(set(self.producers))

    async def run(self) -> None:
        """Process batches until ``stop``. Raises what the policy says must stop us."""
        assert self.consumer is not None, "start() first"
        while not self._stopping.is_set():
            self._beat()
            batch = await self.consumer.getmany(
                timeout_ms=self.poll_timeout_ms, max_records=self.max_records
            )
            if not batch:
                await self.handler.idle()
                continue
            async with self._lock:
                owned = {}
                assignment = self.consumer.assignment()
                for tp, records in batch.items():
                    if tp not in assignment:
                        continue  # revoked meanwhile: the new owner starts at the commit
                    if tp not in self.producers or not self.handler.accepts(tp):
                        # Not ready for it yet (aiokafka fetches while the assignment
                        # callback is still starting producers): put the records back.
                        self.consumer.seek(tp, records[0].offset)
                        continue
                    owned[tp] = records
                if owned:
                    await self._process(owned)

    def request_stop(self) -> None:
        self._stopping.set()

    def _beat(self) -> None:
        if self._heartbeat is None:
            return
        now = time.monotonic()
        if now - self._beat_at < self.settings.heartbeat_interval_s:
            return
        self._beat_at = now
        try:
            self._heartbeat.touch()
        except OSError as exc:
            log.warning("%s: cannot touch heartbeat file %s: %s", self.role, self._heartbeat, exc)

    def _forget_heartbeat(self) -> None:
        # A file left by a previous container must not pass the next start-up probe.
        if self._heartbeat is not None:
            self._heartbeat.unlink(missing_ok=True)

    # --- one batch ----------------------------------------------------------------------

    async def _process(self, batch: Records) -> None:
        writers = {tp: BatchWriter(self.producers[tp]) for tp in batch}
        for tp in batch:
            await self.producers[tp].begin_transaction()
        try:
            await self.handler.handle(batch, writers)
        except BaseException as exc:
            await self._abort(batch)
            if isinstance(exc, DncError) and exc.retriable:
                # Nothing was produced or committed: put the records back and fetch them
                # again after a pause. Polling on keeps this member in its group, and the
                # retry re-checks everything (an opt-out may have become effective).
                self._rewind(batch)
                await self._backoff(str(exc))
                return
            raise
        results = await asyncio.gather(
            *(self._commit(tp, recs, writers[tp]) for tp, recs in batch.items()),
            return_exceptions=True,
        )
        failed = False
        for (tp, records), result in zip(list(batch.items()), results, strict=True):
            if isinstance(result, ProducerFenced):
                log.warning("%s: fenced on %s; another instance owns it now", self.role, tp)
                await self._close_producers({tp})
            elif isinstance(result, KafkaError) and result.retriable:
                self._rewind({tp: records})
                failed = True
                log.warning("%s: commit of %s failed (%r); redoing it", self.role, tp, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                self.batches += 1
                self.records += len(records)
                await self.handler.committed(tp, records, result)
        if failed:
            await self._backoff("commit failed")
        else:
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
        try:
            metadata = await writer.flush()
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, self.group_id)
            await producer.commit_transaction()
        except BaseException:
            await _quietly(producer.abort_transaction)
            raise
        return metadata

    async def _abort(self, tps: Mapping[TopicPartition, object]) -> None:
        for tp in tps:
            producer = self.producers.get(tp)
            if producer is not None:
                await _quietly(producer.abort_transaction)

    # --- partitions come and go ---------------------------------------------------------

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        async def start(tp: TopicPartition) -> None:
            producer = kafka.make_producer(
                self.settings, self.settings.transactional_id(self.role, tp.topic, tp.partition)
            )
            # start() runs InitProducerId: it aborts whatever a previous owner left open,
            # and returns only once the previous owner's last transaction is complete.
            await producer.start()
            # Only now are that owner's offsets final. Its EndTxn returned before the
            # commit markers reached the offsets topic, so the position the consumer
            # fetched on assignment may predate its last commit: records it already
            # produced would be processed (and sent) again. Fetch the commit again.
            assert self.consumer is not None
            committed = await self.consumer.committed(tp)
            if committed is not None:
                self.consumer.seek(tp, committed)
            # Ready only now (run() puts back what arrives before): no await in between.
            self.producers[tp] = producer

        await asyncio.gather(*(start(tp) for tp in assigned if tp not in self.producers))
        await self.handler.assigned(assigned)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:  # let the batch in flight finish first
            await self.handler.revoked(revoked)
            await self._close_producers(revoked)

    async def _close_producers(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            producer = self.producers.pop(tp, None)
            if producer is not None:
                await _quietly(producer.stop)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, pipeline: TransactionalPipeline) -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.pipeline._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.pipeline._on_assigned(set(assigned))


async def _quietly(fn: Callable[[], Awaitable[Any]]) -> None:
    """Best-effort cleanup after a failure that is already being raised or handled."""
    try:
        await fn()
    except Exception as exc:  # the original error is what matters; this one is logged
        log.debug("cleanup step failed: %r", exc)
