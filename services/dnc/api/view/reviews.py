"""The review queue as the API sees it: every review's latest record from ``dnc.reviews``
(compacted, keyed by review id), held in memory.

Reviews are few (only inbound messages that may be opt-outs and are not exact keywords),
so each API instance reads the whole topic at start and follows it; no consumer group,
nothing stored locally.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from dnc.api.view.tailing import stop_tailing
from dnc.domain.events import ReviewItem
from dnc.domain.timestamps import parse_ts
from dnc.kafka import clients as kafka
from dnc.settings import Settings

log = logging.getLogger(__name__)

RETRY_S = 1.0


class ReviewBoard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics.reviews
        self.partitions = 0
        self.items: dict[str, ReviewItem] = {}
        self.skipped = 0  # records that are not a review (written by someone else)
        self.error: str | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        if self._task is not None:
            return
        self.partitions = (await kafka.topic_partitions(self.settings, self.topic))[self.topic]
        consumer = kafka.make_consumer(self.settings, group_id=None)
        await consumer.start()
        self._consumer = consumer
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(), name="review-board")

    async def stop(self) -> None:
        task, self._task = self._task, None
        consumer, self._consumer = self._consumer, None
        await stop_tailing(task, consumer)

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=200)
                if not batch:
                    continue
                for records in batch.values():
                    for r in records:
                        self._apply(r.key, r.value)
                async with self._changed:
                    self._changed.notify_all()
                self.error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the queue alive; readyz and logs show it
                self.error = f"{type(exc).__name__}: {exc}"
                log.exception("reviews: reading %s failed; retrying", self.topic)
                await asyncio.sleep(RETRY_S)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            self.skipped += 1
            return
        if value is None:  # a tombstone: the review is gone
            self.items.pop(key.decode(errors="replace"), None)
            return
        try:
            item = ReviewItem.model_validate_json(value)
        except ValidationError:
            self.skipped += 1
            log.warning("reviews: a record of %s is not a review; skipped", self.topic)
            return
        self.items[item.review_id] = item

    def get(self, review_id: str) -> ReviewItem | None:
        return self.items.get(review_id)

    def select(
        self,
        accounts: Iterable[str],
        *,
        status: str | None = "open",
        verdict: str | None = None,
        channel: str | None = None,
    ) -> list[ReviewItem]:
        """Oldest first: the ten-business-day clock runs from the message."""
        wanted = set(accounts)
        found = [
            item
            for item in self.items.values()
            if item.account in wanted
            and (status is None or item.status == status)
            and (verdict is None or item.verdict == verdict)
            and (channel is None or item.channel.value == channel)
        ]
        return sorted(found, key=lambda i: (i.created_at, i.review_id))

    def select_all_open(self) -> list[ReviewItem]:
        return [i for i in self.items.values() if i.status == "open"]

    def oldest_open_age_s(self, accounts: Iterable[str] | None = None) -> float | None:
        oldest = self.oldest_open_ms(accounts)
        return None if oldest is None else max(0.0, time.time() - oldest / 1000)

    def oldest_open_ms(self, accounts: Iterable[str] | None = None) -> int | None:
        """When the oldest unreviewed item came in (epoch ms), or None when none is open."""
        wanted = None if accounts is None else set(accounts)
        times = [
            parse_ts(i.created_at, "created_at")
            for i in self.items.values()
            if i.status == "open" and (wanted is None or i.account in wanted)
        ]
        return min(times, default=None)

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Read-your-writes for decisions: until ``done()`` holds or the time is up."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(done), timeout)
            except TimeoutError:
                return done()
        return True
