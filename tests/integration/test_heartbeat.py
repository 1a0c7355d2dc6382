"""The heartbeat file of a role (what its liveness probe checks) stays fresh only while every
owned partition makes progress, or waits for a reason ``dnc_fail_closed`` shows: never a
fresh heartbeat with a stuck partition, and an outage never stops it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from dnc.gate.role import Gate
from dnc.listwriter.catchup import ChangelogReplay
from dnc.listwriter.role import ListWriter
from dnc.settings import IndexSettings, Settings
from tests.integration.test_recovery import private_redis
from tests.kit import eventually, outbound, produce, reading, running
from tests.ports import free_port

pytestmark = pytest.mark.integration

STALL_AFTER_S = 2.0
BEAT_S = 0.2


def age(path: Path) -> float:
    return time.time() - path.stat().st_mtime if path.exists() else float("inf")


def beating(settings: Settings, beat: Path) -> Settings:
    """The gate's settings: a heartbeat file of its own (each process has one)."""
    return settings.model_copy(
        update={
            "heartbeat_file": str(beat),
            "heartbeat_interval_s": BEAT_S,
            "stall_after_s": STALL_AFTER_S,
        }
    )


def stalled(role: Gate | ListWriter) -> float | None:
    return role.metrics.registry.get_sample_value("dnc_partitions_stalled", {"role": role.name})


async def test_a_partition_stuck_without_a_reason_stops_the_heartbeat_until_it_moves(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    beat = tmp_path / "heartbeat"
    settings: Settings = await make_settings()
    t = settings.topics
    holding = {"on": False}
    real_accepts = Gate.accepts

    def accepts(gate: Gate, tp: TopicPartition) -> bool:
        # A handler that puts a partition's records back for ever, saying nothing.
        return not holding["on"] and real_accepts(gate, tp)

    monkeypatch.setattr(Gate, "accepts", accepts)
    async with (
        running(settings, "listwriter"),
        running(beating(settings, beat), "gate") as roles,
        reading(settings, t.allowed) as (allowed,),
    ):
        gate = roles["gate"]
        await produce(settings, t.outbound, outbound("m0", "447700000000"))
        await allowed.wait_for(1, timeout=30)
        await eventually(lambda: age(beat) < 1.0, timeout=10, what="a fresh heartbeat")

        holding["on"] = True
        await produce(settings, t.outbound, outbound("m1", "447700000001"))
        await eventually(lambda: stalled(gate) == 1, timeout=15, what="a stalled partition")
        assert gate.metrics.fail_closed.reason is None  # nothing explains the wait
        await eventually(
            lambda: age(beat) > STALL_AFTER_S, timeout=15, what="the heartbeat to go stale"
        )
        assert len(allowed.records) == 1

        holding["on"] = False  # the partition moves again
        await allowed.wait_for(2, timeout=30)
        await eventually(lambda: age(beat) < 1.0, timeout=10, what="the heartbeat back")
        assert stalled(gate) == 0


async def test_waiting_for_redis_the_metric_shows_keeps_the_heartbeat_fresh(
    make_settings: Any, tmp_path: Path
) -> None:
    beat = tmp_path / "heartbeat"
    port = free_port()
    settings: Settings = await make_settings(
        redis_url=f"redis://127.0.0.1:{port}/0",
        index=IndexSettings(prefix="h", buckets=256, redis_timeout_s=0.5),
    )
    t = settings.topics
    with private_redis(port) as redis_proc:
        async with (
            running(settings, "listwriter"),
            running(beating(settings, beat), "gate") as roles,
            reading(settings, t.allowed) as (allowed,),
        ):
            gate = roles["gate"]
            await produce(settings, t.outbound, outbound("m0", "447700000000"))
            await allowed.wait_for(1, timeout=30)

            redis_proc.kill()
            redis_proc.wait()
            await produce(settings, t.outbound, outbound("m1", "447700000001"))
            await eventually(
                lambda: gate.metrics.fail_closed.reason == "redis_unreachable",
                timeout=10,
                what="the gate to fail closed",
            )
            waited = time.monotonic()
            while time.monotonic() - waited < 2 * STALL_AFTER_S:  # well past the bound
                assert age(beat) < 1.5, "the heartbeat went stale during an outage"
                await asyncio.sleep(0.1)
            assert stalled(gate) == 0
            assert len(allowed.records) == 1


async def test_a_catch_up_that_hangs_stops_the_list_writer_s_heartbeat(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    beat = tmp_path / "heartbeat"
    release = asyncio.Event()
    real_apply = ChangelogReplay._apply

    async def apply_changes(replay: ChangelogReplay, *args: Any) -> None:
        await release.wait()  # a catch-up that hangs, saying nothing
        await real_apply(replay, *args)

    monkeypatch.setattr(ChangelogReplay, "_apply", apply_changes)
    async with running(beating(settings, beat), "listwriter") as roles:
        writer = roles["listwriter"]
        parts = settings.topic_layout.list_partitions
        await eventually(lambda: stalled(writer) == parts, timeout=15, what="stalled catch-ups")
        assert writer.metrics.fail_closed.reason is None
        await eventually(
            lambda: age(beat) > STALL_AFTER_S, timeout=15, what="no heartbeat"
        )  # never touched, or gone stale
        release.set()
        await eventually(lambda: age(beat) < 1.0, timeout=15, what="the heartbeat once caught up")
        assert stalled(writer) == 0
