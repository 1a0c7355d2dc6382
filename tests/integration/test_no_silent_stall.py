"""Kafka failing under the list writer's own Kafka calls (the changelog's end, read by a
catch-up and while idle) is waited out: the role keeps running and opt-outs still become
effective. (Before, a ``KafkaError`` there stopped the role: an outage restarted pods.)"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaTimeoutError

from dnc.index import make_index
from dnc.settings import Settings
from tests.kit import eventually, inbound, produce, running

pytestmark = pytest.mark.integration


class FlakyEndOffsets:
    """``end_offsets`` of every consumer in this process fails while ``failing`` is set
    (or for the next ``budget`` calls), as during a broker outage."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, budget: int = 0) -> None:
        self.budget, self.failing, self.failed = budget, False, 0
        real = AIOKafkaConsumer.end_offsets
        flaky = self

        async def end_offsets(consumer: AIOKafkaConsumer, partitions: Any) -> Any:
            if flaky.failing or flaky.budget > 0:
                flaky.budget = max(flaky.budget - 1, 0)
                flaky.failed += 1
                raise KafkaTimeoutError("injected: brokers unavailable")
            return await real(consumer, partitions)

        monkeypatch.setattr(AIOKafkaConsumer, "end_offsets", end_offsets)


async def opted_out(settings: Settings, number: str) -> None:
    async with make_index(settings) as index:

        async def effective() -> bool:
            return bool(await index.entries_of("acme", number))

        await eventually(effective, timeout=30, what=f"the STOP of {number} to be effective")


async def test_catch_up_waits_out_a_failing_changelog_end(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyEndOffsets(monkeypatch, budget=4)  # more than one failure per catch-up
    async with running(settings, "ingest", "listwriter") as roles:
        await produce(settings, settings.topics.inbound_messages, inbound("mo-1", "441111", "STOP"))
        await opted_out(settings, "441111")
        assert flaky.failed == 4
        assert roles["listwriter"]._failure is None


async def test_idle_waits_out_a_failing_changelog_end(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyEndOffsets(monkeypatch)
    t = settings.topics
    async with running(settings, "ingest", "listwriter") as roles:
        lw = roles["listwriter"]
        await produce(settings, t.inbound_messages, inbound("mo-1", "441111", "STOP"))
        await opted_out(settings, "441111")
        flaky.failing = True  # the idle check asks every 0.25 s
        await eventually(lambda: flaky.failed >= 3, timeout=10, what="idle checks to fail")
        await produce(settings, t.inbound_messages, inbound("mo-2", "442222", "STOP"))
        await opted_out(settings, "442222")  # commands flow meanwhile
        flaky.failing = False
        assert lw._failure is None and lw.metrics.up
