"""The views that write the list reading a real Kafka: what they read first when they are
far behind (the embedded list view here; the PostgreSQL view writer in test_view_writer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from dnc.api.view import listview, tailing
from dnc.api.view.listview import ListView
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.settings import Settings
from tests.unit.test_api_view_history import record

pytestmark = pytest.mark.integration

T0 = 1_795_671_087_123
N = 2000


async def produce_import(settings: Settings) -> None:
    """N entries of one import on partition 0 of the changelog, and their N history records
    on partition 0 of the history, as the list writer writes them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = []
        for i in range(N):
            contact = f"+4477009{i:05d}"
            entry = Entry(EntryKey("acme", contact, None, None), Source.IMPORT, T0, None)
            key, value = entry.key.to_json(), entry.to_json()
            sent.append(await producer.send(settings.topics.changes, value, key=key, partition=0))
            hkey, hvalue = record("acme", contact, f"0-{i}-0", T0)
            sent.append(await producer.send(settings.topics.history, hvalue, key=hkey, partition=0))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def test_far_behind_the_list_view_reads_the_list_before_its_history(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so that N records take many of them; the history is held back until
    # the test lets it go (no resume threshold is below 0 records behind).
    monkeypatch.setattr(listview, "BATCH", 100)
    monkeypatch.setattr(tailing, "HISTORY_YIELD", 300)
    monkeypatch.setattr(tailing, "HISTORY_RESUME", 0)
    settings = settings.model_copy(
        update={
            "view": settings.view.model_copy(update={"backend": "sqlite"}),
            "api": settings.api.model_copy(update={"view_path": str(tmp_path / "v.sqlite3")}),
        }
    )
    await produce_import(settings)
    view = ListView(settings)
    await view.start()
    try:
        assert await view.wait_for({0: N}, 60), f"the list stopped at {view.offsets}"
        # The history waited while the list was far behind: a batch or two of it at most
        # (read together with the list's first), not the half a shared read would give.
        assert view.history_offsets[0] < N // 4, view.history_offsets
        assert view.lag() == N - view.history_offsets[0]  # the paused history is counted
        monkeypatch.setattr(tailing, "HISTORY_RESUME", 30)
        assert await view.wait_for_history([0], 60), f"history at {view.history_offsets}"
        assert view.history_offsets[0] == N
        assert view.lag() == 0
        assert view.caught_up
        items = await view.history_of([("acme", "+447700901999")])
        assert [(i.action, i.contact) for i in items] == [("add", "+447700901999")]
    finally:
        await view.stop()
