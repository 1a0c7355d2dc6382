"""Loading data fast: a bulk Kafka producer (changelog records, outbound messages) and a
direct Redis loader that runs the index's own ``apply.lua`` in big batches (for the
10M-entry point, where producing 10M changes through Kafka would dominate the run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from benchmarks.common import entry_added_at, entry_contact
from dnc.domain.entries import Source
from dnc.index import make_index
from dnc.index.layout import CHANNEL_CODE, SEP, SOURCE_CODE
from dnc.settings import Settings

_BATCH_BYTES = 1024 * 1024
_IN_FLIGHT = 32


async def bulk_produce(
    settings: Settings, topic: str, records: Iterable[tuple[int, bytes | None, bytes | None]]
) -> int:
    """Produce (partition, key, value) records as fast as one process can: records are
    appended to per-partition batch builders (one C call each) and whole batches sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=_BATCH_BYTES,
        linger_ms=5,
        max_request_size=4 * _BATCH_BYTES,
    )
    await producer.start()
    builders: dict[int, Any] = {}
    pending: list[Any] = []
    count = 0

    async def send(partition: int, builder: Any) -> None:
        pending.append(await producer.send_batch(builder, topic, partition=partition))
        if len(pending) >= _IN_FLIGHT:
            await pending.pop(0)

    try:
        for partition, key, value in records:
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                await send(partition, builder)
                builder = builders[partition] = producer.create_batch()
                builder.append(key=key, value=value, timestamp=None)
            count += 1
        for partition, builder in builders.items():
            if builder.record_count():
                await send(partition, builder)
        for future in pending:
            await future
    finally:
        await producer.stop()
    return count


async def load_index_directly(
    settings: Settings, n: int, chunk: int = 20_000, start: int = 0
) -> dict[str, float]:
    """Write entries start..n-1 into an index with ``apply.lua``, the script the list
    writer uses, and mark every changelog partition as applied up to offset 0 (the
    changelog of this list is empty). The additions stream is left out: a gate that
    starts later builds its filter from the lookup sets. A single Redis only."""
    index = make_index(settings)
    await index.start()
    parts = settings.topic_layout.list_partitions
    started = time.perf_counter()
    try:
        epoch = await index.init(parts)
        code = SOURCE_CODE[Source.IMPORT]
        in_flight: list[asyncio.Task[Any]] = []
        expected: str = ""
        keys = [index.meta_key, index.adds_key, f"{index.prefix}:x:0"]
        for lo in range(start, n, chunk):
            # apply.lua's arguments (see its header): no new-contacts blob, no counters, no
            # expiry changes, a single Redis.
            args: list[Any] = [index.prefix, epoch, 0, expected, 0, "", int(time.time() * 1000)]
            args += [b"", "", b"", ""]
            for i in range(lo, min(lo + chunk, n)):
                account, contact, channel, sender = entry_contact(i)
                bucket, member, field = index.locate(account, contact)
                # pack_entries() of the one entry, without an Entry object per contact.
                added = entry_added_at(i)
                value = f"{CHANNEL_CODE[channel]}{SEP}{sender or ''}{SEP}{code}{SEP}{added}{SEP}"
                args += (bucket, member, field, value.encode())
            if not expected:
                # The first call creates chg:0; the rest compare against it.
                await index._call("apply", keys, args)
                expected = "0"
                continue
            in_flight.append(asyncio.create_task(index._call("apply", keys, args)))
            await asyncio.sleep(0)
            if len(in_flight) >= 2:
                await in_flight.pop(0)
        for task in in_flight:
            await task
        for p in range(1, parts):
            await index.apply(
                epoch=epoch,
                partition=p,
                expected=None,
                new_offset=0,
                new_command_offset=None,
                updates=[],
                now=0,
            )
    finally:
        await index.stop()
    return {"entries": float(n - start), "seconds": time.perf_counter() - started}
