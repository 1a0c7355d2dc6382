"""``dnc status``: what an operator needs to know in a few lines.

Each role's consumer group (state, members, lag per topic: last stable offset − committed
offset), the index (complete, layout, per changelog partition the offset Redis has
applied against the changelog's end, and on a Redis Cluster each master's own), and
whether a gate would forward a message now, and if not why (the reasons of the gates'
``dnc_fail_closed`` metric, and "no gate running"). With the PostgreSQL list view, also what the
view writers have applied of ``dnc.changes`` and ``dnc.history`` (the offsets they store with
the rows). Read-only: it joins no group and writes nothing.

The changelog's ends are read *before* the index's offsets, so an index that keeps up
shows a lag of a transaction marker or two at most; ``max_index_lag`` is the lag that
counts as behind.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql

from dnc.errors import DncError
from dnc.index import make_index
from dnc.kafka import clients as kafka
from dnc.kafka.failures import describe
from dnc.settings import Settings

STEP_TIMEOUT_S = 10.0


@dataclass
class GroupStatus:
    role: str
    group: str
    state: str = "unknown"
    members: list[str] = field(default_factory=list)  # client host of each member
    lag: dict[str, int] = field(default_factory=dict)  # by topic
    partitions: dict[str, dict[int, int]] = field(default_factory=dict)  # topic → p → lag
    error: str | None = None

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


@dataclass
class IndexStatus:
    prefix: str
    reachable: bool = False
    error: str | None = None
    complete: bool = False
    epoch: str | None = None
    layout_ok: bool = True
    # changelog partition → {"applied": offset in Redis, "end": changelog end, "lag": …}
    partitions: dict[int, dict[str, int | None]] = field(default_factory=dict)
    # Redis Cluster: master tag → changelog partition → applied offset
    nodes: dict[str, dict[int, int]] = field(default_factory=dict)

    @property
    def max_lag(self) -> int:
        return max((v["lag"] or 0 for v in self.partitions.values()), default=0)


@dataclass
class ViewStatus:
    """The PostgreSQL list view (``DNC_VIEW__BACKEND=postgres``): what ``dnc viewwriter``
    has applied, per log and partition, against the log's end."""

    schema: str
    reachable: bool = False
    error: str | None = None
    # "changes" / "history" → partition → {"applied": …, "end": …, "lag": …}
    logs: dict[str, dict[int, dict[str, int | None]]] = field(default_factory=dict)

    @property
    def max_lag(self) -> int:
        lags = [v["lag"] or 0 for parts in self.logs.values() for v in parts.values()]
        return max(lags, default=0)


@dataclass
class Status:
    kafka: str = "ok"
    redis: str = "ok"
    groups: list[GroupStatus] = field(default_factory=list)
    index: IndexStatus | None = None
    view: ViewStatus | None = None  # with the PostgreSQL list view only
    gate_forwards: bool = False
    why_not: list[str] = field(default_factory=list)  # fail-closed reasons, and more
    attention: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        for g, raw in zip(self.groups, out["groups"], strict=True):
            raw["total_lag"] = g.total_lag
        if self.index is not None:
            out["index"]["max_lag"] = self.index.max_lag
        if self.view is not None:
            out["view"]["max_lag"] = self.view.max_lag
        out["ok"] = not self.attention
        return out


ROLE_TOPICS = ("ingest", "listwriter", "gate")


def role_topics(settings: Settings) -> dict[str, list[str]]:
    t = settings.topics
    return {
        "ingest": [t.inbound_messages, t.url_unsubscribes, t.journey_actions, t.delivery_reports],
        "listwriter": [t.commands],
        "gate": [t.outbound],
    }


async def collect(settings: Settings, *, max_lag: int, max_index_lag: int) -> Status:
    status = Status()
    ends: dict[TopicPartition, int] | None = None
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            ends = await _ends(settings)
            status.groups = await _groups(settings, ends)
    except Exception as exc:  # whatever it is, the answer is "Kafka unreachable"
        status.kafka = f"unreachable ({describe(exc)})"
    status.index = await _index(settings, ends)
    if not status.index.reachable:
        status.redis = f"unreachable ({status.index.error})"
    if settings.view.backend == "postgres":
        status.view = await asyncio.to_thread(_view, settings, ends)
    _judge(status, max_lag=max_lag, max_index_lag=max_index_lag)
    return status


async def _ends(settings: Settings) -> dict[TopicPartition, int]:
    """The last stable offset of every partition the roles read, and of the changelog."""
    names = [n for topics in role_topics(settings).values() for n in topics]
    names.append(settings.topics.changes)
    if settings.view.backend == "postgres":
        names.append(settings.topics.history)
    counts = await kafka.topic_partitions(settings, *names, wait_s=2.0)
    consumer = kafka.make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(n, p) for n in names for p in range(counts[n])]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def _groups(settings: Settings, ends: dict[TopicPartition, int]) -> list[GroupStatus]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        out = []
        topics = role_topics(settings)
        for role in ROLE_TOPICS:
            g = GroupStatus(role, settings.group_id(role))
            out.append(g)
            for response in await admin.describe_consumer_groups([g.group]):
                for d in response.to_object()["groups"]:
                    g.state = d["state"] or "Dead"
                    g.members = sorted(m["client_host"] for m in d["members"])
            committed = await admin.list_consumer_group_offsets(g.group)
            for tp, end in ends.items():
                if tp.topic not in topics[role]:
                    continue
                at = committed.get(tp)
                # A group that never committed starts at the beginning: all of it is lag.
                lag = end - (at.offset if at is not None and at.offset >= 0 else 0)
                g.partitions.setdefault(tp.topic, {})[tp.partition] = max(lag, 0)
                g.lag[tp.topic] = g.lag.get(tp.topic, 0) + max(lag, 0)
        return out
    finally:
        await admin.close()


async def _index(settings: Settings, ends: dict[TopicPartition, int] | None) -> IndexStatus:
    index = make_index(settings)
    out = IndexStatus(index.prefix)
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            await index.start()
            try:
                meta = await index.meta()
            finally:
                await index.stop()
    except (DncError, OSError, TimeoutError) as exc:
        out.error = describe(exc)
        return out
    out.reachable = True
    out.complete = meta.complete()
    out.epoch = meta.epoch
    out.layout_ok = meta.layout is None or meta.layout == index.layout
    changelog = {
        tp.partition: end for tp, end in (ends or {}).items() if tp.topic == settings.topics.changes
    }
    for p in sorted(set(changelog) | set(meta.changes)):
        applied, end = meta.changes.get(p), changelog.get(p)
        lag = None if end is None else end - (applied or 0)
        out.partitions[p] = {"applied": applied, "end": end, "lag": lag}
    for tag, node in sorted(meta.nodes.items()):
        out.nodes[tag] = dict(sorted(node.changes.items()))
    return out


def _view(settings: Settings, ends: dict[TopicPartition, int] | None) -> ViewStatus:
    """The offsets the view writers stored with the rows, read in one query."""
    out = ViewStatus(settings.view_schema())
    query = sql.SQL("SELECT log, part, next FROM {}.offsets").format(sql.Identifier(out.schema))
    try:
        with psycopg.connect(
            settings.view.postgres_url.get_secret_value(), connect_timeout=int(STEP_TIMEOUT_S)
        ) as conn:
            rows = conn.execute(query).fetchall()
    except psycopg.errors.UndefinedTable:
        out.error = "no list view yet: dnc viewwriter creates it when it starts"
        return out
    except psycopg.Error as exc:
        out.error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return out
    out.reachable = True
    topics = {"changes": settings.topics.changes, "history": settings.topics.history}
    applied = {(str(log), int(p)): int(n) for log, p, n in rows}
    for log, topic in topics.items():
        log_ends = {tp.partition: e for tp, e in (ends or {}).items() if tp.topic == topic}
        parts = sorted(set(log_ends) | {p for g, p in applied if g == log})
        out.logs[log] = {}
        for p in parts:
            done, end = applied.get((log, p)), log_ends.get(p)
            lag = None if end is None else end - (done or 0)
            out.logs[log][p] = {"applied": done, "end": end, "lag": lag}
    return out


def _judge(status: Status, *, max_lag: int, max_index_lag: int) -> None:
    why, attention = status.why_not, status.attention
    index = status.index
    assert index is not None
    if status.kafka != "ok":
        why.append("kafka_unreachable")
    if not index.reachable:
        why.append("redis_unreachable")
    elif not index.layout_ok:
        why.append("index_layout_mismatch (check DNC_INDEX__BUCKETS and DNC_PRIVACY__KEYS)")
    elif not index.complete:
        why.append("index_incomplete")
    elif index.max_lag > max_index_lag:
        why.append(f"index_behind ({index.max_lag} changelog records not applied)")
    gate = next((g for g in status.groups if g.role == "gate"), None)
    if gate is not None and not gate.members:
        why.append("no_gate_running")
    status.gate_forwards = not why
    if why:
        attention.append("the gate would not forward now: " + ", ".join(why))
    for g in status.groups:
        if not g.members and g.role != "gate":
            attention.append(f"{g.role}: no instance in group {g.group}")
        if g.total_lag > max_lag:
            attention.append(f"{g.role}: {g.total_lag} records waiting (over {max_lag})")
    view = status.view
    if view is not None and not view.reachable:
        attention.append(f"list view (PostgreSQL): {view.error}")
    elif view is not None and view.max_lag > max_index_lag:
        attention.append(
            f"list view (PostgreSQL): {view.max_lag} records not applied in a partition: "
            "is dnc viewwriter running?"
        )


def render(status: Status) -> str:
    lines = [f"kafka   {status.kafka}", f"redis   {status.redis}"]
    if status.groups:
        lines.append("consumer groups")
        for g in status.groups:
            members = f"{len(g.members)} member{'s' if len(g.members) != 1 else ''}"
            hosts = f" ({', '.join(g.members)})" if g.members else ""
            lines.append(
                f"  {g.role:10} {g.group:28} {g.state:12} {members}{hosts}  lag {g.total_lag}"
            )
            for topic, lag in sorted(g.lag.items()):
                per = " ".join(f"{p}:{n}" for p, n in sorted(g.partitions[topic].items()))
                lines.append(f"    {topic}: {lag}  [{per}]")
    index = status.index
    if index is not None and index.reachable:
        state = "complete" if index.complete else "INCOMPLETE"
        layout = "" if index.layout_ok else ", LAYOUT MISMATCH"
        lines.append(f"index   prefix {index.prefix}: {state}{layout}, epoch {index.epoch}")
        for p, v in index.partitions.items():
            lines.append(
                f"  changelog partition {p}: applied {v['applied']} of {v['end']} (lag {v['lag']})"
            )
        for tag, offsets in index.nodes.items():
            per = " ".join(f"{p}:{o}" for p, o in offsets.items())
            lines.append(f"  master {tag}: {per}")
    view = status.view
    if view is not None:
        state = "reachable" if view.reachable else f"NOT READABLE ({view.error})"
        lines.append(f"view    PostgreSQL schema {view.schema}: {state}")
        for log, parts in view.logs.items():
            per = " ".join(f"{p}:{v['lag']}" for p, v in parts.items())
            lag = sum(v["lag"] or 0 for v in parts.values())
            lines.append(f"  {log}: lag {lag}  [{per}]")
    if status.gate_forwards:
        lines.append("gate    forwards now")
    else:
        lines.append(f"gate    would NOT forward now: {', '.join(status.why_not)}")
    if status.attention:
        lines.append("attention:")
        lines += [f"  - {a}" for a in status.attention]
    else:
        lines.append("all well")
    return "\n".join(lines)
