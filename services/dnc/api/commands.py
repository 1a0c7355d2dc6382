"""Submit list commands from the API and wait until the gate sees their effect.

Commands go to the partition of ``dnc.commands`` that owns their contact; the list writer
records in Redis, with the data, the next command offset it has processed per partition
(``cmd:<p>``). A write is *effective at the gate* once every partition it touched has
passed the offsets of its commands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer

from dnc.domain.entries import Command
from dnc.index import Index
from dnc.kafka import clients as kafka
from dnc.kafka.batches import BatchWriter
from dnc.settings import Settings

Positions = dict[int, int]  # partition → highest offset written


class CommandWriter:
    def __init__(self, settings: Settings, index: Index) -> None:
        self.settings = settings
        self.index = index
        self.partitions = 0
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is not None:
            return
        counts = await kafka.topic_partitions(self.settings, self.settings.topics.commands)
        self.partitions = counts[self.settings.topics.commands]
        self._producer = kafka.make_producer(self.settings)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def partition_of(self, account: str, contact: str) -> int:
        return self.index.partition(account, contact, self.partitions)

    async def submit(self, commands: Iterable[Command]) -> Positions:
        """Produce commands (each one's ops share a partition); wait for the broker's ack."""
        assert self._producer is not None, "start() first"
        out = BatchWriter(self._producer)
        for cmd in commands:
            k = cmd.ops[0].key
            out.append(
                self.settings.topics.commands,
                self.partition_of(k.account, k.contact),
                self.index.field(k.account, k.contact),
                cmd.to_json(),
            )
        positions: Positions = {}
        for sent in await out.flush():
            positions[sent.partition] = max(positions.get(sent.partition, -1), sent.last_offset)
        return positions

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        """Produce one record to any topic (acks=all) and wait for the broker's ack."""
        assert self._producer is not None, "start() first"
        await (await self._producer.send(topic, value, key=key, partition=partition))

    # Running out of time is an answer (False → 202), not an error: hence no asyncio.timeout.
    async def wait_effective(self, positions: Positions, timeout: float) -> bool:  # noqa: ASYNC109
        """True once the list writer has processed every command up to `positions`."""
        deadline = time.monotonic() + timeout
        while True:
            meta = await self.index.meta()
            if all(meta.commands.get(p, 0) > offset for p, offset in positions.items()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)

    async def processed(self, positions: Positions) -> bool:
        meta = await self.index.meta()
        return all(meta.commands.get(p, 0) > offset for p, offset in positions.items())


def merge(a: Positions, b: Positions) -> Positions:
    out = dict(a)
    for p, o in b.items():
        out[p] = max(out.get(p, -1), o)
    return out


def parse_positions(text: str) -> Positions:
    """Parse the ``p:o,p:o`` form used in follow-up URLs."""
    out: Positions = {}
    for part in filter(None, text.split(",")):
        p, _, o = part.partition(":")
        out[int(p)] = int(o)
    return out


def format_positions(positions: Positions) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


__all__: Sequence[str] = [
    "CommandWriter",
    "Positions",
    "format_positions",
    "merge",
    "parse_positions",
]
