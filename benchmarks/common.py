"""What every benchmark shares: a namespace of its own per run (topics, groups,
transactional ids, Redis prefix), the data set, and child processes.

The data set is deterministic. Index entry ``i`` is contact ``447`` + nine digits of
``i`` in account ``ACCOUNTS[i % 4]``, for all channels or SMS, all senders or ``ACME``;
every size of index (10k, 1M, 10M) holds the first N of them, so one message set is 5%
blocked against each. The other 95% go to French mobile numbers, which no index holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import format_ms
from dnc.index.layout import Layout
from dnc.kafka.clients import ensure_topics
from dnc.settings import GateSettings, IndexSettings, Settings, TopicLayout, Topics
from dnc.settings import IndexSettings as _IndexSettings

# Benchmarks run without privacy keys, like the roles they start.
_LAYOUT = Layout(_IndexSettings())

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
ACCOUNTS = ("acme", "acme-eu", "globex", "initech")
ADDED_AT_MS = 1795671087123
BLOCKED_EVERY = 20  # 1 message in 20 = 5% blocked
SMALLEST_INDEX = 10_000  # blocked messages go to contacts every index size holds


def services() -> tuple[str, str]:
    kafka = os.environ.get("DNC_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    redis_url = os.environ.get("DNC_REDIS_URL", "redis://127.0.0.1:16379/0")
    return kafka, redis_url


# --- namespaces -----------------------------------------------------------------------


def new_run_id() -> str:
    return "bench" + uuid.uuid4().hex[:8]


def bench_settings(
    run_id: str,
    *,
    index: str,
    app: str,
    traffic: str = "main",
    buckets: int = 16384,
    gate: GateSettings | None = None,
    metrics: bool = True,
) -> Settings:
    """Settings of one role instance in the run ``run_id``.

    ``index`` names a list (its commands, changes and history topics and its Redis
    prefix), ``traffic`` the outbound topics, ``app`` the consumer groups and
    transactional ids (a new one starts reading from the beginning).
    """
    kafka, redis_url = services()
    list_topics = {"commands", "changes", "history"}
    traffic_topics = {"outbound", "allowed", "blocked"}
    names: dict[str, str] = {}
    for name, value in Topics().model_dump().items():
        if not isinstance(value, str) or not value:
            continue
        if name in list_topics:
            names[name] = f"{run_id}.{index}.{value}"
        elif name in traffic_topics:
            names[name] = f"{run_id}.{traffic}.{value}"
        else:
            names[name] = f"{run_id}.{value}"
    return Settings(
        kafka_bootstrap=kafka,
        redis_url=redis_url,
        app_id=f"{run_id}.{app}",
        topics=Topics(**names),
        topic_layout=TopicLayout(
            input_partitions=6,
            outbound_partitions=6,
            list_partitions=6,
            allow_under_replicated=True,
        ),
        index=IndexSettings(prefix=f"{run_id}.{index}", buckets=buckets),
        gate=gate or GateSettings(),
        metrics_enabled=metrics,
        log_json=False,
        log_level="WARNING",
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (or ``dnc <role>``) see these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_")}
    env.update(settings.as_env())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@contextlib.contextmanager
def role_process(settings: Settings, role: str) -> Iterator[subprocess.Popen[bytes]]:
    """``dnc <role>`` with these settings, quiet, until the block ends (then SIGTERM)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dnc", role],
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings)


async def drop_run(run_id: str) -> None:
    """Delete this run's Redis keys and Kafka topics (and nothing else)."""
    _kafka, redis_url = services()
    client = aioredis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{run_id}.*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=_kafka)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(f"{run_id}.")]
        if mine:
            with contextlib.suppress(Exception):  # best effort: a leftover topic is harmless
                await admin.delete_topics(mine)
    finally:
        await admin.close()


# --- the data set -----------------------------------------------------------------------


def entry_added_at(i: int) -> int:
    """Distinct times, a few seconds apart, as organic opt-outs are."""
    return ADDED_AT_MS - i * 7919


def entry_contact(i: int) -> tuple[str, str, str | None, str | None]:
    """(account, contact, channel, sender) of index entry i."""
    return (
        ACCOUNTS[i % 4],
        f"447{i:09d}",
        None if i % 3 == 0 else "SMS",
        None if i % 2 == 0 else "acme",
    )


Rec = tuple[int, bytes, bytes]


def changelog_records(n: int, parts: int) -> Iterator[Rec]:
    """(partition, key, value) of the first n entries, as the list writer produces them
    (``EntryKey.to_json`` / ``Entry.to_json``)."""
    origin = {"kind": "import", "import_id": "bench", "row": 0}
    for i in range(n):
        account, contact, channel, sender = entry_contact(i)
        origin["row"] = i
        value = {
            "account": account,
            "contact": contact,
            "channel": channel,
            "sender": sender,
            "source": "IMPORT",
            "added_at": format_ms(entry_added_at(i)),
            "origin": origin,
        }
        yield (
            _LAYOUT.partition(account, contact, parts),
            orjson.dumps([account, contact, channel, sender]),
            orjson.dumps(value),
        )


def outbound_message(j: int, rng: random.Random, prefix: str = "m") -> tuple[bytes, bytes]:
    """(key, value) of message j: every 20th to a contact of every index, else to a
    number no index holds."""
    if j % BLOCKED_EVERY == 0:
        i = rng.randrange(SMALLEST_INDEX)
        account, destination, _ch, _s = entry_contact(i)
    else:
        account = ACCOUNTS[rng.randrange(4)]
        destination = f"336{rng.randrange(10**8):08d}"
    message_id = f"{prefix}-{j}"
    value = (
        f'{{"message_id":"{message_id}","account":"{account}","channel":"SMS",'
        f'"sender":"ACME","destination":"{destination}",'
        f'"text":"Your verification code is {j % 1000000:06d}. It expires in 10 minutes."}}'
    )
    return message_id.encode(), value.encode()


def outbound_records(n: int, parts: int, seed: int = 7) -> Iterator[tuple[int, bytes, bytes]]:
    rng = random.Random(seed)
    for j in range(n):
        key, value = outbound_message(j, rng)
        yield j % parts, key, value


def command_records(n: int, parts: int, ops_per_command: int = 1000) -> Iterator[Rec]:
    """(partition, key, value) of list commands that add entries 0..n-1, grouped as an
    import groups them (``api.import_jobs``: up to 1000 ops per command, one partition)."""
    at = ADDED_AT_MS
    origin = {"kind": "import", "import_id": "bench", "file": "bench.csv"}
    groups: dict[int, list[Op]] = {}

    def record(p: int, ops: list[Op]) -> Rec:
        k = ops[0].key
        command = Command(ops, at, origin, "imp-bench")
        return p, _LAYOUT.field(k.account, k.contact), command.to_json()

    for i in range(n):
        account, contact, channel, sender = entry_contact(i)
        p = _LAYOUT.partition(account, contact, parts)
        ops = groups.setdefault(p, [])
        ops.append(Op("add", EntryKey(account, contact, channel, sender), Source.IMPORT))
        if len(ops) >= ops_per_command:
            yield record(p, ops)
            groups[p] = []
    for p, ops in groups.items():
        if ops:
            yield record(p, ops)


# --- child processes --------------------------------------------------------------------


def run_child(settings: Settings, *args: str, timeout: float = 1800) -> dict[str, Any]:
    """Run ``python -m benchmarks.worker *args`` with these settings; return its result
    (the JSON object it prints last)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", *args],
        env=settings_env(settings),
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"worker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.decode()[-3000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def run_child_async(settings: Settings, *args: str) -> dict[str, Any]:
    return await asyncio.to_thread(run_child, settings, *args)


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    rank = max(1, min(len(s), -(-len(s) * q // 100)))
    return s[int(rank) - 1]
