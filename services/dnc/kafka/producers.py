"""The transactional producers of a pipeline: one per owned input partition.

A partition's producer is opened when the partition is assigned and opened *again* when a
transaction step failed because brokers or coordinators were unavailable (its state is
unknown then, and aiokafka's producer may be unusable: its sender task can have ended).
Opening is a supervised background task that retries with back-off until it succeeds,
the partition is revoked, or the error is fatal (then the role stops):

1. ``start()`` runs InitProducerId for the partition's transactional id. That fences
   every older producer with the same id — a zombie former owner or our own discarded
   one — and returns only once the transaction it left open is complete (committed if
   its commit had reached the coordinator, else aborted).
2. Only then is the committed consumer offset final: it is fetched again and the
   consumer is moved there. Whether the failed commit happened or not, the next batch
   starts right after what is committed: nothing is skipped, nothing produced twice.
3. The producer is installed (no await between 2 and 3: ``run()`` puts back records of a
   partition without a producer) and the handler is told the partition is (re)assigned.

A producer that keeps failing to start (``Settings.producer_start_limit_s``) while the
brokers answer a metadata request gives up with ``ProducerCannotStart``: the role stops,
leaves its consumer group and exits non-zero, so another instance takes the partition
(otherwise its records would be put back for ever). Brokers that do not answer are an
outage: it is waited out, however long, and ``dnc_fail_closed`` says
``kafka_unreachable``.

A discarded producer is closed in the background: its in-flight requests can take up to
the request time-out to fail, and nothing it does can commit any more (it is fenced).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dnc.errors import ProducerCannotStart
from dnc.kafka import clients as kafka
from dnc.kafka.failures import Failure, classify, describe
from dnc.metrics import RoleMetrics
from dnc.settings import Settings

log = logging.getLogger(__name__)

# A producer being discarded gets this long to close before its connections are dropped
# (batches it can no longer deliver fail after the request time-out, 30 s).
DISCARD_DEADLINE_S = 30.0
# A revoked partition's producer, closed inside the rebalance.
REVOKE_DEADLINE_S = 10.0
# Before giving a partition up: whether any broker answers a metadata request.
BROKERS_ANSWER_S = 10.0


class PartitionProducers:
    def __init__(
        self,
        settings: Settings,
        role: str,
        *,
        on_ready: Callable[[TopicPartition], Awaitable[None]],
        on_fatal: Callable[[BaseException], None],
        metrics: RoleMetrics,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.role = role
        self.metrics = metrics
        self._on_ready = on_ready
        self._on_fatal = on_fatal
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.ready: dict[TopicPartition, AIOKafkaProducer] = {}
        self._opening: dict[TopicPartition, asyncio.Task[None]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.consumer: AIOKafkaConsumer | None = None
        self.reopened = 0
        # Partitions whose producer failed to open at least once and is being retried
        # (the brokers or a coordinator are unavailable): the fail-closed metric says so.
        self.failing: set[TopicPartition] = set()

    def __contains__(self, tp: TopicPartition) -> bool:
        return tp in self.ready

    def __getitem__(self, tp: TopicPartition) -> AIOKafkaProducer:
        return self.ready[tp]

    def opening(self) -> set[TopicPartition]:
        return set(self._opening)

    def open(self, tp: TopicPartition, *, delay_s: float = 0.0) -> None:
        """Open (or reopen) the partition's producer in the background."""
        if tp in self.ready or tp in self._opening:
            return
        task = asyncio.create_task(self._open(tp, delay_s), name=f"{self.role}-producer-{tp}")
        self._opening[tp] = task
        task.add_done_callback(functools.partial(self._opened, tp))

    def discard(self, tp: TopicPartition) -> None:
        """Stop using the partition's producer; it is closed in the background."""
        producer = self.ready.pop(tp, None)
        if producer is not None:
            self._close_later(producer)

    async def close(self, tps: set[TopicPartition]) -> None:
        """Revoked: cancel opening, close producers (awaited, so a new owner's fencing
        meets a producer that has stopped)."""
        tasks = [t for tp in tps if (t := self._opening.pop(tp, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for tp in tps:
            self._set_failing(tp, False)
            producer = self.ready.pop(tp, None)
            if producer is not None:
                await _close(producer, REVOKE_DEADLINE_S)

    async def close_all(self, deadline_s: float) -> None:
        """Shutting down: close every producer, those being discarded included, within
        ``deadline_s`` (after which they are closed by force: nothing of theirs is
        uncommitted that a new owner would not abort)."""
        opening = list(self._opening.values())
        self._opening.clear()
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        producers, self.ready = list(self.ready.values()), {}
        closing = [asyncio.create_task(_close(p, deadline_s)) for p in producers]
        closing += self._closing
        if closing:
            _done, late = await asyncio.wait(closing, timeout=deadline_s + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # --- inside -----------------------------------------------------------------------

    async def _open(self, tp: TopicPartition, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        attempt = 0
        failing_since: float | None = None
        while True:
            attempt += 1
            producer = kafka.make_producer(
                self.settings, self.settings.transactional_id(self.role, tp.topic, tp.partition)
            )
            try:
                await producer.start()
                assert self.consumer is not None
                committed = await self.consumer.committed(tp)
            except asyncio.CancelledError:
                self._set_failing(tp, False)
                self._close_later(producer)
                raise
            except Exception as exc:
                self._close_later(producer)
                if classify(exc) is Failure.FATAL:
                    raise
                self._set_failing(tp, True)
                self.metrics.producer_start_failures.inc()
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.settings.producer_start_limit_s:
                    await self._give_up_unless_outage(tp, attempt, now - failing_since, exc)
                delay = min(self.backoff_s * 2 ** min(attempt - 1, 8), self.max_backoff_s)
                log.warning(
                    "%s: producer for %s did not start (attempt %d: %s); retrying in %.1fs",
                    self.role,
                    tp,
                    attempt,
                    describe(exc),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._set_failing(tp, False)
            if self.consumer is None or tp not in self.consumer.assignment():
                self._close_later(producer)  # revoked meanwhile
                return
            if committed is not None:
                self.consumer.seek(tp, committed)
            self.ready[tp] = producer
            if attempt > 1:
                log.info("%s: producer for %s started after %d attempts", self.role, tp, attempt)
            await self._on_ready(tp)
            return

    async def _give_up_unless_outage(
        self, tp: TopicPartition, attempt: int, failing_s: float, exc: Exception
    ) -> None:
        """Raise ``ProducerCannotStart`` if the brokers answer: the failure is this
        partition's, and another instance may start its producer. Return if they do not
        (an outage: every instance would fail alike, so keep waiting)."""
        assert self.consumer is not None
        try:
            async with asyncio.timeout(BROKERS_ANSWER_S):
                await self.consumer.topics()
        except Exception as probe:
            log.warning(
                "%s: producer for %s has not started for %.0fs, and the brokers do not "
                "answer either (%s): waiting out the outage",
                self.role,
                tp,
                failing_s,
                describe(probe),
            )
            return
        raise ProducerCannotStart(
            f"the producer for {tp.topic}:{tp.partition} has not started for "
            f"{failing_s:.0f}s ({attempt} attempts, DNC_PRODUCER_START_LIMIT_S="
            f"{self.settings.producer_start_limit_s:g}) although the brokers answer; "
            "leaving the consumer group so that another instance takes the partition"
        ) from exc

    def _set_failing(self, tp: TopicPartition, failing: bool) -> None:
        if failing:
            self.failing.add(tp)
        else:
            self.failing.discard(tp)
        self.metrics.producers_failing.set(len(self.failing))

    def _opened(self, tp: TopicPartition, task: asyncio.Task[None]) -> None:
        if self._opening.get(tp) is task:
            del self._opening[tp]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: producer for %s cannot start: %s", self.role, tp, describe(exc))
            self._on_fatal(exc)

    def _close_later(self, producer: AIOKafkaProducer) -> None:
        task = asyncio.create_task(_close(producer, DISCARD_DEADLINE_S))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(producer: AIOKafkaProducer, deadline_s: float) -> None:
    """Close a producer, by force if it does not close within the deadline (batches it
    can no longer deliver would otherwise hold it open until they expire)."""
    try:
        await asyncio.wait_for(producer.stop(), deadline_s)
        return
    except Exception as exc:  # the producer is being dropped; a failure here changes nothing
        log.warning("a producer did not close cleanly (%r); dropping its connections", exc)
    sender_task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.client.close(), 5)
