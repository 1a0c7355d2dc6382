"""Bounce processes, then count: the machinery shared by the fault scenarios.

Modelled on Kafka's transactional system test. A ``Workload`` produces opt-outs (STOP from
a set of *target* contacts) and outbound messages (to the targets and to *bystanders*,
each with a unique ``message_id``, keyed by destination) while the scenario kills,
pauses and restarts things. Afterwards every output topic is read from the beginning with
``read_committed`` and counted by id.

When an opt-out became *effective*: a watcher in the test process polls the Redis index
(``Index.entries_of``, straight to Redis, never through a fault proxy) every 100 ms and
records, per target, the monotonic time just *after* the first reply that contained the
entry. The entry was in the index at some moment before that time, and from that moment
on the gate must block (it reads the same index, and waits whenever it cannot trust it),
so the recorded time is an upper bound of the real moment. A message counts as *leaked*
when it is a blockable message to a target (account ``acme``, channel SMS, sender ACME),
its send started after that bound, and it was allowed: it was certainly appended to
``messages.outbound`` after the opt-out was effective. A second check needs no clock:
messages to one contact share a partition, so once one of them is blocked no later one
(by offset) may be allowed (``reopened``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.errors import DncError
from dnc.index import SingleIndex
from dnc.kafka.clients import ensure_topics
from dnc.settings import ApiSettings, Settings
from tests.kit import ROOT, Process, delete_topics, eventually, inbound, outbound, settings_env

ACCOUNT = "acme"
SENDER = "ACME"
OTHER_SENDER = "OTHER"
ROLES = ("ingest", "listwriter", "gate")
ARTIFACTS = ROOT / "artifacts"

# Scenario results, collected for the summary table and artifacts/faults.json.
RESULTS: list[dict[str, Any]] = []


def rounds(default: int) -> int:
    """DNC_FAULT_ROUNDS (``make test-faults``) overrides each scenario's short default."""
    value = os.environ.get("DNC_FAULT_ROUNDS", "").strip()
    return int(value) if value else default


def monotonic() -> float:
    return time.monotonic()


# --- role processes -----------------------------------------------------------------------


class RoleProcess(Process):
    """``dnc <role>`` as a process; ``argv`` replaces the command (e.g. a deliberately
    broken gate, to prove that the checks catch it)."""

    def __init__(
        self,
        settings: Settings,
        role: str,
        log_dir: Path,
        argv: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(settings, role, log_dir)
        self.name = name or role  # e.g. "gate-2" for a second instance
        self.argv = list(argv) if argv else [sys.executable, "-m", "dnc", role]
        self.expected_exit = False

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.expected_exit = False
        with open(self.log_dir / f"{self.name}.log", "ab") as log:
            log.write(f"\n===== start #{self.starts} at {time.time():.3f} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=settings_env(self.settings),
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 25) -> str:
        path = self.log_dir / f"{self.name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Exit:
    role: str
    code: int | None
    tail: str


class RoleSet:
    """The roles of one scenario. A monitor notices a role that exits without being
    killed by the test (it did not recover on its own), records it and restarts it so the
    run can still be counted."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        roles: Sequence[str] = ROLES,
        argv: dict[str, list[str]] | None = None,
        instances: int = 1,
    ) -> None:
        self.procs = {
            name: RoleProcess(settings, r, log_dir, (argv or {}).get(r), name)
            for r in roles
            for name in [r] + [f"{r}-{i}" for i in range(2, instances + 1)]
        }
        self.unexpected: list[Exit] = []
        self.kills: Counter[str] = Counter()
        self._monitor: asyncio.Task[None] | None = None

    def __getitem__(self, role: str) -> RoleProcess:
        return self.procs[role]

    def start(self) -> None:
        for p in self.procs.values():
            p.start()
        self._monitor = asyncio.create_task(self._watch())

    def kill(self, role: str) -> None:
        p = self.procs[role]
        p.expected_exit = True
        if p.proc is not None and p.proc.poll() is None:
            p.proc.send_signal(signal.SIGCONT)  # a paused process dies just the same
        p.kill()
        self.kills[role] += 1

    def restart(self, role: str) -> None:
        self.procs[role].start()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for p in self.procs.values():
                if p.proc is not None and not p.expected_exit and p.proc.poll() is not None:
                    self.unexpected.append(Exit(p.name, p.proc.returncode, p.log_tail()))
                    p.start()

    async def stop(self) -> dict[str, int | None]:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        codes = {}
        for role, p in self.procs.items():
            if p.proc is not None and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGCONT)
            p.expected_exit = True
            codes[role] = await asyncio.to_thread(p.terminate, 30)
        return codes


# --- what was sent ------------------------------------------------------------------------


@dataclass
class Sent:
    id: str
    contact: str  # canonical digits; "" for the deliberately invalid ones
    sender: str
    valid: bool
    target: bool
    t_send: float
    partition: int = -1
    offset: int = -1
    failed: bool = False

    @property
    def blockable(self) -> bool:
        return self.valid and self.target and self.sender == SENDER


@dataclass
class Report:
    """One scenario's figures (the README's reliability table)."""

    scenario: str
    rounds: int
    messages: int = 0
    opt_outs: int = 0
    allowed: int = 0
    confirmations: int = 0  # opt-out confirmations the list writer sent (one per opt-out)
    confirmations_duplicated: int = 0
    blocked: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    leaked: int = 0
    reopened: int = 0
    wrongly_blocked: int = 0
    misrouted: int = 0
    produce_errors: int = 0
    opt_outs_missing_in_index: int = 0
    opt_outs_missing_in_changes: int = 0
    opt_out_changes_duplicated: int = 0
    opt_out_commands_duplicated: int = 0
    # Adds through the API (the scenario that kills the api): requests that reached it,
    # contacts it acknowledged (200/201/202), requests whose outcome the client never
    # learnt, acknowledged contacts not in the index, contacts created more than once.
    requests: int = 0
    acked: int = 0
    unknown: int = 0
    adds_lost: int = 0
    adds_duplicated: int = 0
    unexpected_exits: int = 0
    unclean_shutdowns: int = 0  # SIGTERM at the end did not give exit code 0
    kills: dict[str, int] = field(default_factory=dict)
    effective_p50_ms: float | None = None
    effective_max_ms: float | None = None
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        bad = [
            "lost", "duplicated", "leaked", "reopened", "wrongly_blocked", "misrouted",
            "opt_outs_missing_in_index", "opt_outs_missing_in_changes",
            "opt_out_changes_duplicated", "opt_out_commands_duplicated", "unexpected_exits",
            "unclean_shutdowns", "confirmations_duplicated", "adds_lost", "adds_duplicated",
        ]  # fmt: skip
        return [f"{name}={getattr(self, name)}" for name in bad if getattr(self, name)]

    def line(self) -> str:
        adds = (
            f"requests={self.requests} acked={self.acked} unknown={self.unknown} "
            f"adds_lost={self.adds_lost} adds_duplicated={self.adds_duplicated} "
            if self.requests
            else ""
        )
        return (
            f"[faults] {self.scenario}: rounds={self.rounds} {adds}messages={self.messages} "
            f"opt_outs={self.opt_outs} allowed={self.allowed} blocked={self.blocked} "
            f"dead_lettered={self.dead_lettered} lost={self.lost} duplicated={self.duplicated} "
            f"leaked={self.leaked} reopened={self.reopened} "
            f"wrongly_blocked={self.wrongly_blocked} unexpected_exits={self.unexpected_exits} "
            f"kills={dict(self.kills)} {self.extra} ({self.duration_s:.0f}s)"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- reading a topic to its end ---------------------------------------------------------


async def read_all(
    settings: Settings, topic: str, timeout: float = 120.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every committed record of `topic` (read_committed, up to the last stable offset)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        deadline = monotonic() + timeout
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                return out
            if monotonic() > deadline:
                raise AssertionError(f"{topic}: could not read to the end ({positions} < {ends})")
            batch = await consumer.getmany(timeout_ms=500, max_records=10000)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout: float = 60.0
) -> list[TopicPartition]:
    """The topic's partitions, waiting until the client's metadata knows them: right after
    the topic was created, or a broker restart, it may not yet (and a reader assigned to
    no partition would wait for ever for records that are there)."""
    deadline = monotonic() + timeout
    while not (parts := consumer.partitions_for_topic(topic)):
        if monotonic() > deadline:
            raise AssertionError(f"{topic}: no partitions known after {timeout:.0f}s")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(parts)]


def count_confirmation(report: Report, value: bytes | None, seen: set[Any]) -> None:
    """Opt-out confirmations: exactly one per opt-out the list writer created, however
    often its roles were killed (a second one per inbound message is a duplicate)."""
    v = orjson.loads(value) if value else None
    if not isinstance(v, dict) or v.get("type") != "opt_out_confirmation":
        return
    if v.get("in_reply_to") in seen:
        report.confirmations_duplicated += 1
    else:
        seen.add(v.get("in_reply_to"))
        report.confirmations += 1


def message_id_of(kind: str, value: bytes | None, outbound_topic: str) -> str | None:
    """The outbound message id an output record is about (None: not an outbound message)."""
    if value is None:
        return None
    try:
        v = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if kind == "allowed":
        if isinstance(v, dict) and v.get("type") == "opt_out_confirmation":
            return None  # not an outbound message: counted by count_confirmations
        inner = v
    elif kind == "blocked":
        inner = v.get("message")
    else:
        if v.get("topic") != outbound_topic or v.get("value") is None:
            return None
        try:
            inner = orjson.loads(v["value"])
        except orjson.JSONDecodeError:
            return None
    if isinstance(inner, dict) and isinstance(inner.get("message_id"), str):
        return str(inner["message_id"])
    return None


# --- the workload ---------------------------------------------------------------------------


class Workload:
    """Opt-outs and outbound traffic, the effective-time watcher and a live collector of
    decisions (for 'nothing was decided while the gate was blind' checks)."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        watch_redis_url: str,
        targets: int = 24,
        bystanders: int = 24,
        rate: float = 80.0,
        invalid_ratio: float = 0.03,
        other_sender_ratio: float = 0.2,
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.rng = random.Random(seed)
        # UK mobile numbers of the range reserved for drama (possible numbers, no one's).
        self.targets = [f"4477009{i:05d}" for i in range(targets)]
        self.bystanders = [f"4477009{50000 + i:05d}" for i in range(bystanders)]
        self.rate = rate
        self.invalid_ratio = invalid_ratio
        self.other_sender_ratio = other_sender_ratio
        self.sent: dict[str, Sent] = {}
        self.stop_sent: dict[str, float] = {}
        self.stop_ids: dict[str, str] = {}
        self.effective: dict[str, float] = {}
        self.decided: dict[str, tuple[str, float]] = {}  # id -> (kind, first seen)
        self.collector_positions: dict[str, Any] = {}
        self._seq = 0
        self.t0 = monotonic()
        self.events: list[tuple[str, float]] = []
        self._producer: AIOKafkaProducer | None = None
        self._futures: list[tuple[Sent, asyncio.Future[Any]]] = []
        self._index = SingleIndex(settings.index, watch_redis_url)
        self._tasks: list[asyncio.Task[None]] = []
        self._traffic_on = asyncio.Event()
        self._closing = False

    # lifecycle

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=120000,
        )
        await self._producer.start()
        await self._index.start()
        self._tasks = [
            asyncio.create_task(self._watch(), name="watch-effective"),
            asyncio.create_task(self._collect(), name="collect"),
            asyncio.create_task(self._traffic(), name="traffic"),
        ]

    async def close(self) -> None:
        self._closing = True
        for t in self._tasks:
            t.cancel()
        # Each step bounded: with a broker that is down, the producer waits for batches it
        # cannot deliver, and a client task that does not end when cancelled must not hang
        # the suite (wait_for would wait for the cancellation to finish).
        await _bounded(
            asyncio.gather(*self._tasks, return_exceptions=True), 30, f"{self.name}: tasks"
        )
        if self._producer is not None:
            await _bounded(self._producer.stop(), 30, f"{self.name}: the workload producer")
        await _bounded(self._index.stop(), 10, f"{self.name}: the workload's Redis client")

    def event(self, what: str) -> None:
        """Note a fault in the report's timeline (seconds since the workload started)."""
        self.events.append((what, round(monotonic() - self.t0, 2)))

    # opt-outs

    async def opt_out(self, contacts: Sequence[str]) -> None:
        assert self._producer is not None
        for c in contacts:
            mo = f"{self.name}-mo-{c}"
            self.stop_ids[c] = mo
            self.stop_sent[c] = monotonic()
            value = orjson.dumps(inbound(mo, "+" + c, "STOP", account=ACCOUNT, to=SENDER))
            await self._producer.send_and_wait(
                self.settings.topics.inbound_messages, value, key=c.encode()
            )

    async def opt_out_spread(self, contacts: Sequence[str], every_s: float) -> None:
        for c in contacts:
            await self.opt_out([c])
            await asyncio.sleep(every_s)

    async def wait_effective(self, contacts: Sequence[str], timeout: float = 60) -> None:
        await eventually(
            lambda: all(c in self.effective for c in contacts),
            timeout,
            f"opt-outs of {len(contacts)} contacts to become effective",
        )

    # outbound traffic

    def traffic(self, on: bool) -> None:
        if on:
            self._traffic_on.set()
        else:
            self._traffic_on.clear()

    async def _traffic(self) -> None:
        tick = 0.05
        per_tick = self.rate * tick
        owed = 0.0
        while True:
            await self._traffic_on.wait()
            owed += per_tick
            while owed >= 1:
                owed -= 1
                await self._send_one()
            await asyncio.sleep(tick)

    async def _send_one(self) -> None:
        assert self._producer is not None
        self._seq += 1
        mid = f"{self.name}-{self._seq:06d}"
        rng = self.rng
        if rng.random() < self.invalid_ratio:
            sent = Sent(mid, "", SENDER, valid=False, target=False, t_send=monotonic())
            value = outbound(mid, f"12ab{self._seq}", account=ACCOUNT, sender=SENDER)
            key = b"invalid"
        else:
            target = rng.random() < 0.5
            contact = rng.choice(self.targets if target else self.bystanders)
            sender = OTHER_SENDER if rng.random() < self.other_sender_ratio else SENDER
            # Spelled the way people write numbers; the gate normalises.
            shown = rng.choice([contact, "+" + contact, f"+{contact[:2]} {contact[2:]}"])
            value = outbound(mid, shown, account=ACCOUNT, sender=sender, text="hello")
            sent = Sent(mid, contact, sender, valid=True, target=target, t_send=monotonic())
            key = contact.encode()
        self.sent[mid] = sent
        fut = await self._producer.send(self.settings.topics.outbound, orjson.dumps(value), key=key)
        fut.add_done_callback(lambda f, s=sent: _record_offset(s, f))
        self._futures.append((sent, fut))

    async def flush(self) -> int:
        """Wait for every produce to be acknowledged; return how many failed."""
        assert self._producer is not None
        flushed = await _bounded(self._producer.flush(), 180, f"{self.name}: flush")
        if not flushed:
            raise AssertionError(f"{self.name}: the workload's messages were not sent in 180s")
        await asyncio.gather(*(f for _, f in self._futures), return_exceptions=True)
        return sum(1 for s in self.sent.values() if s.failed)

    # watcher and collector

    async def _watch(self) -> None:
        while True:
            pending = [c for c in self.stop_sent if c not in self.effective]
            for c in pending:
                try:
                    entries = await self._index.entries_of(ACCOUNT, c)
                except (DncError, OSError, ConnectionError, TimeoutError):
                    break  # Redis down or paused: try again later
                except Exception:  # a restarting Redis says odd things
                    break
                if any(e.key.channel == "SMS" and e.key.sender == "acme" for e in entries):
                    self.effective[c] = monotonic()
            await asyncio.sleep(0.1)

    async def _collect(self) -> None:
        t = self.settings.topics
        kinds = {t.allowed: "allowed", t.blocked: "blocked", t.dead_letter: "dead_letter"}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = []
            for topic in kinds:
                tps += await topic_partitions(consumer, topic)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                try:
                    batch = await consumer.getmany(timeout_ms=200)
                except Exception:  # the broker may be restarting
                    await asyncio.sleep(0.2)
                    continue
                now = monotonic()
                self.collector_positions = {
                    f"{kinds[tp.topic]}:{tp.partition}": (
                        await consumer.position(tp),
                        consumer.last_stable_offset(tp),
                        consumer.highwater(tp),
                    )
                    for tp in tps
                }
                for tp, records in batch.items():
                    kind = kinds[tp.topic]
                    for r in records:
                        mid = message_id_of(kind, r.value, t.outbound)
                        if mid is not None and mid not in self.decided:
                            self.decided[mid] = (kind, now)
        finally:
            await consumer.stop()

    def undecided(self) -> list[str]:
        return [m for m, s in self.sent.items() if not s.failed and m not in self.decided]

    async def wait_decided(self, timeout: float) -> None:
        try:
            await eventually(
                lambda: not self.undecided(), timeout, "every outbound message to be decided"
            )
        except AssertionError as exc:
            # Where they are tells a stuck role from a stuck transaction or a lost record.
            sample = [
                (m, self.sent[m].partition, self.sent[m].offset, round(self.sent[m].t_send, 1))
                for m in self.undecided()[:8]
            ]
            raise AssertionError(
                f"{exc}: {len(self.undecided())} undecided, e.g. (id, partition, offset, "
                f"sent at): {sample}; collector positions: {self.collector_positions}"
            ) from None

    def decided_between(self, produced_after: float, seen_before: float) -> list[str]:
        """Messages sent after `produced_after` that were decided (seen on an output
        topic) before `seen_before`."""
        return [
            m
            for m, (_kind, seen) in self.decided.items()
            if (s := self.sent.get(m)) is not None
            and s.t_send > produced_after
            and seen < seen_before
        ]

    def first_decision_after(self, produced_after: float) -> float | None:
        times = [
            seen
            for m, (_k, seen) in self.decided.items()
            if (s := self.sent.get(m)) is not None and s.t_send > produced_after
        ]
        return min(times) if times else None

    async def resumed(self, since: float, timeout: float, what: str) -> float:
        """Wait until a message sent after `since` is decided; when that happened."""
        await eventually(lambda: self.first_decision_after(since) is not None, timeout, what)
        first = self.first_decision_after(since)
        assert first is not None
        return first

    # the count

    async def count(self, report: Report) -> Report:
        """Read every output from the beginning and fill in the report."""
        s, t = self.settings, self.settings.topics
        outputs: dict[str, list[str]] = defaultdict(list)
        confirmed: set[Any] = set()
        for topic, kind in ((t.allowed, "allowed"), (t.blocked, "blocked"),
                            (t.dead_letter, "dead_letter")):  # fmt: skip
            for r in await read_all(s, topic):
                mid = message_id_of(kind, r.value, t.outbound)
                if mid is not None:
                    outputs[mid].append(kind)
                elif kind == "allowed":
                    count_confirmation(report, r.value, confirmed)
        mine = {m: s_ for m, s_ in self.sent.items() if not s_.failed}
        report.messages = len(mine)
        report.produce_errors = len(self.sent) - len(mine)
        report.opt_outs = len(self.stop_sent)
        unknown = [m for m in outputs if m not in self.sent]
        report.extra["unknown_outputs"] = len(unknown)
        leaks: list[Sent] = []
        for mid, sent in mine.items():
            kinds = outputs.get(mid, [])
            if not kinds:
                report.lost += 1
                continue
            report.duplicated += len(kinds) - 1
            kind = kinds[0]
            report.allowed += kind == "allowed"
            report.blocked += kind == "blocked"
            report.dead_lettered += kind == "dead_letter"
            if (kind == "dead_letter") == sent.valid:
                report.misrouted += 1
            if kind == "blocked" and not sent.blockable:
                report.wrongly_blocked += 1
            effective = self.effective.get(sent.contact)
            if (
                kind == "allowed"
                and sent.blockable
                and effective is not None
                and sent.t_send > effective
            ):
                report.leaked += 1
                leaks.append(sent)
        # Clock-free: per target, by offset, nothing allowed after the first blocked.
        by_contact: dict[str, list[Sent]] = defaultdict(list)
        for sent in mine.values():
            if sent.blockable and sent.offset >= 0:
                by_contact[sent.contact].append(sent)
        for msgs in by_contact.values():
            msgs.sort(key=lambda x: (x.partition, x.offset))
            assert len({m.partition for m in msgs}) == 1
            seen_block = False
            for m in msgs:
                kind = (outputs.get(m.id) or ["?"])[0]
                if kind == "blocked":
                    seen_block = True
                elif kind == "allowed" and seen_block:
                    report.reopened += 1
        if leaks:
            report.extra["leaks_sample"] = [
                {
                    "id": x.id,
                    "sent_at": round(x.t_send - self.t0, 2),
                    "effective_at": round(self.effective[x.contact] - self.t0, 2),
                    "partition": x.partition,
                    "offset": x.offset,
                }
                for x in sorted(leaks, key=lambda x: x.t_send)[:10]
            ]
        await self._count_opt_outs(report)
        lat = sorted((self.effective[c] - self.stop_sent[c]) * 1000 for c in self.effective)
        if lat:
            report.effective_p50_ms = round(statistics.median(lat), 1)
            report.effective_max_ms = round(lat[-1], 1)
        return report

    async def _count_opt_outs(self, report: Report) -> None:
        s = self.settings
        # In the index: every opt-out, eventually (the index may be rebuilding).
        missing = await missing_in_index(s, self._index.redis_url, list(self.stop_sent))
        report.opt_outs_missing_in_index = len(missing)
        # In the changelog: exactly one add per opt-out.
        adds = await adds_in_changes(s)
        report.opt_outs_missing_in_changes = sum(1 for c in self.stop_sent if not adds[c])
        report.opt_out_changes_duplicated = sum(max(0, adds[c] - 1) for c in self.stop_sent)
        # In the commands: exactly one command per STOP (ingest processed it once).
        commands: Counter[str] = Counter()
        for r in await read_all(s, s.topics.commands):
            origin = orjson.loads(r.value).get("origin") or {}
            commands[str(origin.get("message_id"))] += 1
        report.opt_out_commands_duplicated = sum(
            max(0, commands[mo] - 1) for mo in self.stop_ids.values()
        )


async def missing_in_index(
    settings: Settings, redis_url: str, contacts: Sequence[str], timeout: float = 60
) -> list[str]:
    """The contacts without their acme SMS/ACME entry in the index, after waiting up to
    `timeout` for them (the index may be rebuilding)."""
    index = SingleIndex(settings.index, redis_url)
    await index.start()
    try:

        async def present(c: str) -> bool:
            entries = await index.entries_of(ACCOUNT, c)
            return any(e.key.channel == "SMS" and e.key.sender == "acme" for e in entries)

        deadline = monotonic() + timeout
        missing = list(contacts)
        while missing and monotonic() < deadline:
            with contextlib.suppress(DncError):
                missing = [c for c in missing if not await present(c)]
            if missing:
                await asyncio.sleep(0.2)
        return missing
    finally:
        await index.stop()


async def adds_in_changes(settings: Settings) -> Counter[str]:
    """Per contact: how often dnc.changes records an acme SMS/ACME entry (created; an add
    of an entry already there records nothing)."""
    adds: Counter[str] = Counter()
    for r in await read_all(settings, settings.topics.changes):
        if r.key is None or r.value is None:
            continue
        account, contact, channel, sender = orjson.loads(r.key)
        if (account, channel, sender) == (ACCOUNT, "SMS", "acme"):
            adds[contact] += 1
    return adds


def _record_offset(sent: Sent, fut: asyncio.Future[Any]) -> None:
    if fut.cancelled() or fut.exception() is not None:
        sent.failed = True
        return
    md = fut.result()
    sent.partition, sent.offset = md.partition, md.offset


async def prepare(settings: Settings) -> None:
    await ensure_topics(settings)


def log_dir(name: str) -> Path:
    path = ARTIFACTS / "faults" / name
    if path.exists():
        for f in path.iterdir():
            f.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- a scenario: roles + workload, faults in the middle, the count at the end ----------------


@dataclass
class Run:
    name: str
    settings: Settings
    roles: RoleSet
    load: Workload
    rng: random.Random
    report: Report


@contextlib.asynccontextmanager
async def scenario(
    name: str,
    kafka: str,
    *,
    roles_redis_url: str,
    watch_redis_url: str,
    planned_rounds: int,
    redis_timeout_s: float = 1.0,
    argv: dict[str, list[str]] | None = None,
    instances: int = 1,
    extra_roles: Sequence[str] = (),
    api: ApiSettings | None = None,
    opt_out_every_s: float = 0.5,
    rate: float = 80.0,
    decide_timeout_s: float = 180.0,
    seed: int | None = None,
    log_level: str = "INFO",
) -> AsyncIterator[Run]:
    """Start the roles (and ``extra_roles``, e.g. the api with the ``api`` settings) and the
    workload; the body injects the faults while traffic and opt-outs flow; afterwards wait
    until every message is decided, count, and record the report (also when the body or the
    count fails)."""
    from tests.kit import unique_settings

    if seed is None and os.environ.get("DNC_FAULTS_SEED"):
        seed = int(os.environ["DNC_FAULTS_SEED"])
    seed = seed if seed is not None else random.randrange(2**32)
    base = unique_settings(kafka, roles_redis_url)
    settings = base.model_copy(
        update={
            "index": base.index.model_copy(update={"redis_timeout_s": redis_timeout_s}),
            "log_level": os.environ.get("DNC_FAULTS_LOG_LEVEL", log_level),
            "api": api or base.api,
        }
    )
    await prepare(settings)
    started = monotonic()
    report = Report(name, planned_rounds)
    report.extra["seed"] = seed
    roles = RoleSet(settings, log_dir(name), (*ROLES, *extra_roles), argv=argv, instances=instances)
    load = Workload(settings, name, watch_redis_url=watch_redis_url, rate=rate, seed=seed)
    run = Run(name, settings, roles, load, random.Random(seed), report)
    roles.start()
    await load.start()
    try:
        first, rest = load.targets[:8], load.targets[8:]
        load.traffic(True)
        await load.opt_out(first)
        await load.wait_effective(first, 120)
        await eventually(lambda: len(load.decided) >= 20, 120, "the first decisions of the gate")
        spread = asyncio.create_task(load.opt_out_spread(rest, opt_out_every_s))
        yield run
        # The faults are over: the remaining opt-outs at once, then a little more traffic
        # so that every target gets messages after its opt-out.
        spread.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await spread
        await load.opt_out([c for c in rest if c not in load.stop_sent])
        await load.wait_effective(load.targets, 120)
        await asyncio.sleep(2.0)
        load.traffic(False)
        await load.flush()
        await load.wait_decided(decide_timeout_s)
        await load.count(report)
    finally:
        load.traffic(False)
        codes = await roles.stop()
        await load.close()
        report.kills = dict(roles.kills)
        report.unexpected_exits = len(roles.unexpected)
        report.extra["exit_codes"] = codes
        report.unclean_shutdowns = sum(1 for c in codes.values() if c != 0)
        if roles.unexpected:
            report.extra["exits"] = [
                {"role": e.role, "code": e.code, "log": e.tail[-1500:]} for e in roles.unexpected
            ]
        report.duration_s = round(monotonic() - started, 1)
        if load.events:
            report.extra["events"] = load.events
        RESULTS.append(report.as_dict())
        print(report.line())
        # The scenario's topics go with it: a broker killed in a later scenario recovers
        # every log it holds before it serves again, so leftovers would make each restart
        # of the suite slower than the last.
        try:
            await _bounded(delete_topics(settings), 30, f"{name}: dropping its topics")
        except Exception as exc:  # cleanup only: the scenario's own outcome stands
            print(f"[faults] {name}: its topics were not dropped: {exc!r}")


async def _bounded(aw: Awaitable[Any], seconds: float, what: str) -> bool:
    """Await ``aw`` for at most ``seconds``; False (and a line in the output) if it did
    not finish. Left running then, not awaited: see ``Workload.close``."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        print(f"[faults] {what}: did not finish in {seconds:.0f}s; left behind")
        return False
    task.result()
    return True
