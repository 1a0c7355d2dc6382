"""Many instances of every role in one consumer group, as processes: an instance of each
role is added, one stopped (SIGTERM), one killed (SIGKILL) and one added again while
opt-outs and outbound messages flow, so partitions move between instances mid-stream.
Afterwards, by message id: none lost, none twice (read_committed), none allowed that was
produced after its opt-out was effective, and one confirmation per opt-out."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from dnc.index import Index, make_index
from dnc.settings import Settings, TopicLayout
from tests.kit import (
    Process,
    eventually,
    inbound,
    is_confirmation,
    outbound,
    produce,
    reading,
)

pytestmark = pytest.mark.integration

ROLES = ("ingest", "listwriter", "gate")
FREE = [f"4480000{i:05d}" for i in range(20)]


class Fleet:
    """Instances of every role, each a ``dnc <role>`` process with a log of its own."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings, self.logs = settings, logs
        self.procs: dict[str, list[Process]] = {role: [] for role in ROLES}

    def add(self) -> None:
        for role in ROLES:
            n = len(self.procs[role])
            proc = Process(self.settings, role, self.logs / f"{role}-{n}")
            proc.start()
            self.procs[role].append(proc)

    def alive(self, role: str) -> list[Process]:
        return [p for p in self.procs[role] if p.alive]

    def stop_all(self) -> None:
        for procs in self.procs.values():
            for p in procs:
                p.terminate()


async def test_instances_come_and_go_mid_stream(make_settings: Any, tmp_path: Path) -> None:
    settings: Settings = await make_settings(
        topic_layout=TopicLayout(
            input_partitions=4,
            outbound_partitions=6,
            list_partitions=6,
            allow_under_replicated=True,
        )
    )
    t = settings.topics
    expect: dict[str, str | None] = {}  # message id → "allow", "block" or None (a race)
    stopped: list[str] = []
    fleet = Fleet(settings, tmp_path)
    started = time.monotonic()

    async def send(tag: str, destinations: list[str], verdict: str | None) -> None:
        batch = [outbound(f"{tag}-{i}-{d}", d) for i, d in enumerate(destinations)]
        for m in batch:
            expect[m["message_id"]] = verdict
        await produce(settings, t.outbound, *batch)

    async def effective(index: Index, contacts: list[str]) -> None:
        async def check() -> bool:
            return all([await index.entries_of("acme", c) for c in contacts])

        await eventually(check, 90, f"{len(contacts)} opt-outs to be effective")

    async def change(phase: str) -> None:
        """The membership change of a phase: partitions move between instances."""
        if phase in ("added", "replaced"):
            fleet.add()
        elif phase == "terminated":
            for role in ROLES:
                assert fleet.alive(role)[0].terminate() == 0, f"{role} did not stop cleanly"
        elif phase == "killed":
            for role in ROLES:
                fleet.alive(role)[0].kill()

    async def steady() -> None:
        """Traffic all along, across every membership change: free contacts, and contacts
        whose opt-out was effective before the message was produced."""
        n = 0
        while not calm.is_set():
            await send(f"steady{n}", FREE[n % 20 :][:5], "allow")
            if stopped:
                await send(f"steady{n}b", stopped[-(n % len(stopped)) - 5 :][:5], "block")
            n += 1
            await asyncio.sleep(0.05)

    # Stopped by an event, not cancelled: a send cancelled half-way would leave messages
    # expected that were never produced.
    calm = asyncio.Event()
    fleet.add()
    fleet.add()
    background = asyncio.create_task(steady())
    try:
        async with make_index(settings) as index:
            # 2 instances of each role → 3 → 2 → 1 → 2
            for phase in ("two", "added", "terminated", "killed", "replaced"):
                group = [f"4471{len(stopped) // 10}{i:06d}" for i in range(10)]
                await produce(
                    settings, t.inbound_messages, *[inbound(f"mo-{c}", c, "STOP") for c in group]
                )
                # In flight while the STOPs are processed: the group's own messages race
                # their opt-outs; earlier groups must be blocked, free contacts allowed.
                await send(f"{phase}-race", group, None)
                await send(f"{phase}-old", stopped, "block")
                await send(f"{phase}-free", FREE, "allow")
                await change(phase)
                await send(f"{phase}-free2", FREE, "allow")
                await effective(index, group)
                stopped += group
                await send(f"{phase}-after", group, "block")
                await asyncio.sleep(0.5)
            calm.set()
            await background
            await send("end", stopped + FREE, None)
            for m in expect:
                if m.startswith("end-"):
                    expect[m] = "block" if m.rsplit("-", 1)[1] in stopped else "allow"

        async with reading(settings, t.allowed, t.blocked, t.dead_letter) as readers:
            allowed, blocked, dlq = readers
            total = len(expect) + len(stopped)  # and one confirmation per opt-out

            async def all_out() -> bool:
                for r in readers:
                    await r.poll(0.1)
                return len(allowed.records) + len(blocked.records) + len(dlq.records) >= total

            await eventually(all_out, 120, f"{total} outputs")
            for r in readers:
                await r.settle(1.5)
        for role in ROLES:
            assert len(fleet.alive(role)) == 2, f"{role}: an instance died on its own"
    finally:
        background.cancel()
        fleet.stop_all()

    messages = [r for r in allowed.records if not is_confirmation(r)]
    allowed_ids = [orjson.loads(r.value)["message_id"] for r in messages]
    blocked_ids = [orjson.loads(r.value)["message"]["message_id"] for r in blocked.records]
    assert dlq.records == []
    seen = Counter(allowed_ids + blocked_ids)
    assert set(seen) == set(expect), "lost or unknown messages"
    assert max(seen.values()) == 1, "a message came out twice"
    leaked = [m for m in allowed_ids if expect[m] == "block"]
    assert leaked == [], "allowed after the opt-out was effective"
    wrongly = [m for m in blocked_ids if expect[m] == "allow"]
    assert wrongly == []
    confirmations = Counter(
        orjson.loads(r.value)["in_reply_to"] for r in allowed.records if is_confirmation(r)
    )
    assert confirmations == Counter({f"mo-{c}": 1 for c in stopped})
    print(
        f"rebalance: {len(expect)} messages ({len(allowed_ids)} allowed, "
        f"{len(blocked_ids)} blocked, {sum(1 for v in expect.values() if v is None)} raced "
        f"their opt-out), {len(stopped)} opt-outs, {sum(confirmations.values())} confirmations,"
        f" {time.monotonic() - started:.0f} s"
    )
