"""The API's views follow topics with a task reading from a consumer of their own (the
SQLite list view, the PostgreSQL view's offsets, the review board). Stopping one: the task
first, since it reads from the consumer, then the consumer.

The views that write the list (the SQLite list view, the PostgreSQL view writer) read the
changelog before its history while far behind (``HistoryFollows``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


async def stop_tailing(task: asyncio.Task[None] | None, consumer: AIOKafkaConsumer | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if consumer is not None:
        await consumer.stop()


# While a view's changelog partitions are more than this many records behind (an import, a
# rebuild), its history partitions wait; they are read again once the changelog is within
# HISTORY_RESUME of its end. The same work in another order: the list a user looks at
# after an import is complete sooner (an imported entry's history record costs a view
# about as much as the entry). Below the threshold both logs are read together.
HISTORY_YIELD = 25_000
HISTORY_RESUME = 5_000
HISTORY_ENDS_S = 1.0  # how often the ends of paused history partitions are asked for


def behind(
    consumer: AIOKafkaConsumer, held: Mapping[TopicPartition, int], ends: Mapping[int, int]
) -> int:
    """Records of these partitions (→ the next offset the view holds) behind the last stable
    offsets seen in fetches, or in ``ends`` where those are further on (asked for while the
    partitions were paused: no fetch says where they end then)."""
    total = 0
    for tp, offset in held.items():
        lso = consumer.last_stable_offset(tp)
        if lso is None or lso < 0:
            lso = consumer.highwater(tp)
        lso = max(lso if lso is not None else -1, ends.get(tp.partition, -1))
        if lso >= 0:
            total += max(0, lso - offset)
    return total


class HistoryFollows:
    """Pauses a view's history partitions while its changelog partitions are far behind
    (``HISTORY_YIELD``), resumes them near the end (``HISTORY_RESUME``)."""

    def __init__(self, *, ask_ends: bool) -> None:
        self.paused = False
        # The history partitions' ends, asked for while paused, for a view whose lag
        # metric counts them (``behind``); a view that does not use them asks nothing.
        self._ask_ends = ask_ends
        self.ends: dict[int, int] = {}
        self._ends_at = 0.0

    async def update(
        self,
        consumer: AIOKafkaConsumer,
        changes: Mapping[TopicPartition, int],
        history: Sequence[TopicPartition],
    ) -> None:
        """``changes``: the changelog partitions read → the next offset held; ``history``:
        the history partitions this may pause and resume."""
        late = behind(consumer, changes, {})
        if not self.paused and late > HISTORY_YIELD:
            self.paused, self._ends_at = True, 0.0
            log.info("view: %d records behind on the changelog: the history follows", late)
        elif self.paused and late < HISTORY_RESUME:
            consumer.resume(*history)
            self.paused = False
        if self.paused:
            # Every time: a partition given to this consumer meanwhile comes unpaused.
            consumer.pause(*history)
        now = time.monotonic()
        if not (self.paused and self._ask_ends and history) or now - self._ends_at < HISTORY_ENDS_S:
            return
        self._ends_at = now
        try:
            got = await consumer.end_offsets(list(history))
        except KafkaError as exc:  # only the lag's figure: asked again in a second
            log.warning("view: the history's end offsets could not be read: %s", exc)
            return
        self.ends = {tp.partition: o for tp, o in got.items()}
