"""Batched produce: records appended into per-partition batches, sent with one
``send_batch`` each; what the broker acknowledged (``Sent``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from dnc.errors import ConfigurationError

Headers = Sequence[tuple[str, bytes]]
# (key, value, headers): headers as a list, which is what the C batch builder takes.
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


@dataclass(frozen=True, slots=True)
class Sent:
    """A batch the broker acknowledged: records ``base_offset`` … ``base_offset+count-1``."""

    topic: str
    partition: int
    base_offset: int
    count: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.count - 1


class BatchWriter:
    """Appends records into per-partition batches and sends them with ``send_batch``.

    ``producer.send()`` costs a coroutine and a future per record; appending to a batch
    builder is a single C call. ``append`` is synchronous; ``flush`` sends everything and
    waits for the broker's acknowledgement of every batch.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[Any, str, int]] = []
        # What became of the batch's input records (outcome → count) and its dead letters
        # (error kind → count): counted in metrics once the transaction commits.
        self.tally: dict[str, int] = {}
        self.dead: dict[str, int] = {}

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
    ) -> None:
        # The C batch builder insists on a list.
        if type(headers) is not list:
            headers = list(headers)
        slot = (topic, partition)
        builder = self._open.get(slot)
        if builder is None:
            builder = self._open[slot] = self._producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            self._full.append((builder, topic, partition))
            builder = self._open[slot] = self._producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ConfigurationError(
                    f"a record for {topic} is larger than the producer batch size"
                )

    def extend(self, topic: str, partition: int, records: Iterable[Record]) -> None:
        """``append`` of many records to one partition, in order: one loop around the
        builder's append (a list writer batch is a million records)."""
        slot = (topic, partition)
        builder = self._open.get(slot)
        append = None if builder is None else builder.append
        for key, value, headers in records:
            if append is None:  # no empty batch: flush would send it
                builder = self._open[slot] = self._producer.create_batch()
                append = builder.append
            if append(key=key, value=value, timestamp=None, headers=headers) is None:
                self._full.append((builder, topic, partition))
                builder = self._open[slot] = self._producer.create_batch()
                append = builder.append
                if append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ConfigurationError(
                        f"a record for {topic} is larger than the producer batch size"
                    )

    async def flush(self) -> list[Sent]:
        """Send all batches and wait until the broker has them (or raise)."""
        pending = self._full
        pending.extend((b, t, p) for (t, p), b in self._open.items())
        self._full, self._open = [], {}
        futures: list[tuple[asyncio.Future[Any], int]] = []
        sent = []
        try:
            for builder, topic, partition in pending:
                count = builder.record_count()
                futures.append(
                    (await self._producer.send_batch(builder, topic, partition=partition), count)
                )
            for future, count in futures:
                md = await future
                sent.append(Sent(md.topic, md.partition, md.offset, count))
        except BaseException:
            # The transaction fails (or its step timed out, a broker hanging): batches
            # still in flight fail later, fenced or timed out, with no one waiting. Their
            # outcome is taken here, or asyncio logs each as an unhandled error.
            for future, _count in futures:
                future.add_done_callback(_outcome_taken)
            raise
        return sent

    def __bool__(self) -> bool:
        return bool(self._open or self._full)


def _outcome_taken(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
