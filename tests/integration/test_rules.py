"""Every rule of the contract, end to end: events on the input topics, real ingest,
list writer and gate, and what comes out of the gate."""

from __future__ import annotations

import shutil
import subprocess

import orjson
import pytest

from dnc.domain.unsubscribe import TokenSigner, UnsubscribeClaims
from dnc.index import make_index
from dnc.settings import Settings
from tests.kit import eventually, ids, inbound, outbound, produce, reading, running

pytestmark = pytest.mark.integration

PHONE = "441234567890"


async def gate_outputs(
    settings: Settings,
    *messages: dict[str, object],
) -> tuple[list[str], list[dict[str, object]], list[dict[str, object]]]:
    """Produce outbound messages; return what the gate made of *these* messages:
    (allowed ids, blocked values, dead-letter values)."""
    t = settings.topics
    mine = {m["message_id"] for m in messages}

    def of(values: list[dict[str, object]], *path: str) -> list[dict[str, object]]:
        out = []
        for v in values:
            inner = v
            for p in path:
                inner = orjson.loads(inner[p]) if p == "value" else inner[p]  # type: ignore[index]
            if isinstance(inner, dict) and inner.get("message_id") in mine:
                out.append(v)
        return out

    async with reading(settings, t.allowed, t.blocked, t.dead_letter) as (allowed, blocked, dlq):

        def gate_dlq() -> list[dict[str, object]]:
            return [v for v in dlq.values() if v["topic"] == t.outbound]

        await produce(settings, t.outbound, *messages)

        async def all_decided() -> bool:
            for r in (allowed, blocked, dlq):
                await r.poll(0.1)
            done = (
                len(of(allowed.values()))
                + len(of(blocked.values(), "message"))
                + len(of(gate_dlq(), "value"))
            )
            return done >= len(messages)

        await eventually(all_decided, 30, f"the gate to decide {len(messages)} messages")
        await allowed.settle(0.3)
        return (ids(of(allowed.values())), of(blocked.values(), "message"), of(gate_dlq(), "value"))


async def changes(settings: Settings, n: int) -> list[object]:
    """Wait for n changelog records *and* for the index to have applied them (effective
    at the gate), then return the records' values."""
    async with reading(settings, settings.topics.changes) as (r,):
        await r.wait_for(n)
        await r.settle(0.5)
        needed: dict[int, int] = {}
        for rec in r.records:
            needed[rec.partition] = max(needed.get(rec.partition, 0), rec.offset + 1)
        async with make_index(settings) as index:

            async def applied() -> bool:
                meta = await index.meta()
                return all(meta.changes.get(p, 0) >= o for p, o in needed.items())

            await eventually(applied, timeout=30, what="the index to apply the changes")
        return r.values()


async def test_stop_blocks_that_sender_only(settings: Settings) -> None:
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings, settings.topics.inbound_messages, inbound("mo-1", "+44 1234 567890", "Stop")
        )
        await changes(settings, 1)
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", PHONE, sender="OTHER"),
            outbound("m-3", PHONE, sender="acme "),
            outbound("m-4", PHONE, channel="VIBER"),
        )
    assert sorted(allowed) == ["m-2", "m-4"]
    assert sorted(ids(b["message"] for b in blocked)) == ["m-1", "m-3"]
    entry = blocked[0]["entry"]
    assert entry["contact"] == PHONE and entry["channel"] == "SMS"
    assert entry["source"] == "END_USER_MESSAGE" and entry["sender"] == "acme"
    assert blocked[0]["reason"] == "DO_NOT_CONTACT"


async def test_stop_produced_by_a_foreign_client(settings: Settings) -> None:
    """The STOP is produced by Debian's kcat (librdkafka), not by our code."""
    assert shutil.which("kcat"), "kcat is installed by `make test` (Debian package kcat)"
    line = orjson.dumps(inbound("mo-kcat", "+44 1234 567890", "STOP")).decode()
    async with running(settings, "ingest", "listwriter", "gate"):
        subprocess.run(
            ["kcat", "-P", "-b", settings.kafka_bootstrap, "-t", settings.topics.inbound_messages],
            input=line.encode(),
            check=True,
        )
        await changes(settings, 1)
        allowed, blocked, _ = await gate_outputs(
            settings, outbound("m-1", PHONE, sender="ACME"), outbound("m-2", PHONE, sender="OTHER")
        )
    assert allowed == ["m-2"] and ids(b["message"] for b in blocked) == ["m-1"]


async def test_stopall_blocks_every_sender_on_that_channel(settings: Settings) -> None:
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings, settings.topics.inbound_messages, inbound("mo-1", PHONE, " stop all! ")
        )
        await changes(settings, 1)
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("a", PHONE, sender="ACME"),
            outbound("b", PHONE, sender="12345"),
            outbound("c", PHONE, channel="WHATSAPP"),
            outbound("d", "441234567891"),
            outbound("e", PHONE, account="acme-eu"),
        )
    assert sorted(allowed) == ["c", "d", "e"]
    assert blocked[0]["entry"]["sender"] is None


async def test_start_removes_only_the_persons_own_opt_outs(settings: Settings) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings,
            t.inbound_messages,
            inbound("mo-1", PHONE, "STOP"),
            inbound("mo-2", PHONE, "STOPALL"),
        )
        # The same contact blocked on VOICE by a journey: START on SMS must not touch it.
        await produce(
            settings,
            t.journey_actions,
            {
                "event_id": "j-1",
                "action": "add",
                "accounts": ["acme"],
                "contact": PHONE,
                "channel": "VOICE",
                "sender": None,
                "journey_id": "flow",
            },
        )
        await changes(settings, 3)
        await produce(settings, t.inbound_messages, inbound("mo-3", PHONE, "start"))
        values = await changes(settings, 5)
        allowed, blocked, _ = await gate_outputs(
            settings, outbound("sms", PHONE), outbound("voice", PHONE, channel="VOICE")
        )
    assert [v for v in values if v is None] == [None, None]  # both SMS entries removed
    assert allowed == ["sms"]
    assert blocked[0]["entry"]["source"] == "CAMPAIGN_ACTION"


async def test_start_keeps_entries_added_by_hand_or_journey(settings: Settings) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings,
            t.journey_actions,
            {
                "event_id": "j-1",
                "action": "add",
                "accounts": ["acme"],
                "contact": PHONE,
                "channel": "SMS",
                "sender": "ACME",
                "journey_id": "flow",
            },
        )
        await changes(settings, 1)
        await produce(
            settings,
            t.inbound_messages,
            inbound("mo-1", PHONE, "STOP"),
            inbound("mo-2", PHONE, "UNSTOP"),
        )
        await changes(settings, 1)
        allowed, blocked, _ = await gate_outputs(settings, outbound("m", PHONE))
    assert allowed == []
    assert blocked[0]["entry"]["source"] == "CAMPAIGN_ACTION"  # the first source stays


async def test_other_text_changes_nothing(settings: Settings) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings,
            t.inbound_messages,
            inbound("mo-1", PHONE, "stop sending me this"),
            inbound("mo-2", PHONE, "Hello"),
            inbound("mo-3", PHONE, "STOPPING"),
        )
        async with reading(settings, t.changes, t.dead_letter) as (chg, dlq):
            await chg.settle(2.0)
            assert chg.records == [] and dlq.records == []
        allowed, _, _ = await gate_outputs(settings, outbound("m", PHONE))
    assert allowed == ["m"]


async def test_keywords_in_other_languages_and_unicode_tricks(settings: Settings) -> None:
    t = settings.topics
    numbers = [f"4412345678{i:02d}" for i in range(5)]
    texts = [
        "ARRÊT",
        "baja.",
        "S\u200bTOP",
        "ＳＴＯＰ",
        "\u0405TOP",
    ]  # zero-width, full-width, Cyrillic Ѕ
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings,
            t.inbound_messages,
            *[
                inbound(f"mo-{i}", n, text)
                for i, (n, text) in enumerate(zip(numbers, texts, strict=True))
            ],
        )
        await changes(settings, len(numbers))
        allowed, blocked, _ = await gate_outputs(settings, *[outbound(n, n) for n in numbers])
    assert allowed == [] and len(blocked) == len(numbers)


async def test_adding_an_existing_entry_keeps_first_source_and_time(settings: Settings) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(settings, t.inbound_messages, inbound("mo-1", PHONE, "STOP"))
        first = await changes(settings, 1)
        await produce(
            settings,
            t.journey_actions,
            {
                "event_id": "j-1",
                "action": "add",
                "accounts": ["acme"],
                "contact": PHONE,
                "channel": "SMS",
                "sender": "acme",
                "journey_id": "flow",
            },
        )
        async with reading(settings, t.changes) as (chg,):
            await chg.settle(2.0)
            assert len(chg.records) == 1  # no second change record
        _, blocked, _ = await gate_outputs(settings, outbound("m", PHONE))
    assert blocked[0]["entry"]["added_at"] == first[0]["added_at"]  # type: ignore[index]
    assert blocked[0]["entry"]["source"] == "END_USER_MESSAGE"


async def test_journey_add_and_remove_for_several_accounts(settings: Settings) -> None:
    t = settings.topics
    action = {
        "event_id": "j-1",
        "action": "add",
        "accounts": ["acme", "acme-eu"],
        "contact": PHONE,
        "channel": "WHATSAPP",
        "sender": None,
        "journey_id": "welcome",
    }
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(settings, t.journey_actions, action)
        await changes(settings, 2)
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("a", PHONE, channel="WHATSAPP"),
            outbound("b", PHONE, channel="WHATSAPP", account="acme-eu"),
            outbound("c", PHONE, channel="WHATSAPP", account="globex"),
            outbound("d", PHONE, channel="SMS"),
        )
        assert sorted(allowed) == ["c", "d"] and len(blocked) == 2
        await produce(
            settings,
            t.journey_actions,
            {**action, "event_id": "j-2", "action": "remove", "accounts": ["acme"]},
        )
        await changes(settings, 3)
        allowed, _, _ = await gate_outputs(
            settings,
            outbound("e", PHONE, channel="WHATSAPP"),
            outbound("f", PHONE, channel="WHATSAPP", account="acme-eu"),
        )
    assert allowed == ["e"]


async def test_url_unsubscribe_with_fields_and_with_tokens(make_settings: object) -> None:
    key = "k" * 40
    settings: Settings = await make_settings(api={"unsubscribe_keys": [key]})  # type: ignore[operator]
    t = settings.topics
    signer = TokenSigner([key])
    claims = UnsubscribeClaims("acme", "Jane@Example.com", "EMAIL", "news@acme.com", "c-9", 2**50)
    token = signer.sign(claims)
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings,
            t.url_unsubscribes,
            {
                "event_id": "u-1",
                "account": "acme",
                "contact": "bob@example.com",
                "channel": None,
                "sender": None,
                "campaign_id": "c-1",
            },
            {"event_id": "u-2", "token": token},
            {"event_id": "u-3", "token": tampered},
        )
        await changes(settings, 2)
        async with reading(settings, t.dead_letter) as (dlq,):
            await dlq.wait_for(1)
            assert "tampered" in dlq.values()[0]["error"]
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("bob", "BOB@example.com", channel="EMAIL", sender="x@acme.com"),
            outbound("jane", "jane@example.com", channel="EMAIL", sender="news@acme.com"),
            outbound("jane2", "jane@example.com", channel="EMAIL", sender="promo@acme.com"),
        )
    assert allowed == ["jane2"]
    assert {b["entry"]["source"] for b in blocked} == {"URL_OPT_OUT"}


async def test_invalid_opt_out_events_are_dead_lettered_and_consumption_continues(
    settings: Settings,
) -> None:
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings,
            t.inbound_messages,
            b"\xff\xfenot json",
            {
                "message_id": "x",
                "account": "acme",
                "channel": "SMS",
                "from": "12ab",
                "to": "ACME",
                "text": "STOP",
            },
            inbound("ok", PHONE, "STOP"),
        )
        await produce(
            settings,
            t.journey_actions,
            {
                "event_id": "j-1",
                "action": "add",
                "accounts": ["acme"],
                "contact": "jane@example.com",
                "channel": "SMS",
            },
            {"event_id": "j-2", "action": "explode", "accounts": ["acme"], "contact": PHONE},
        )
        async with reading(settings, t.dead_letter) as (dlq,):
            await dlq.wait_for(4)
            errors = sorted(v["error"] for v in dlq.values())
        await changes(settings, 1)  # the valid STOP after the garbage still went through
    assert any(e.startswith("value: is not valid JSON") for e in errors)
    assert "from: '12ab' is not a phone number or e-mail address" in errors
    assert any(e.startswith("channel:") and "choose Email" in e for e in errors)
    assert any(e.startswith("action:") for e in errors)
    raw = next(v for v in await _dlq_values(settings) if v["value_encoding"] == "base64")
    assert raw["topic"] == t.inbound_messages and raw["offset"] == 0


async def _dlq_values(settings: Settings) -> list[dict[str, object]]:
    async with reading(settings, settings.topics.dead_letter) as (dlq,):
        await dlq.settle(0.5)
        return dlq.values()
