"""``dnc viewwriter`` and API instances that only read (``DNC_VIEW__BACKEND=postgres``): two
API instances on one PostgreSQL view read their own writes and each other's, hold no file,
and the view writer applies every record exactly once and resumes from its stored offsets
after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from dnc.api.view import tailing, writerrole
from dnc.api.view.backend import view_identity, view_schema
from dnc.api.view.pgstore import Move, PostgresStore
from dnc.api.view.query import EntryQuery
from dnc.api.view.store import CHANGES, HISTORY
from dnc.api.view.writerrole import ViewWriterRole
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.settings import Settings, ViewSettings
from tests.apikit import MakeSettings, add, api_client, api_settings, auth, listing
from tests.integration.test_list_view import N, produce_import
from tests.kit import eventually, reading, running
from tests.unit.test_api_view_store import change

pytestmark = pytest.mark.integration


async def pg_settings(make_settings: MakeSettings, tmp_path: Path, url: str) -> Settings:
    settings = await api_settings(make_settings, tmp_path)
    view = ViewSettings(backend="postgres", postgres_url=SecretStr(url), postgres_pool_size=2)
    return settings.model_copy(update={"view": view})


def view_store(settings: Settings) -> PostgresStore:
    """The view's tables as a check reads them (its identity is not checked)."""
    return PostgresStore(
        settings.view.postgres_url.get_secret_value(),
        view_identity(settings, 0, 0),
        schema=view_schema(settings),
    )


async def records_per_partition(settings: Settings) -> dict[tuple[str, int], int]:
    """(log, partition) → keyed records committed to dnc.changes / dnc.history."""
    t = settings.topics
    async with reading(settings, t.changes, t.history) as (changes, history):
        await changes.settle(1.5)
        await history.settle(0.5)
    counts: dict[tuple[str, int], int] = {}
    for log, reader in ((CHANGES, changes), (HISTORY, history)):
        for r in reader.records:
            if r.key:
                counts[(log, r.partition)] = counts.get((log, r.partition), 0) + 1
    return counts


def applied_once(view: PostgresStore, expected: dict[tuple[str, int], int]) -> bool:
    """Every record of every partition applied, none twice (``applied`` per partition)."""
    applied = {k: a for k, (_, a) in view.applied().items() if a}
    return applied == expected


async def test_api_instances_read_the_view_one_viewwriter_keeps(
    make_settings: MakeSettings, tmp_path: Path, postgres_url: str
) -> None:
    settings = await pg_settings(make_settings, tmp_path, postgres_url)
    async with (
        running(settings, "listwriter", "viewwriter"),
        api_client(settings, view_writer=False) as (one, _),
        api_client(settings, view_writer=False) as (two, _),
    ):
        added = await add(one, contact="+44 1234 567890", channel="sms")
        assert added["status"] == "effective"
        # Read your writes on the instance that wrote, and at once on the other one too:
        # they read one view.
        for client in (one, two):
            page = await listing(client, account="acme")
            assert [e["contact"] for e in page["entries"]] == ["441234567890"]
        added = await add(two, contact="jane@example.com")
        page = await listing(one, account="acme")
        assert page["total"] == 2

        async def history_shown() -> bool:
            r = await one.get("/v1/history", params={"contact": "jane@example.com"}, headers=auth())
            assert r.status_code == 200, r.text
            return [i["action"] for i in r.json()["history"]] == ["add"]

        await eventually(history_shown, 20, "the add in the person's history")
    files = await asyncio.to_thread(lambda: list(tmp_path.glob("view*.sqlite3")))
    assert files == [], "an API instance built a file of its own"

    expected = await records_per_partition(settings)
    view = view_store(settings)
    try:
        assert applied_once(view, expected)
    finally:
        view.close()


async def test_a_restarted_viewwriter_resumes_from_its_stored_offsets(
    make_settings: MakeSettings, tmp_path: Path, postgres_url: str
) -> None:
    settings = await pg_settings(make_settings, tmp_path, postgres_url)
    view = view_store(settings)
    try:
        async with running(settings, "listwriter"):
            async with (
                running(settings, "viewwriter"),
                api_client(settings, view_writer=False) as (client, _),
            ):
                for i in range(3):
                    await add(client, contact=f"44100000000{i}")
            # Written while no view writer runs: effective, listed once it is back.
            async with api_client(settings, view_writer=False) as (client, _):
                for i in range(3, 6):
                    added = await add(client, contact=f"44100000000{i}")
                    assert added["status"] == "effective"
            async with (
                running(settings, "viewwriter"),
                api_client(settings, view_writer=False) as (client, _),
            ):

                async def all_listed() -> bool:
                    return (await listing(client, account="acme"))["total"] == 6

                await eventually(all_listed, 30, "the six entries to be listed")
                expected = await records_per_partition(settings)
                await eventually(lambda: applied_once(view, expected), 30, "every record once")
    finally:
        view.close()


def test_a_batch_from_an_offset_another_writer_moved_is_kept_not_at_all(postgres_url: str) -> None:
    """The fence of two writers that both believe they own a partition (a rebalance)."""
    identity = {"topic": "t"}
    one = PostgresStore(postgres_url, identity, schema="dnc_view_t")
    two = PostgresStore(postgres_url, identity, schema="dnc_view_t")
    try:
        one.open_shared()
        two.open_shared()
        key = EntryKey("acme", "441234567890", None, None)
        other = EntryKey("acme", "449999999999", None, None)
        first = [change(Entry(key, Source.MANUAL, 1, None))]
        assert one.apply_fenced(first, [], {(CHANGES, 0): Move(None, 1, 1)}) == 0
        # The other writer read "nothing stored" before: its claim is refused, whole.
        late = [change(Entry(other, Source.MANUAL, 1, None))]
        assert two.apply_fenced(late, [], {(CHANGES, 0): Move(None, 1, 1)}) is None
        assert two.apply_fenced(late, [], {(CHANGES, 0): Move(0, 1, 1)}) is None
        # From the stored offset it goes on.
        assert two.apply_fenced(late, [], {(CHANGES, 0): Move(1, 2, 1)}) == 0
        assert one.apply_fenced(late, [], {(CHANGES, 0): Move(1, 2, 1)}) is None
        assert one.applied() == {(CHANGES, 0): (2, 2)}
        one.open_readers()
        assert set(one.keys(EntryQuery(accounts=("acme",)))) == {key, other}
    finally:
        one.close()
        two.close()


async def test_far_behind_the_viewwriter_writes_the_list_before_its_history(
    make_settings: MakeSettings, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As test_list_view's test of the embedded view: small batches, and the history held
    # back until the test lets it go.
    monkeypatch.setattr(writerrole, "BATCH", 100)
    monkeypatch.setattr(tailing, "HISTORY_YIELD", 300)
    monkeypatch.setattr(tailing, "HISTORY_RESUME", 0)
    settings = await pg_settings(make_settings, tmp_path, postgres_url)
    await produce_import(settings)
    role = ViewWriterRole(settings)
    await role.start()
    task = asyncio.create_task(role.run())
    view = view_store(settings)

    def applied(log: str) -> int:
        return view.applied().get((log, 0), (0, 0))[1]

    try:
        # Its tables exist once it has taken its partitions.
        await eventually(lambda: role.metrics.ready, 30, "the view writer", unless=died(task))
        await eventually(lambda: applied(CHANGES) == N, 60, "the list written", unless=died(task))
        assert applied(HISTORY) < N // 4
        assert role.follows.paused
        monkeypatch.setattr(tailing, "HISTORY_RESUME", 30)
        await eventually(lambda: applied(HISTORY) == N, 60, "its history", unless=died(task))
        assert not role.follows.paused
    finally:
        role.request_stop()
        await asyncio.wait_for(task, 30)
        await role.stop()
        view.close()


def died(task: asyncio.Task[None]) -> Callable[[], str | None]:
    return lambda: f"the role stopped: {task.exception()!r}" if task.done() else None
