"""Entries that expire leave the list (contract addition).

The index keeps, per list partition, the changelog keys of entries that expire, by time
(``<prefix>:x:<p>``, written in the same Lua scripts as the data, so it survives restarts
and is rebuilt with the index). The list writer that owns a partition sweeps it: expired
keys go back to the partition as a command of ``remove_if_expired`` operations, so they
leave through the same exactly-once path as any removal (changelog, history "expire",
index). The gate does not wait for the sweep: an expired entry no longer blocks.

Failures never end the sweep silently: Redis or Kafka unavailable (``classify``: retry)
postpones the partition to the next sweep, and a producer whose send failed is replaced
(aiokafka's producer can be unusable after a failed delivery); anything else ends ``run``
with the error, which stops the list writer loudly (``Role.spawn``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer

from dnc.domain.changelog import decode_key
from dnc.domain.entries import Command, EntryKey, Op
from dnc.domain.timestamps import now_ms
from dnc.errors import DncError
from dnc.index import Index
from dnc.kafka import clients as kafka
from dnc.kafka.failures import Failure, classify, describe
from dnc.settings import Settings

log = logging.getLogger(__name__)

PRODUCER_CLOSE_S = 5.0


class ExpirySweeper:
    """Sweeps the partitions the list writer owns; its loop (``run``) is one of the list
    writer's supervised tasks, its producer opened by ``start`` and closed by ``stop``."""

    def __init__(
        self, settings: Settings, index: Index, partitions: Callable[[], Iterable[int]]
    ) -> None:
        self.settings = settings
        self.index = index
        self.partitions = partitions  # the partitions this instance owns and has caught up
        self._producer: AIOKafkaProducer | None = None
        self._started = False
        self.postponed = 0  # sweeps of a partition postponed by a failure

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._open()

    async def stop(self) -> None:
        self._started = False
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry.sweep_interval_s)
            for p in list(self.partitions()):
                try:
                    await self.sweep(p)
                except Exception as exc:
                    if classify(exc) is not Failure.RETRY:
                        raise  # stops the list writer, loudly
                    # Redis or Kafka away for now: the next sweep finds the same entries.
                    self.postponed += 1
                    log.warning("expiry: sweep of partition %d postponed: %s", p, describe(exc))
                    if not isinstance(exc, DncError):
                        await self._discard_producer()

    async def _open(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = kafka.make_producer(self.settings)
            await producer.start()
            self._producer = producer
        return self._producer

    async def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), PRODUCER_CLOSE_S)
            except Exception as exc:  # it is being dropped: nothing it held is lost
                log.warning("expiry: a failed producer did not close cleanly: %r", exc)

    async def sweep(self, p: int) -> int:
        """Send partition p's expired entries for removal; return how many. Sweeping again
        before the command is processed is harmless: removing what is gone changes nothing."""
        now = now_ms()
        keys = await self.index.expiring(p, now)
        if not keys or not self._started:
            return 0
        producer = await self._open()  # again, after a send failed
        ops = []
        for raw in keys:
            account, contact, channel, sender = decode_key(raw)
            ops.append(
                Op("remove_if_expired", EntryKey(str(account), str(contact), channel, sender))
            )
        command = Command(ops, now, {"kind": "expiry"}, None)
        await producer.send_and_wait(
            self.settings.topics.commands, command.to_json(), key=b"expiry", partition=p
        )
        log.info("expiry: %d expired entries of partition %d sent for removal", len(ops), p)
        return len(ops)
