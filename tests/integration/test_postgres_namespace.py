"""The PostgreSQL namespace every test gets: a database of its own, empty, gone afterwards."""

from __future__ import annotations

import psycopg

from tests import kit


async def _tables(url: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return sorted(str(row[0]) for row in await cur.fetchall())


async def _exists(server: str, url: str) -> bool:
    name = url.rsplit("/", 1)[-1]
    async with await psycopg.AsyncConnection.connect(server) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return await cur.fetchone() is not None


async def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str) -> None:
    assert await _tables(postgres_url) == []
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        await conn.execute("CREATE TABLE entries (id int)")
        await conn.commit()
    assert await _tables(postgres_url) == ["entries"]

    server = kit.postgres_url()
    assert server is not None
    async with kit.fresh_database(server) as other:
        assert other != postgres_url
        assert await _tables(other) == []  # the first database's table is not seen here
        # A connection still open (a view a test forgot to stop) does not keep it alive.
        lingering = await psycopg.AsyncConnection.connect(other)
    try:
        assert not await _exists(server, other)
    finally:
        await lingering.close()
