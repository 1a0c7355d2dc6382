"""Crashes and lost Redis data: no opt-out lost, no message lost or duplicated, nothing
forwarded unchecked. (The long, randomised versions are in tests/faults.)"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dnc.index import make_index
from dnc.settings import IndexSettings, Settings
from tests.kit import (
    Process,
    Reader,
    cluster_mode,
    eventually,
    inbound,
    is_confirmation,
    outbound,
    produce,
    reading,
    running,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration


def messages(reader: Reader) -> list[Any]:
    """The outbound messages the gate allowed (not the list writer's confirmations)."""
    return [r for r in reader.records if not is_confirmation(r)]


@contextlib.contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test's own, without persistence: killing it loses everything."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by `make up`"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--set-max-intset-entries",
            "8192",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def test_gate_waits_while_redis_is_empty_then_the_index_is_rebuilt(
    make_settings: object,
) -> None:
    port = free_port()
    settings: Settings = await make_settings(  # type: ignore[operator]
        redis_url=f"redis://127.0.0.1:{port}/0",
        index=IndexSettings(prefix="r", buckets=256, redis_timeout_s=0.5),
    )
    t = settings.topics
    stopped = "441111111111"
    with private_redis(port) as redis_proc:
        async with (
            running(settings, "ingest", "listwriter", "gate"),
            reading(settings, t.allowed, t.blocked) as (allowed, blocked),
        ):
            await produce(settings, t.inbound_messages, inbound("mo-1", stopped, "STOP"))
            async with make_index(settings) as index:

                async def effective() -> bool:
                    return bool(await index.entries_of("acme", stopped))

                await eventually(effective, timeout=30, what="the STOP to be effective")
            await produce(settings, t.outbound, outbound("before", stopped))
            await blocked.wait_for(1)

            redis_proc.kill()  # Redis is gone, and with it the whole index
            redis_proc.wait()
            await produce(
                settings,
                t.outbound,
                outbound("during-1", stopped),
                outbound("during-2", "442222222222"),
            )
            await asyncio.sleep(1.5)
            assert messages(allowed) == [] and len(blocked.records) == 1, "forwarded unchecked"

            with private_redis(port):  # back, but empty
                await blocked.wait_for(2, timeout=30)
                await allowed.wait_for(2, timeout=30)  # during-2 and the STOP's confirmation
                await allowed.settle(1.0)
    assert [orjson.loads(r.value)["message"]["message_id"] for r in blocked.records] == [
        "before",
        "during-1",
    ]
    assert len(allowed.records) - len(messages(allowed)) == 1  # one confirmation, once
    assert [orjson.loads(r.value)["message_id"] for r in messages(allowed)] == ["during-2"]


async def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """Kill the gate and the list writer with SIGKILL while messages and opt-outs flow."""
    t = settings.topics
    rng = random.Random(7)
    stopped = [f"4477000{i:05d}" for i in range(40)]
    others = [f"4488000{i:05d}" for i in range(40)]
    procs = {role: Process(settings, role, tmp_path) for role in ("ingest", "listwriter", "gate")}
    for p in procs.values():
        p.start()
    try:
        await produce(
            settings, t.inbound_messages, *[inbound(f"mo-{n}", n, "STOP") for n in stopped]
        )
        async with reading(settings, t.changes) as (changes,):
            await changes.wait_for(len(stopped), timeout=60)
        sent = 0
        for round_ in range(4):
            batch = [outbound(f"m-{round_}-{i}", rng.choice(stopped + others)) for i in range(300)]
            await produce(settings, t.outbound, *batch)
            sent += len(batch)
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            victim = procs["gate" if round_ % 2 == 0 else "listwriter"]
            victim.kill()
            victim.start()
        async with reading(settings, t.allowed, t.blocked, t.dead_letter) as readers:
            allowed, blocked, dlq = readers

            async def all_out() -> bool:
                for r in readers:
                    await r.poll(0.1)
                return len(messages(allowed)) + len(blocked.records) + len(dlq.records) >= sent

            await eventually(all_out, timeout=90, what=f"{sent} outputs")
            for r in readers:
                await r.settle(1.5)
        confirmed = Counter(
            orjson.loads(r.value)["in_reply_to"] for r in allowed.records if is_confirmation(r)
        )
        assert sorted(confirmed) == sorted(f"mo-{n}" for n in stopped)  # one per opt-out
        assert max(confirmed.values()) == 1
        seen = Counter(
            [orjson.loads(r.value)["message_id"] for r in messages(allowed)]
            + [orjson.loads(r.value)["message"]["message_id"] for r in blocked.records]
        )
        assert dlq.records == []
        assert sum(seen.values()) == sent and max(seen.values()) == 1  # none lost, none twice
        leaked = [
            orjson.loads(r.value)
            for r in messages(allowed)
            if orjson.loads(r.value)["destination"] in stopped
        ]
        assert leaked == []
    finally:
        for p in procs.values():
            p.terminate()


@pytest.mark.skipif(cluster_mode(), reason="empties a single Redis's meta hash directly")
async def test_a_catch_up_that_meets_a_new_epoch_starts_over(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last write of a partition's catch-up (the commands it covered) meets an index
    that started a new epoch after the catch-up read it (Redis lost its data; on a cluster,
    a node that gained slots). The catch-up must start over from the new meta: retrying the
    same write can never succeed, and the partition would take no command again."""
    from dnc.index.single import SingleIndex

    t = settings.topics
    contact = "447000000001"
    async with make_index(settings) as index:

        async def senders() -> set[str]:
            return {str(e.key.sender) for e in await index.entries_of("acme", contact)}

        async with running(settings, "ingest", "listwriter"):
            await produce(settings, t.inbound_messages, inbound("mo-1", contact, "STOP"))

            async def first_effective() -> bool:
                return len(await senders()) == 1

            await eventually(first_effective, 30, "the first STOP to be effective")

        original = SingleIndex.apply
        hit: list[str] = []

        async def apply_after_a_lost_index(self: SingleIndex, **kw: Any) -> None:
            if not hit and not kw["updates"] and kw["new_command_offset"] is not None:
                hit.append(kw["epoch"])
                await self.redis.delete(self.meta_key)
                await self.init(settings.topic_layout.list_partitions)
            await original(self, **kw)

        monkeypatch.setattr(SingleIndex, "apply", apply_after_a_lost_index)
        async with running(settings, "ingest", "listwriter"):
            # The restarted list writer catches the contact's partition up; its last write
            # (the commands it covered) meets the new epoch.
            await eventually(lambda: bool(hit), 30, "the catch-up's last write")
            # Same contact, same partition: only a catch-up that started over takes it.
            await produce(
                settings, t.inbound_messages, inbound("mo-2", contact, "STOP", to="OTHER")
            )

            async def second_effective() -> bool:
                return len(await senders()) == 2

            await eventually(second_effective, 60, "the second STOP after the new epoch")
