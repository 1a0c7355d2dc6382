"""The list writer's catch-up (``replay.lua``) rebuilds exactly the index that the
command path (``apply.lua``) wrote, and keeps the shared-member counts of the gate's
lookup sets right."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import now_ms
from dnc.index import Index, make_index
from dnc.index.layout import Layout, entry_slot
from dnc.settings import IndexSettings, Settings
from tests.kit import drop_redis_keys, eventually, redis_client, redis_keys, running

pytestmark = pytest.mark.integration


# Fields and partitions do not depend on the bucket count or prefix, only on the keys.
_LAYOUT = Layout(IndexSettings())


def _commands(parts: int) -> list[tuple[int, Command]]:
    at = now_ms()
    day = 24 * 3600 * 1000
    out: list[tuple[int, Command]] = []

    def cmd(*ops: Op, ref: str | None = None, offset: int = 0) -> None:
        k = ops[0].key
        out.append(
            (
                _LAYOUT.partition(k.account, k.contact, parts),
                Command(list(ops), at + offset, ref=ref),
            )
        )

    a = EntryKey("acme", "441234567890", "SMS", "acme")
    cmd(Op("add", a, Source.MANUAL))
    cmd(Op("add", a._replace(channel=None, sender=None), Source.IMPORT), ref="imp-1")
    cmd(Op("add", a._replace(channel="VOICE"), Source.URL_OPT_OUT, at + 90 * day), offset=1)
    cmd(Op("add", a._replace(account="acme-eu"), Source.END_USER_MESSAGE), offset=2)
    cmd(Op("remove", a))  # one entry of a contact that keeps others
    b = EntryKey("acme", "441234567891", "SMS", None)
    cmd(Op("add", b, Source.END_USER_MESSAGE), Op("remove", b))  # the contact leaves
    c = EntryKey("acme", "jane@example.com", "EMAIL", "news@acme.com")
    cmd(Op("add", c, Source.URL_OPT_OUT))
    cmd(Op("remove_if_source", c, Source.END_USER_MESSAGE))  # kept: another source
    cmd(Op("remove", c))
    cmd(Op("add", c, Source.MANUAL), offset=3)  # back again
    for i in range(300):
        k = EntryKey(("acme", "globex")[i % 2], f"4477{i:08d}", ("SMS", None)[i % 3 == 0], None)
        cmd(Op("add", k, Source.IMPORT), ref="imp-2", offset=i)
        if i % 7 == 0:
            cmd(Op("remove", k))
    return out


async def _ends(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        n = settings.topic_layout.list_partitions
        tps = [TopicPartition(topic, p) for p in range(n)]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _applied_up_to_end(settings: Settings, index: Index) -> bool:
    meta = await index.meta()
    ends = await _ends(settings, settings.topics.changes)
    return meta.complete() and all(meta.changes.get(p, -1) >= e for p, e in ends.items())


async def _snapshot(settings: Settings) -> dict[str, Any]:
    """Every contact hash, lookup set and shared-member count under the prefix (on every
    node of a cluster)."""
    out: dict[str, Any] = {}
    async with redis_client(settings) as client:
        for raw in await redis_keys(settings):
            key = raw.decode()
            kind = key.split(":")[1]
            if kind in ("m", "gc"):
                out[key] = await client.hgetall(key)
            elif kind == "g":
                out[key] = await client.smembers(key)
    return out


async def test_rebuild_reproduces_what_the_commands_wrote(settings: Settings) -> None:
    index = make_index(settings)
    await index.start()
    try:
        async with running(settings, "listwriter"):
            await _produce_commands(settings, _commands(settings.topic_layout.list_partitions))
            await eventually(
                lambda: _all_commands_applied(settings, index), 30, "the commands to be applied"
            )
        written = await _snapshot(settings)
        assert any(":m:" in k for k in written) and any(":g:" in k for k in written)

        await drop_redis_keys(settings)  # as if Redis restarted empty
        async with running(settings, "listwriter"):
            await eventually(
                lambda: _applied_up_to_end(settings, index), 30, "the rebuild from the changelog"
            )
        assert await _snapshot(settings) == written
        entries = await index.entries_of("acme", "441234567890")
        assert {(e.key.channel, e.key.sender) for e in entries} == {(None, None), ("VOICE", "acme")}
        assert [e.expires_at is not None for e in entries if e.key.channel == "VOICE"] == [True]
    finally:
        await index.stop()


async def _produce_commands(settings: Settings, commands: list[tuple[int, Command]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for partition, cmd in commands:
            k = cmd.ops[0].key
            await producer.send(
                settings.topics.commands,
                cmd.to_json(),
                key=_LAYOUT.field(k.account, k.contact),
                partition=partition,
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _all_commands_applied(settings: Settings, index: Index) -> bool:
    meta = await index.meta()
    ends = await _ends(settings, settings.topics.commands)
    done = all(meta.commands.get(p, 0) >= e for p, e in ends.items())
    return done and await _applied_up_to_end(settings, index)


async def test_replay_counts_contacts_that_share_a_lookup_member(settings: Settings) -> None:
    """Two contacts of one bucket with the same 32-bit member: removing one must leave the
    member in the lookup set for the other, removing both must clear it."""
    index = make_index(settings)
    await index.start()
    try:
        epoch = await index.init(settings.topic_layout.list_partitions)
        slot = entry_slot("SMS", None)
        rec = slot + "I\x1f1795671087123\x1f"
        f1, f2 = index.field("acme", "441234567890"), index.field("acme", "441234567891")
        client = index.redis
        g, gc = f"{index.prefix}:g:{{7}}", f"{index.prefix}:gc:{{7}}"

        async def replay(expected: int | None, new: int, *records: Any) -> None:
            await index.replay(
                epoch=epoch,
                partition=0,
                expected=expected,
                new_offset=new,
                records=list(records),
                now=now_ms(),
            )

        await replay(None, 1, 7, 42, f1, slot, rec, 7, 42, f2, slot, rec)
        assert await client.smembers(g) == {b"42"} and await client.hgetall(gc) == {b"42": b"1"}
        await replay(1, 2, 7, 42, f1, slot, "")
        assert await client.smembers(g) == {b"42"} and await client.hgetall(gc) == {}
        await replay(2, 3, 7, 42, f2, slot, "")
        assert await client.smembers(g) == set()
        assert await client.hgetall(f"{index.prefix}:m:{{7}}") == {}
        meta = await index.meta()
        assert meta.changes[0] == 3
    finally:
        await index.stop()
