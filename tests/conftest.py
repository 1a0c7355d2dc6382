"""Fixtures shared by every tier. Integration tiers get real services or fail loudly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from dnc.settings import Settings
from tests import kit


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-integration",
        action="store_true",
        help="fail (never skip) when the services are missing or no test was collected",
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.getoption("--require-integration") and not session.items:
        raise pytest.UsageError("the integration tier collected no tests")


@pytest.fixture(scope="session")
def services() -> Iterator[tuple[str, str]]:
    addresses = kit.service_addresses()
    if addresses is None:
        pytest.fail(
            "integration tests need the real services: run `make test` (it starts Kafka and "
            "Redis and sets DNC_KAFKA_BOOTSTRAP / DNC_REDIS_URL), or run where Docker works"
        )
    yield addresses
    kit.stop_containers()


@pytest.fixture
async def make_settings(
    services: tuple[str, str],
) -> AsyncIterator[Callable[..., Awaitable[Settings]]]:
    """Build settings in a namespace of their own, with their topics created."""
    made: list[Settings] = []

    async def make(**overrides: Any) -> Settings:
        kafka, redis_url = services
        settings = kit.unique_settings(kafka, overrides.pop("redis_url", redis_url), **overrides)
        await kit.create_topics(settings)
        made.append(settings)
        return settings

    yield make
    for s in made:
        await kit.drop_view_schema(s)
        await kit.drop_redis_keys(s)
        await kit.delete_topics(s)


@pytest.fixture
async def settings(make_settings: Callable[..., Awaitable[Settings]]) -> Settings:
    return await make_settings()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL database of this test's own (created empty, dropped afterwards)."""
    server = kit.postgres_url()
    if server is None:
        pytest.fail(
            "PostgreSQL tests need a server: run `make up-postgres` and set DNC_POSTGRES_URL "
            "(the Makefile exports postgresql://dnc@127.0.0.1:15432/dnc), or run `make test`"
        )
    async with kit.fresh_database(server) as url:
        yield url
