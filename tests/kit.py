"""Test kit: real Kafka and Redis, a fresh namespace per test, roles in-process or as
processes. Used by the integration, browser and fault tiers.

Services come from ``DNC_KAFKA_BOOTSTRAP`` / ``DNC_REDIS_URL`` (``make test`` starts the
local stack and sets them). Without them, and only where a Docker engine runs,
testcontainers starts throwaway ones. There is no fake Kafka or Redis anywhere.

With ``DNC_INDEX__CLUSTER=true`` and ``DNC_REDIS_URL`` naming a Redis Cluster node
(``make test-cluster``), every test namespace puts its index on the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError

from dnc.kafka.clients import ensure_topics, topic_names
from dnc.settings import IndexSettings, Settings, TopicLayout, Topics, ViewSettings

ROOT = Path(__file__).resolve().parents[1]


# --- services -------------------------------------------------------------------------


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


_containers: list[Any] = []


def service_addresses() -> tuple[str, str] | None:
    kafka, redis_url = os.environ.get("DNC_KAFKA_BOOTSTRAP"), os.environ.get("DNC_REDIS_URL")
    if kafka and redis_url:
        return kafka, redis_url
    if not _docker_available():
        return None
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    k = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    r = RedisContainer("redis:7")
    k.start()
    r.start()
    _containers.extend([k, r])
    return (
        k.get_bootstrap_server(),
        f"redis://{r.get_container_host_ip()}:{r.get_exposed_port(6379)}/0",
    )


def stop_containers() -> None:
    while _containers:
        _containers.pop().stop()


# --- a namespace per test ----------------------------------------------------------------


def cluster_mode() -> bool:
    """Whether the tests run against a Redis Cluster (``DNC_INDEX__CLUSTER``)."""
    return os.environ.get("DNC_INDEX__CLUSTER", "").strip().lower() in ("1", "true", "yes")


def cluster_only() -> pytest.MarkDecorator:
    """Marks a test of the Redis Cluster: `make test` runs it in its second pass."""
    return pytest.mark.skipif(
        not cluster_mode(),
        reason="Redis Cluster only: make test runs it in its second pass, on the local cluster",
    )


def unique_settings(kafka: str, redis_url: str, **overrides: Any) -> Settings:
    """Settings whose topics, consumer groups, transactional ids and Redis keys are this
    test's alone."""
    uid = uuid.uuid4().hex[:10]
    topics = Topics(
        **{
            name: f"t{uid}.{value}"
            for name, value in Topics().model_dump().items()
            if isinstance(value, str) and value
        }
    )
    base: dict[str, Any] = {
        "kafka_bootstrap": kafka,
        "redis_url": redis_url,
        "app_id": f"t{uid}",
        "topics": topics,
        # Tests run on one broker as well as on three (make up-kafka-cluster).
        "topic_layout": TopicLayout(
            input_partitions=2,
            outbound_partitions=3,
            list_partitions=3,
            allow_under_replicated=True,
        ),
        "index": IndexSettings(prefix=f"t{uid}", buckets=256, cluster=cluster_mode()),
        "shutdown_deadline_s": 5.0,
        "log_json": False,
    }
    if view_backend() == "postgres":
        server = postgres_url()
        assert server, "DNC_TEST_VIEW_BACKEND=postgres needs DNC_POSTGRES_URL"
        # A schema per test (its name carries the app id): one database serves them all.
        base["view"] = ViewSettings(backend="postgres", postgres_url=SecretStr(server))
    base.update(overrides)
    return Settings(**base)


def view_backend() -> str:
    """The list view every test's settings use: ``DNC_TEST_VIEW_BACKEND=postgres`` runs the
    API tier on PostgreSQL (a view writer beside every API, ``api_view_writer``)."""
    return os.environ.get("DNC_TEST_VIEW_BACKEND", "sqlite").strip().lower() or "sqlite"


def sqlite_view_only() -> pytest.MarkDecorator:
    """Marks a test of the API's own SQLite file, which the PostgreSQL pass does not have
    (its counterparts: tests/integration/test_view_writer.py)."""
    return pytest.mark.skipif(
        view_backend() == "postgres", reason="the API's own SQLite view file; not with postgres"
    )


@contextlib.asynccontextmanager
async def api_view_writer(settings: Settings, *, enabled: bool = True) -> AsyncIterator[None]:
    """In the PostgreSQL pass of the API tier its view writer (``dnc viewwriter``) runs while
    an API does (tests of the view writer itself run their own)."""
    if not enabled or view_backend() != "postgres" or settings.view.backend != "postgres":
        yield
        return
    async with running(settings, "viewwriter"):
        yield


async def drop_view_schema(settings: Settings) -> None:
    """A test's PostgreSQL view goes when it ends."""
    if settings.view.backend != "postgres":
        return
    from dnc.api.view.backend import view_schema

    url = settings.view.postgres_url.get_secret_value()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(
            psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                psycopg.sql.Identifier(view_schema(settings))
            )
        )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a ``dnc`` process see exactly these settings (secrets
    included): this process's environment, with the settings' ``DNC_*`` variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_")}
    env.update(settings.as_env())
    return env


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings)


async def delete_topics(settings: Settings) -> None:
    """A test's topics go when it ends: a broker keeps files open for every partition,
    and a suite that left them all behind would run it out of file descriptors."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = topic_names(settings)
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


# --- a PostgreSQL database per test -----------------------------------------------------


def postgres_url() -> str | None:
    """The PostgreSQL the tests may make databases on (``make up-postgres`` starts one and
    the Makefile exports ``DNC_POSTGRES_URL``)."""
    return os.environ.get("DNC_POSTGRES_URL") or None


def database_url(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead (URL or key=value form)."""
    if url.startswith(("postgres://", "postgresql://")):
        return urlsplit(url)._replace(path=f"/{name}").geturl()
    return psycopg.conninfo.make_conninfo(url, dbname=name)


@contextlib.asynccontextmanager
async def fresh_database(url: str) -> AsyncIterator[str]:
    """A new, empty database on the server ``url`` reaches, dropped when the block ends
    (with its connections: a view backend a test left running must not keep it alive)."""
    name = f"dnc_t{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(
            psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
        )
    try:
        yield database_url(url, name)
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)
                )
            )


async def drop_redis_keys(settings: Settings) -> None:
    """Clean-up after a test; a private Redis the test already stopped needs none."""
    try:
        async with redis_nodes(settings) as nodes:
            for client in nodes:
                async for key in client.scan_iter(match=f"{settings.index.prefix}:*", count=1000):
                    await client.unlink(key)
    except (RedisConnectionError, OSError):
        pass


@contextlib.asynccontextmanager
async def redis_nodes(settings: Settings) -> AsyncIterator[list[aioredis.Redis]]:
    """A client per node that holds data: the Redis, or each master of the cluster (for
    SCAN, which sees one node's keys)."""
    seed = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1)
    clients = [seed]
    try:
        if settings.index.cluster:
            clients = []
            for entry in await seed.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
                host, port = entry[2][0].decode() or "127.0.0.1", int(entry[2][1])
                if all(c.connection_pool.connection_kwargs["port"] != port for c in clients):
                    clients.append(aioredis.Redis(host=host, port=port, socket_connect_timeout=1))
        yield clients
    finally:
        for c in {id(c): c for c in [seed, *clients]}.values():
            await c.aclose()


@contextlib.asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client that reaches any key: on a cluster, one that routes by slot."""
    if not settings.index.cluster:
        client = aioredis.Redis.from_url(settings.redis_url)
    else:
        from redis.asyncio.cluster import RedisCluster

        client = RedisCluster.from_url(settings.redis_url)  # type: ignore[assignment]
    try:
        yield client
    finally:
        await client.aclose()


async def redis_keys(settings: Settings) -> list[bytes]:
    """Every key of the settings' index, from every node."""
    out: list[bytes] = []
    async with redis_nodes(settings) as nodes:
        for client in nodes:
            out += [k async for k in client.scan_iter(match=f"{settings.index.prefix}:*")]
    return out


# --- Kafka I/O ----------------------------------------------------------------------------


async def produce(
    settings: Settings,
    topic: str,
    *values: Any,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[Any]:
    """Produce values (dicts become JSON; bytes go as they are); return record metadata."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = []
        for v in values:
            raw = v if isinstance(v, bytes | None) else orjson.dumps(v)
            futures.append(await producer.send(topic, raw, key=key, headers=headers))
        return [await f for f in futures]
    finally:
        await producer.stop()


@dataclass
class Reader:
    """Reads a topic from the beginning with read_committed, accumulating records."""

    settings: Settings
    topic: str
    records: list[Any] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> Reader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(self.topic)
        # A topic created a moment ago may not be in the metadata of the broker asked yet
        # (seen as "No partitions are currently assigned" on a busy machine): ask again.
        deadline = time.monotonic() + 15
        while not parts:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: no partitions in the metadata after 15 s")
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic)
            if not parts:
                await asyncio.sleep(0.1)
        tps = [TopicPartition(self.topic, p) for p in parts]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self, timeout: float = 0.2) -> list[Any]:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=int(timeout * 1000))
        new = [r for recs in batch.values() for r in recs]
        self.records.extend(new)
        return new

    async def wait_for(self, n: int, timeout: float = 20.0) -> list[Any]:
        """Wait until at least n records have been read; return all of them."""
        deadline = time.monotonic() + timeout
        while len(self.records) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: {len(self.records)} records, expected {n}")
            await self.poll()
        return self.records

    async def settle(self, quiet: float = 1.0) -> list[Any]:
        """Read until nothing new arrives for `quiet` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if await self.poll():
                last = time.monotonic()
        return self.records

    def values(self) -> list[Any]:
        return [None if r.value is None else orjson.loads(r.value) for r in self.records]


@contextlib.asynccontextmanager
async def reading(settings: Settings, *topics: str) -> AsyncIterator[list[Reader]]:
    readers = [await Reader(settings, t).start() for t in topics]
    try:
        yield readers
    finally:
        for r in readers:
            await r.stop()


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    unless: Callable[[], str | None] | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``check`` (sync or async) until it is true; fail after ``timeout`` seconds, or
    at once when ``unless`` names a reason to stop waiting (a role that died)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        reason = unless() if unless is not None else None
        if reason is not None:
            raise AssertionError(f"{reason} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


# --- roles ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(settings: Settings, *roles: str) -> AsyncIterator[dict[str, Any]]:
    """Run roles in this process (each `start`ed, `run` as a task, `stop`ped at the end)."""
    from dnc.api.view.writerrole import ViewWriterRole
    from dnc.gate.role import Gate
    from dnc.ingest.role import Ingest
    from dnc.listwriter.role import ListWriter

    factories: dict[str, Callable[[Settings], Any]] = {
        "ingest": Ingest,
        "listwriter": ListWriter,
        "gate": Gate,
        "viewwriter": ViewWriterRole,
    }
    started: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        for name in roles:
            role = factories[name](settings)
            await role.start()
            started[name] = role
            tasks.append(asyncio.create_task(role.run(), name=name))
        yield started
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()  # type: ignore[misc]
    finally:
        for role in started.values():
            role.request_stop()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(t, 15)
        for role in reversed(list(started.values())):
            await role.stop()


class Process:
    """A ``dnc <role>`` process, for tests that kill roles for real."""

    def __init__(self, settings: Settings, role: str, log_dir: Path) -> None:
        self.settings, self.role, self.log_dir = settings, role, log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = open(self.log_dir / f"{self.role}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dnc", self.role],
            env=settings_env(self.settings),
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def is_confirmation(record: Any) -> bool:
    """An opt-out confirmation the list writer sent to the allowed topic."""
    return ("dnc-confirmation", b"1") in (record.headers or ())


def outbound(
    message_id: str,
    destination: str,
    *,
    account: str = "acme",
    channel: str = "SMS",
    sender: str = "ACME",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "account": account,
        "channel": channel,
        "sender": sender,
        "destination": destination,
        **extra,
    }


def inbound(
    message_id: str,
    sender_number: str,
    text: str,
    *,
    account: str = "acme",
    channel: str = "SMS",
    to: str = "ACME",
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "account": account,
        "channel": channel,
        "from": sender_number,
        "to": to,
        "text": text,
        "received_at": "2026-11-26T05:31:27.123Z",
    }


def ids(values: Iterable[Any], path: tuple[str, ...] = ("message_id",)) -> list[str]:
    out = []
    for value in values:
        inner = value
        for p in path:
            inner = inner[p]
        out.append(inner)
    return out
