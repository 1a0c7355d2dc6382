"""PostgreSQL down under the list view (``DNC_VIEW__BACKEND=postgres``), on a private
PostgreSQL of this test's own (never the shared one): listing, export and history answer 503
naming the database, while checks, writes and the gate keep working; when the database is
back the view writer resumes from its stored offsets and the list shows every write, each
record applied once."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apikit import MakeSettings, add, api_client, auth, gate_verdicts, listing
from tests.integration.test_view_writer import (
    applied_once,
    pg_settings,
    records_per_partition,
    view_store,
)
from tests.kit import eventually, outbound, running
from tests.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/local/postgres.sh"


class PrivatePostgres:
    """A cluster of ``deploy/local/postgres.sh`` on a port and state directory of its own."""

    def __init__(self) -> None:
        # Under the worktree's .local: run as root, the cluster belongs to the 'postgres'
        # user, who cannot enter root's private temporary directory.
        self.state = ROOT / ".local" / "tests" / f"pg-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"postgresql://dnc@127.0.0.1:{self.port}/dnc"

    def run(self, command: str) -> str:
        env = {**os.environ, "DNC_STACK_DIR": str(self.state), "DNC_POSTGRES_PORT": str(self.port)}
        done = subprocess.run(
            [str(SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"postgres.sh {command}:\n{done.stdout}{done.stderr}"
        return done.stdout

    async def up(self) -> None:
        await asyncio.to_thread(self.run, "up")

    async def down(self) -> None:
        await asyncio.to_thread(self.run, "down")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.state.mkdir(parents=True)
    try:
        pg.run("up")
        yield pg
    finally:
        where = Path(pg.run("dir").strip())
        pg.run("down")
        shutil.rmtree(pg.state, ignore_errors=True)
        shutil.rmtree(where, ignore_errors=True)


async def test_postgres_down_stops_the_list_not_the_checks_writes_or_gate(
    make_settings: MakeSettings, tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    pg = private_postgres
    settings = await pg_settings(make_settings, tmp_path, pg.url)
    async with (
        running(settings, "listwriter", "gate", "viewwriter") as roles,
        api_client(settings, view_writer=False) as (client, _),
    ):
        await add(client, contact="+44 1234 567890")
        assert (await listing(client, account="acme"))["total"] == 1

        await pg.down()
        for path, params in (
            ("/v1/entries", {"account": "acme"}),
            ("/v1/entries/export", {"account": "acme"}),
            ("/v1/history", {"contact": "441234567890"}),
        ):
            r = await client.get(path, params=params, headers=auth())
            assert r.status_code == 503, (path, r.text)
            error = r.json()["error"]
            assert f"PostgreSQL 127.0.0.1:{pg.port}/dnc" in error, error
            assert "cannot be reached" in error, error

        # What does not need the view goes on: checks, writes (effective at the gate).
        r = await client.get(
            "/v1/check", params={"account": "acme", "contact": "441234567890"}, headers=auth()
        )
        assert r.status_code == 200, r.text
        assert r.json()["blocked"] is True
        added = await add(client, contact="jane@example.com", channel="email")
        assert added["status"] == "effective"
        verdicts = await gate_verdicts(
            settings,
            outbound("m-1", "jane@example.com", channel="EMAIL"),
            outbound("m-2", "free@example.com", channel="EMAIL"),
        )
        assert verdicts == {"m-1": "blocked", "m-2": "allowed"}
        assert roles["viewwriter"].error is not None  # it noticed, and waits

        await pg.up()

        async def listed_again() -> bool:
            r = await client.get("/v1/entries", params={"account": "acme"}, headers=auth())
            return r.status_code == 200 and r.json()["total"] == 2

        await eventually(listed_again, 60, "the list to show both entries again")
        expected = await records_per_partition(settings)
        view = view_store(settings)
        try:
            await eventually(lambda: applied_once(view, expected), 30, "every record once")
        finally:
            view.close()
