"""The API's views follow topics with a task reading from a consumer of their own (the
SQLite list view, the PostgreSQL view's offsets, the review board). Stopping one: the task
first, since it reads from the consumer, then the consumer."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer


async def stop_tailing(task: asyncio.Task[None] | None, consumer: AIOKafkaConsumer | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if consumer is not None:
        await consumer.stop()
