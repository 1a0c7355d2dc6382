"""Contract additions made by the list writer: opt-out confirmations, expiry, erasure,
privacy mode. Real ingest, list writer and gate."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from dnc.domain.contactids import ContactIds
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import now_ms
from dnc.index import make_index
from dnc.index.layout import Layout, list_partition
from dnc.settings import ExpirySettings, PrivacySettings, Settings
from tests.integration.test_rules import changes, gate_outputs
from tests.kit import inbound, is_confirmation, outbound, produce, reading, running

pytestmark = pytest.mark.integration

PHONE = "441234567890"


async def confirmations(settings: Settings, quiet: float = 1.5) -> list[dict[str, Any]]:
    async with reading(settings, settings.topics.allowed) as (allowed,):
        await allowed.settle(quiet)
        return [orjson.loads(r.value) for r in allowed.records if is_confirmation(r)]


async def test_one_confirmation_per_opt_out_in_the_keywords_language(settings: Settings) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(settings, t.inbound_messages, inbound("mo-1", "+44 1234 567890", "Baja"))
        await changes(settings, 1)
        # The same person again: no new opt-out, no second confirmation.
        await produce(settings, t.inbound_messages, inbound("mo-2", PHONE, "STOP"))
        sent = await confirmations(settings)
        # Opt in, then out again: a new opt-out, a new confirmation.
        await produce(
            settings,
            t.inbound_messages,
            inbound("mo-3", PHONE, "START"),
            inbound("mo-4", PHONE, "ARRÊT"),
            key=PHONE.encode(),  # one person's messages in order, as connectors key them
        )
        await changes(settings, 3)
        later = await confirmations(settings)
        allowed, blocked, _ = await gate_outputs(settings, outbound("m", PHONE))
    assert len(sent) == 1
    first = sent[0]
    assert (first["in_reply_to"], first["language"]) == ("mo-1", "es")
    assert (first["sender"], first["destination"]) == ("ACME", "+44 1234 567890")  # as it came
    assert first["type"] == "opt_out_confirmation" and "START" in first["text"]
    assert sorted((c["in_reply_to"], c["language"]) for c in later) == [
        ("mo-1", "es"),
        ("mo-4", "fr"),
    ]
    assert allowed == [] and len(blocked) == 1  # the confirmation bypassed nothing else


async def test_a_temporary_entry_stops_blocking_and_leaves_the_list(
    make_settings: Any,
) -> None:
    settings: Settings = await make_settings(
        expiry=ExpirySettings(ttl_days={"CHANNEL_SIGNAL": 3 / 86400}, sweep_interval_s=0.5)
    )
    t = settings.topics
    report = {
        "report_id": "r-1",
        "account": "acme",
        "channel": "SMS",
        "sender": "ACME",
        "destination": PHONE,
        "provider": "twilio",
        "error_code": 21610,
    }
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(settings, t.delivery_reports, report)
        (entry,) = await changes(settings, 1)
        assert entry["source"] == "CHANNEL_SIGNAL" and entry["expires_at"]  # type: ignore[index]
        _, blocked, _ = await gate_outputs(settings, outbound("during", PHONE))
        assert len(blocked) == 1
        async with reading(settings, t.changes, t.history) as (chg, history):
            await chg.wait_for(2, timeout=30)  # the sweep's tombstone
            await history.wait_for(2, timeout=30)
        allowed, _, _ = await gate_outputs(settings, outbound("after", PHONE))
    assert chg.values()[1] is None
    assert [h["action"] for h in history.values()] == ["add", "expire"]
    assert history.values()[1]["cause"] == {"kind": "expiry"}
    assert allowed == ["after"]


async def test_erasure_keeps_the_suppression_without_the_clear_contact(
    settings: Settings,
) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(settings, t.inbound_messages, inbound("mo-1", PHONE, "STOP"))
        await changes(settings, 1)
        async with reading(settings, t.history) as (history,):
            await history.wait_for(1)
            keys = [orjson.loads(r.key) for r in history.records]
        # What the API sends for an erasure (see routes): the person's history keys.
        layout = Layout.from_settings(settings)
        erase = Command(
            [Op("erase", EntryKey("acme", PHONE, None, None), history_keys=keys)],
            now_ms(),
            {"kind": "erasure", "key": "test"},
            "erase-1",
        )
        await _submit(settings, layout, erase)
        values = await changes(settings, 3)
        _, blocked, _ = await gate_outputs(settings, outbound("m", PHONE))
        async with reading(settings, t.history) as (history,):
            await history.settle(1.0)
    token = ContactIds([]).token(PHONE)
    assert values[1] is None  # the clear key is tombstoned
    moved = values[2]
    assert isinstance(moved, dict) and moved["contact"] == token and moved["origin"] is None
    assert moved["source"] == "END_USER_MESSAGE"
    assert len(blocked) == 1  # the suppression stays
    live = [r for r in history.records if r.value is not None]
    tombstoned = {r.key for r in history.records if r.value is None}
    assert tombstoned == {orjson.dumps(k) for k in keys}
    assert [orjson.loads(r.value)["action"] for r in live if r.key not in tombstoned] == ["erase"]
    assert PHONE.encode() not in b"".join(r.value for r in live[-1:])


async def test_privacy_mode_keeps_contacts_out_of_the_list(make_settings: Any) -> None:
    keys = ["p" * 40]
    settings: Settings = await make_settings(privacy=PrivacySettings(enabled=True, keys=keys))
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(settings, t.inbound_messages, inbound("mo-1", "+44 1234 567890", "STOP"))
        await produce(
            settings,
            t.journey_actions,
            {
                "event_id": "j-1",
                "action": "add",
                "accounts": ["acme"],
                "contact": "jane@example.com",
                "channel": "EMAIL",
            },
        )
        values = await changes(settings, 2)
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("a", PHONE),
            outbound("b", "Jane@Example.com", channel="EMAIL"),
            outbound("c", "441234567891"),
        )
        async with reading(settings, t.changes, t.history, t.commands) as readers:
            stored = b""
            for r in readers:
                await r.settle(1.0)
                stored += b"".join(
                    (rec.key or b"") + (rec.value or b"")
                    for rec in r.records
                    if b"opt_out_confirmation" not in (rec.value or b"")
                )
    ids = ContactIds(keys)
    assert {v["contact"] for v in values} == {ids.token(PHONE), ids.token("jane@example.com")}  # type: ignore[index]
    assert PHONE.encode() not in stored and b"jane@example.com" not in stored
    assert sorted(b["message"]["message_id"] for b in blocked) == ["a", "b"]
    assert allowed == ["c"]
    async with make_index(settings) as index:  # the check works by id
        assert [e.source for e in await index.entries_of("acme", PHONE)] == [
            Source.END_USER_MESSAGE
        ]


async def _submit(settings: Settings, layout: Layout, command: Command) -> None:
    k = command.ops[0].key
    field = layout.field(k.account, k.contact)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.commands,
            command.to_json(),
            key=field,
            partition=list_partition(field, settings.topic_layout.list_partitions),
        )
    finally:
        await producer.stop()
