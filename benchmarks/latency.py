"""Opt-out → effective: a STOP is produced on ``dnc.inbound-messages`` while ``dnc
ingest``, ``dnc listwriter`` and ``dnc gate`` run as processes of their own and the gate
carries outbound traffic at a given rate; from then on every tick also sends a probe
message to that contact. A sample's latency runs from just before the STOP's produce call
to the ``CreateTime`` of the first blocked probe, which the gate's producer stamps when the
gate decides (same machine, same clock). Also reported: when that record became visible
to a ``read_committed`` reader downstream (after the gate's transaction commit).

The delay is also broken into stages, so that a long tail has a name: the STOP's command
on ``dnc.commands`` (its ``CreateTime``: ingest decided; when a ``read_committed`` reader
got it: ingest committed), its change on ``dnc.changes`` (list writer decided /
committed; the list writer writes Redis right after that commit), and the blocked probe
(the gate decided). Each stage's time is measured from the STOP's produce call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.common import ROOT, outbound_message, percentile, settings_env
from dnc.settings import Settings

TICK_S = 0.005
_POOL = 100_000
SAMPLE_TIMEOUT_S = 10.0


@dataclass
class Sample:
    contact: str
    stop_ms: float
    blocked_ms: float | None = None  # the blocked record's CreateTime
    seen_ms: float | None = None  # when a read_committed reader got it
    probe_sent_ms: float | None = None  # when the probe that was blocked was sent
    probes: int = 0
    # Stage → epoch ms: command_created, command_committed, change_created, change_committed
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class State:
    pending: dict[str, Sample] = field(default_factory=dict)  # contact → sample
    samples: list[Sample] = field(default_factory=list)
    open: dict[str, Sample] = field(default_factory=dict)  # contact → sample, stages missing
    sent: int = 0
    stopping: bool = False


@contextlib.contextmanager
def roles(
    settings: Settings, log_dir: Path, *names: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``dnc <role>`` processes (uvloop, as in production), stopped with SIGTERM."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = settings_env(settings)
    env["DNC_LOG_LEVEL"] = "INFO"
    procs = []
    try:
        for name in names:
            log = (log_dir / f"{name}.log").open("ab")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dnc", name], env=env, cwd=ROOT, stdout=log, stderr=log
                )
            )
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


async def _load(settings: Settings, rate: float, state: State) -> None:
    """Outbound traffic at `rate` msg/s (the usual 5% blocked mix) plus, every tick, one
    probe per pending sample."""
    t = settings.topics
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    parts = len(await producer.partitions_for(t.outbound))
    # Made in advance and sent round: on a 2-core machine the load generator's own CPU
    # would otherwise be taken from the roles under test.
    rng = random.Random(11)
    pool = [outbound_message(j, rng, "load") for j in range(_POOL)]
    start = time.perf_counter()
    futures: list[Any] = []
    try:
        while not state.stopping:
            due = int((time.perf_counter() - start) * rate)
            builders = [producer.create_batch() for _ in range(parts)]
            while state.sent < due:
                key, value = pool[state.sent % _POOL]
                builders[state.sent % parts].append(key=key, value=value, timestamp=None)
                state.sent += 1
            for s in state.pending.values():
                s.probes += 1
                probe = (
                    f'{{"message_id":"probe-{s.contact}-{s.probes}","account":"acme",'
                    f'"channel":"SMS","sender":"ACME","destination":"{s.contact}",'
                    f'"sent_ms":{time.time() * 1000:.1f}}}'
                ).encode()
                builders[s.probes % parts].append(
                    key=s.contact.encode(), value=probe, timestamp=None
                )
            for partition, b in enumerate(builders):
                if b.record_count():
                    futures.append(await producer.send_batch(b, t.outbound, partition=partition))
            if len(futures) > 200:
                await asyncio.gather(*futures[:100])
                del futures[:100]
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _committed_reader(settings: Settings, reset: str) -> AIOKafkaConsumer:
    """A watcher's consumer: committed records only, each as soon as the broker has it."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset=reset,
        fetch_max_wait_ms=5,
    )


async def _watch_blocked(settings: Settings, state: State) -> None:
    consumer = _committed_reader(settings, "earliest")
    await consumer.start()
    try:
        topic = settings.topics.blocked
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        while not state.stopping:
            batch = await consumer.getmany(timeout_ms=20)
            now = time.time() * 1000
            for records in batch.values():
                for r in records:
                    if r.value is None or b'"probe-' not in r.value:
                        continue
                    message = orjson.loads(r.value)["message"]
                    s = state.pending.pop(message["destination"], None)
                    if s is not None:
                        s.blocked_ms, s.seen_ms = float(r.timestamp), now
                        s.probe_sent_ms = message["sent_ms"]
    finally:
        await consumer.stop()


STAGES = ("command_created", "command_committed", "change_created", "change_committed")


async def _watch_stages(settings: Settings, state: State) -> None:
    """When each STOP's command and change were decided (``CreateTime``) and committed
    (seen by a ``read_committed`` reader). Matched by the contact's digits in the record."""
    consumer = _committed_reader(settings, "latest")
    await consumer.start()
    try:
        t = settings.topics
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in (t.commands, t.changes)
            for p in consumer.partitions_for_topic(topic) or set()
        ]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        while not state.stopping:
            batch = await consumer.getmany(timeout_ms=20)
            now = time.time() * 1000
            for tp, records in batch.items():
                kind = "command" if tp.topic == t.commands else "change"
                for r in records:
                    data = (r.key or b"") + (r.value or b"")
                    for contact, s in list(state.open.items()):
                        if contact.encode() in data and f"{kind}_created" not in s.stages:
                            s.stages[f"{kind}_created"] = float(r.timestamp)
                            s.stages[f"{kind}_committed"] = now
                            if len(s.stages) == len(STAGES):
                                del state.open[contact]
    finally:
        await consumer.stop()


def stage_figures(samples: list[Sample]) -> dict[str, dict[str, float]]:
    """p50 / p99 / max of each stage from the STOP, and of each step between stages."""
    names = (*STAGES, "blocked")
    rows: dict[str, list[float]] = {}
    for s in samples:
        if s.blocked_ms is None or any(n not in s.stages for n in STAGES):
            continue
        at = {**s.stages, "blocked": s.blocked_ms}
        prev, prev_ms = "stop", s.stop_ms
        for n in names:
            rows.setdefault(n, []).append(at[n] - s.stop_ms)
            rows.setdefault(f"{prev} → {n}", []).append(at[n] - prev_ms)
            prev, prev_ms = n, at[n]
        if s.probe_sent_ms is not None:
            # The blocked probe's own wait in the gate's queue: long when the gate lags
            # behind its input; short while change → blocked is long when it learned late.
            rows.setdefault("blocked probe sent → blocked", []).append(
                s.blocked_ms - s.probe_sent_ms
            )
    return {
        k: {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v), "n": len(v)}
        for k, v in rows.items()
    }


async def _inject(settings: Settings, state: State, samples: int, spacing_s: float) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    rng = random.Random()  # new contacts each run, so that every STOP is a change
    try:
        for n in range(samples):
            contact = f"4479{rng.randrange(10**8):08d}"  # in no index
            stop = {
                "message_id": f"stop-{n}",
                "account": "acme",
                "channel": "SMS",
                "from": "+" + contact,
                "to": "ACME",
                "text": "STOP",
                "received_at": "2026-11-26T05:31:27.123Z",
            }
            sample = Sample(contact, time.time() * 1000)
            state.samples.append(sample)
            state.pending[contact] = sample
            state.open[contact] = sample
            await producer.send_and_wait(settings.topics.inbound_messages, orjson.dumps(stop))
            await asyncio.sleep(spacing_s)
        for _ in range(int(SAMPLE_TIMEOUT_S / 0.05)):  # the last samples
            if not state.pending:
                break
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


async def wait_ready(settings: Settings, timeout_s: float = 120.0) -> float:
    """Until the gate forwards a message (index caught up, filter built); seconds taken."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    started = time.perf_counter()
    try:
        topic = settings.topics.allowed
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        value = b'{"message_id":"ready","account":"acme","channel":"SMS","sender":"ACME",'
        value += b'"destination":"33600000000"}'
        await producer.send_and_wait(settings.topics.outbound, value)
        while time.perf_counter() - started < timeout_s:
            batch = await consumer.getmany(timeout_ms=200)
            if any(r.value == value for records in batch.values() for r in records):
                return time.perf_counter() - started
        raise RuntimeError("the gate did not forward a message in time; see its log")
    finally:
        await consumer.stop()
        await producer.stop()


async def measure(
    settings: Settings, rate: float, samples: int, spacing_s: float, warmup_s: float = 3.0
) -> dict[str, Any]:
    """Run with the roles already started; return p50/p99/max and what was sent."""
    state = State()
    tasks = [
        asyncio.create_task(_load(settings, rate, state)),
        asyncio.create_task(_watch_blocked(settings, state)),
        asyncio.create_task(_watch_stages(settings, state)),
    ]
    started = time.perf_counter()
    try:
        await asyncio.sleep(warmup_s)
        await _inject(settings, state, samples, spacing_s)
    finally:
        state.stopping = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    elapsed = time.perf_counter() - started
    done = [s for s in state.samples if s.blocked_ms is not None]
    effective = [s.blocked_ms - s.stop_ms for s in done if s.blocked_ms is not None]
    seen = [s.seen_ms - s.stop_ms for s in done if s.seen_ms is not None]
    return {
        "samples": len(state.samples),
        "missed": len(state.samples) - len(done),
        "rate_target": rate,
        "rate_sent": state.sent / elapsed,
        "p50_ms": percentile(effective, 50),
        "p99_ms": percentile(effective, 99),
        "max_ms": max(effective, default=float("nan")),
        "seen_p50_ms": percentile(seen, 50),
        "seen_p99_ms": percentile(seen, 99),
        "stages": stage_figures(done),
    }
