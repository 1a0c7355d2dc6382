"""The list writer's catch-up: make Redis hold exactly what changelog partition ``p``
says, from the offset Redis has applied (nothing: an empty index, rebuilt from offset 0)
to the changelog's end, each batch merged by one ``replay.lua`` call
(``dnc.index.replay``).

The partition's commands wait meanwhile (``ListWriter._schedule_catch_up``); a restart of
the replay on a new index epoch happens here, failures the role retries are raised.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.domain.timestamps import now_ms
from dnc.errors import IndexDiverged, IndexUnavailable
from dnc.index import Index
from dnc.index.replay import ReplayBuilder
from dnc.kafka import clients as kafka
from dnc.settings import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

CATCH_UP_BATCH = 5000


class Retrying(Protocol):
    def __call__(self, fn: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


class ChangelogReplay:
    """Replays changelog partitions into the index for one list writer.

    ``retrying`` runs an index call until it succeeds or fails for good (the role's policy);
    ``set_epoch`` tells the role the index epoch as soon as the replay has read (or made)
    it, since every later write of the role must name it."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        parts: Callable[[], int],
        retrying: Retrying,
        set_epoch: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.index = index
        self._parts = parts
        self._retrying = retrying
        self._set_epoch = set_epoch
        self._replay = ReplayBuilder(index)

    async def run(
        self,
        p: int,
        progressed: Callable[[int], None],
        finish: Callable[[int, int, str], Awaitable[None]],
    ) -> tuple[int, int]:
        """Replay partition ``p`` to its end; ``(offset reached, changes applied)``.

        ``progressed(remaining)`` after every batch; ``finish(p, offset, epoch)`` once at
        the end, inside the same restart-on-new-epoch loop as the batches."""
        tp = TopicPartition(self.settings.topics.changes, p)
        consumer = kafka.make_consumer(self.settings, group_id=None, max_records=CATCH_UP_BATCH)
        await consumer.start()
        try:
            consumer.assign([tp])
            applied = 0
            while True:
                meta = await self._retrying(self.index.meta)
                if meta.epoch is None:  # empty index: initialise, then rebuild everything
                    init = functools.partial(self.index.init, self._parts())
                    self._set_epoch(await self._retrying(init))
                    continue
                epoch = meta.epoch
                self._set_epoch(epoch)
                offset = meta.changes.get(p)
                end = (await consumer.end_offsets([tp]))[tp]
                consumer.seek(tp, offset or 0)
                try:
                    while (position := await consumer.position(tp)) < end or offset is None:
                        batch = await consumer.getmany(
                            tp, timeout_ms=200, max_records=CATCH_UP_BATCH
                        )
                        records = batch.get(tp, [])
                        new_position = await consumer.position(tp)
                        if not records and new_position == position and position < end:
                            continue
                        await self._apply(epoch, p, records, offset, new_position)
                        applied += len(records)
                        offset = new_position
                        progressed(max(end - new_position, 0))
                    assert offset is not None
                    await finish(p, offset, epoch)
                except (IndexDiverged, IndexUnavailable) as exc:
                    # Another partition's catch-up may have started a new epoch (a node that
                    # gained slots, an emptied Redis) after this one read it: read the meta
                    # again rather than retry a write that can never match.
                    log.warning("listwriter: catch-up of %d restarts: %s", p, exc)
                    await asyncio.sleep(0.2)
                    continue
                return offset, applied
        finally:
            await consumer.stop()

    async def _apply(
        self,
        epoch: str,
        p: int,
        records: Sequence[ConsumerRecord[bytes, bytes]],
        expected: int | None,
        new_offset: int,
    ) -> None:
        """Replay changelog records into Redis with chg:p = new_offset."""
        replay, counters, expiry = self._replay.build(records)
        await self.index.replay(
            epoch=epoch,
            partition=p,
            expected=expected,
            new_offset=new_offset,
            records=replay,
            now=now_ms(),
            counters=counters,
            expiry=expiry,
        )
