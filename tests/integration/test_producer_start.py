"""A partition whose transactional producer cannot start: retried with back-off; if it keeps
failing while the brokers answer, the role leaves its group and exits non-zero so another
instance takes the partition; while the brokers do not answer (an outage) it waits."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from dnc import runtime
from dnc.gate.role import Gate
from dnc.kafka import clients
from dnc.settings import Settings
from tests.kit import eventually, outbound, produce, reading, running

pytestmark = pytest.mark.integration


class FailingProducerStarts:
    """``start()`` of the gate's transactional producers fails (as when the transaction
    coordinator cannot be reached) for the next ``budget`` starts, or while ``failing``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, settings: Settings, budget: int = 0):
        self.budget, self.failing, self.failed = budget, False, 0
        real = clients.make_producer
        prefix = f"{settings.app_id}.gate."
        flaky = self

        def make_producer(s: Settings, transactional_id: str | None = None) -> AIOKafkaProducer:
            producer = real(s, transactional_id)
            if transactional_id is None or not transactional_id.startswith(prefix):
                return producer
            start = producer.start

            async def failing_start() -> None:
                if flaky.failing or flaky.budget > 0:
                    flaky.budget = max(flaky.budget - 1, 0)
                    flaky.failed += 1
                    raise KafkaConnectionError("injected: transaction coordinator unavailable")
                await start()

            producer.start = failing_start  # type: ignore[method-assign]
            return producer

        monkeypatch.setattr(clients, "make_producer", make_producer)


def starts_failed(gate: Gate) -> float:
    value = gate.metrics.registry.get_sample_value(
        "dnc_producer_start_failures_total", {"role": "gate"}
    )
    return value or 0.0


async def test_a_producer_that_fails_to_start_is_retried_and_the_gate_forwards(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FailingProducerStarts(monkeypatch, settings, budget=3)
    t = settings.topics
    async with (
        running(settings, "listwriter", "gate") as roles,
        reading(settings, t.allowed) as (allowed,),
    ):
        await produce(settings, t.outbound, *(outbound(f"m{i}", f"4477{i:08d}") for i in range(6)))
        await allowed.wait_for(6, timeout=30)
        gate = roles["gate"]
        assert flaky.failed == 3
        assert starts_failed(gate) == 3
        assert gate._failure is None and gate.pipeline._fatal is None
        await eventually(
            lambda: (
                gate.metrics.registry.get_sample_value("dnc_producers_failing", {"role": "gate"})
                == 0
            ),
            timeout=10,
            what="no producer failing any more",
        )


async def test_a_producer_that_never_starts_makes_the_role_exit_and_another_take_over(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings: Settings = await make_settings(producer_start_limit_s=2.0)
    flaky = FailingProducerStarts(monkeypatch, settings)
    flaky.failing = True
    t = settings.topics
    made: list[Gate] = []

    def gate_factory(s: Settings) -> Gate:
        made.append(Gate(s))
        return made[-1]

    loop = asyncio.get_running_loop()
    async with (
        running(settings, "listwriter"),
        reading(settings, t.allowed) as (allowed,),
    ):
        await produce(settings, t.outbound, *(outbound(f"m{i}", f"4477{i:08d}") for i in range(6)))
        caplog.set_level(logging.ERROR, logger="dnc")
        try:
            # The process entry itself: what `dnc gate` returns as its exit code.
            code = await asyncio.wait_for(runtime._main(gate_factory, settings, "gate"), 60)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        assert code == 1
        assert starts_failed(made[0]) >= 2
        assert any(
            "ProducerCannotStart" in r.getMessage() or "has not started" in r.getMessage()
            for r in caplog.records
        ), [r.getMessage() for r in caplog.records]
        assert not allowed.records  # nothing was forwarded by the gate that gave up
        flaky.failing = False
        async with running(settings, "gate"):  # another instance takes the partitions
            await allowed.wait_for(6, timeout=30)


async def test_while_the_brokers_do_not_answer_the_role_waits_instead_of_exiting(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings: Settings = await make_settings(producer_start_limit_s=1.0)
    flaky = FailingProducerStarts(monkeypatch, settings)
    flaky.failing = True
    real_topics = AIOKafkaConsumer.topics
    answering = {"now": False, "asked": 0}

    async def topics(consumer: AIOKafkaConsumer) -> Any:
        if not answering["now"]:
            answering["asked"] += 1
            raise KafkaConnectionError("injected: no broker answers")
        return await real_topics(consumer)

    monkeypatch.setattr(AIOKafkaConsumer, "topics", topics)
    t = settings.topics
    caplog.set_level(logging.WARNING, logger="dnc")
    async with (
        running(settings, "listwriter", "gate") as roles,
        reading(settings, t.allowed) as (allowed,),
    ):
        gate = roles["gate"]
        await produce(settings, t.outbound, outbound("m1", "447700000001"))
        await eventually(lambda: answering["asked"] >= 3, timeout=30, what="the brokers asked")
        assert gate.pipeline._fatal is None and gate.metrics.up
        assert any("waiting out the outage" in r.getMessage() for r in caplog.records)
        await eventually(
            lambda: gate.metrics.fail_closed.reason == "kafka_unreachable",
            timeout=10,
            what="the gate to say it fails closed for kafka_unreachable",
        )
        flaky.failing, answering["now"] = False, True
        await allowed.wait_for(1, timeout=30)
