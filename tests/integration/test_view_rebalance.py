"""Several ``dnc viewwriter`` processes in one consumer group while list changes flow: an
instance is added, one stopped (SIGTERM), one killed (SIGKILL) and one added again, so the
partitions of ``dnc.changes`` and ``dnc.history`` move between instances mid-stream.
Afterwards the PostgreSQL view holds exactly the list, and every partition's records were
applied once: none lost, none twice (the per-partition ``applied`` count equals the
partition's records)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dnc.api.view.query import EntryQuery
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import now_ms
from dnc.settings import Settings, TopicLayout
from tests.apikit import MakeSettings, api_client
from tests.integration.test_view_writer import (
    applied_once,
    pg_settings,
    records_per_partition,
    view_store,
)
from tests.kit import Process, eventually, running

pytestmark = pytest.mark.integration


async def group_settled(settings: Settings, members: int) -> bool:
    """The view writers' group is stable with ``members`` members (partitions given out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for response in await admin.describe_consumer_groups([settings.group_id("viewwriter")]):
            for group in response.to_object()["groups"]:
                if group["state"] == "Stable" and len(group["members"]) == members:
                    return True
        return False
    finally:
        await admin.close()


async def test_viewwriter_instances_come_and_go_mid_stream(
    make_settings: MakeSettings, tmp_path: Path, postgres_url: str
) -> None:
    async def wider(**overrides: Any) -> Any:
        layout = TopicLayout(
            input_partitions=2,
            outbound_partitions=2,
            list_partitions=6,
            allow_under_replicated=True,
        )
        return await make_settings(topic_layout=layout, **overrides)

    settings = await pg_settings(wider, tmp_path, postgres_url)
    listed: set[EntryKey] = set()
    writers: list[Process] = []

    def start_writer() -> None:
        proc = Process(settings, "viewwriter", tmp_path / f"viewwriter-{len(writers)}")
        proc.start()
        writers.append(proc)

    def alive() -> list[Process]:
        return [p for p in writers if p.alive]

    async with running(settings, "listwriter"), api_client(settings, view_writer=False) as (_, ctx):
        n = 0

        async def changes(count: int) -> None:
            """Adds, and removals of earlier entries: rows inserted and deleted."""
            nonlocal n
            commands = []
            for _ in range(count):
                key = EntryKey("acme", f"44700{n:07d}", None, None)
                commands.append(Command([Op("add", key, Source.MANUAL)], now_ms(), {"n": n}))
                listed.add(key)
                if n % 5 == 4:
                    gone = EntryKey("acme", f"44700{n - 3:07d}", None, None)
                    commands.append(Command([Op("remove", gone)], now_ms(), {"n": n}))
                    listed.discard(gone)
                n += 1
            await ctx.writer.submit(commands)

        async def steady() -> None:
            while not calm.is_set():
                await changes(20)
                await asyncio.sleep(0.2)

        # Stopped by an event, not cancelled: a submit cancelled half-way would leave the
        # model ahead of the list.
        calm = asyncio.Event()
        start_writer()
        start_writer()
        background = asyncio.create_task(steady())
        try:
            # 2 instances → 3 → 2 (one stopped) → 1 (one killed) → 2, each change of the
            # group settled (partitions given out again) while changes keep coming.
            for phase in ("two", "added", "terminated", "killed", "replaced"):
                await changes(200)
                if phase in ("added", "replaced"):
                    start_writer()
                elif phase == "terminated":
                    assert alive()[0].terminate() == 0, "a view writer did not stop cleanly"
                elif phase == "killed":
                    alive()[0].kill()
                members = len(alive())
                settled = functools.partial(group_settled, settings, members)
                await eventually(settled, 60, f"{members} view writers")
                await asyncio.sleep(1.0)
            calm.set()
            await background
            assert len(alive()) == 2, "a view writer died on its own"

            expected = await records_per_partition(settings)
            view = view_store(settings)
            view.open_readers()
            try:
                await eventually(
                    lambda: applied_once(view, expected), 90, "every record applied once"
                )
                found = await asyncio.to_thread(view.keys, EntryQuery(accounts=("acme",)))
                assert set(found) == listed
                assert len(found) == len(listed)
            finally:
                view.close()
        finally:
            calm.set()
            background.cancel()
            for p in writers:
                p.terminate()
    print(f"view rebalance: {n} adds, {len(listed)} listed, {len(writers)} view writers")
