"""Garbage on every input topic, through the real roles on the real broker and Redis.

Random bytes, wrong-shape JSON, wrong types, missing fields, huge values and Unicode
tricks produced to ``dnc.inbound-messages``, ``dnc.url-unsubscribes``,
``dnc.journey-actions``, ``dnc.delivery-reports`` and ``messages.outbound`` must each end
in ``dnc.dead-letter`` exactly once, with an error that names the field, the original
topic, partition and offset, and the original value; and the roles must keep running: a
valid record produced after the garbage is still processed.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from dnc.settings import Settings
from tests.kit import eventually, inbound, is_confirmation, outbound, reading, running

pytestmark = pytest.mark.integration

PHONE = "441234567890"
ROLES = ("ingest", "listwriter", "gate")
MakeSettings = Callable[..., Awaitable[Settings]]


@dataclass
class Garbage:
    value: bytes | None
    field: str  # the field the dead-letter error must start with
    key: bytes | None = None


def random_bytes(seed: int, n: int) -> list[Garbage]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        if raw.lstrip()[:1] in (b"{", b"[", b'"') or raw.strip().isdigit():
            raw = b"\xff" + raw  # keep it certainly not JSON
        out.append(Garbage(raw, "value", key=bytes(rng.randrange(256) for _ in range(8))))
    return out


def shapes() -> list[Garbage]:
    """Values that are JSON but not an object, or nothing at all."""
    return [
        Garbage(None, "value", key=b"tombstone"),  # a tombstone on an input topic
        Garbage(b"", "value"),
        Garbage(b"null", "value"),
        Garbage(b"[]", "value"),
        Garbage(b'["STOP"]', "value"),
        Garbage(b'"STOP"', "value"),
        Garbage(b"42", "value"),
        Garbage(b"{", "value"),
        Garbage(b'{"message_id": "x",}', "value"),
        Garbage(b"[" * 3000 + b"]" * 3000, "value"),
    ]


def variants(valid: dict[str, Any], cases: list[tuple[Any, ...]]) -> list[Garbage]:
    """The valid event with one field changed (_MISSING = removed); the error names that
    field, or the third item of the case."""
    out = []
    for name, value, *blamed in cases:
        event = dict(valid)
        if value is _MISSING:
            del event[name]
        else:
            event[name] = value
        out.append(Garbage(orjson.dumps(event), blamed[0] if blamed else name))
    return out


_MISSING = object()
HUGE = "9" * 200_000
WRONG = [42, 1.5, True, ["x"], {"x": 1}]

INBOUND = inbound("mo-valid", PHONE, "STOP")
URL = {
    "event_id": "u-1", "account": "acme", "contact": "jane@example.com", "channel": "EMAIL",
    "sender": "news@acme.com", "campaign_id": "c-9", "occurred_at": "2026-11-26T05:31:27.123Z",
}  # fmt: skip
JOURNEY = {
    "event_id": "j-1", "action": "add", "accounts": ["acme"], "contact": "441234567891",
    "channel": "WHATSAPP", "sender": None, "journey_id": "flow",
}  # fmt: skip
REPORT = {
    "report_id": "r-1", "account": "acme", "channel": "SMS", "sender": "ACME",
    "destination": "441234567892", "provider": "twilio", "error_code": "21610",
}  # fmt: skip
OUTBOUND = outbound("m-valid", PHONE)


def garbage_for(topic_name: str, seed: int) -> list[Garbage]:
    common = random_bytes(seed, 6) + shapes()
    if topic_name == "inbound_messages":
        return common + variants(
            INBOUND,
            [
                ("message_id", _MISSING), ("account", _MISSING), ("from", _MISSING),
                ("text", _MISSING), ("from", 441234567890), ("text", ["STOP"]),
                ("account", "ac me"), ("account", "a" * 129), ("channel", "FAX"),
                ("channel", "ЅMS"), ("from", "12ab"), ("from", "+44 1234\u200b567890"),
                ("from", "\u202e441234567890"), ("from", "+٤٤ ١٢٣٤ ٥٦٧٨٩٠"), ("from", HUGE),
                ("to", HUGE), ("to", "AC\u200bME"), ("message_id", HUGE), ("text", HUGE),
                ("channel", "EMAIL"),
            ] + [("from", w) for w in WRONG] + [("account", w) for w in WRONG],
        )  # fmt: skip
    if topic_name == "url_unsubscribes":
        return common + variants(
            URL,
            [
                ("event_id", _MISSING), ("contact", "jane@@example.com"),
                ("contact", "jane@exa\u200bmple.com"), ("contact", HUGE), ("channel", "SMS"),
                ("channel", "POSTCARD"), ("sender", HUGE), ("account", ["acme"]),
                ("token", "not-a-token"), ("token", 12),
            ] + [("contact", w) for w in WRONG],
        )  # fmt: skip
    if topic_name == "journey_actions":
        return common + variants(
            JOURNEY,
            [
                ("action", "explode"), ("action", "ADD "), ("accounts", []), ("accounts", "acme"),
                ("accounts", ["ac me"]), ("accounts", ["acme"] * 101), ("contact", "12ab"),
                ("contact", "jane@example.com", "channel"), ("channel", "FAX"),
                ("contact", _MISSING), ("event_id", HUGE),
            ] + [("contact", w) for w in WRONG],
        )  # fmt: skip
    if topic_name == "delivery_reports":
        return common + variants(
            REPORT,
            [
                ("destination", "12ab"), ("destination", "+44\u200f1234567890"),
                ("channel", "PIGEON"), ("provider", _MISSING), ("error_code", 1.5),
                ("error_code", ["21610"]), ("account", HUGE), ("report_id", _MISSING),
            ] + [("destination", w) for w in WRONG],
        )  # fmt: skip
    assert topic_name == "outbound"
    base = orjson.dumps(OUTBOUND)[:-1]
    duplicates = [
        Garbage(base + b',"destination":"441234567899"}', "destination"),
        Garbage(base + b',"destin\\u0061tion":"441234567899"}', "destination"),
        Garbage(base + b',"\\u0061ccount":"globex"}', "account"),
    ]
    return (
        common
        + duplicates
        + variants(
            OUTBOUND,
            [
                ("message_id", _MISSING),
                ("destination", _MISSING),
                ("message_id", ""),
                ("message_id", "x" * 257),
                ("account", "ac\u200bme"),
                ("channel", "ALL"),
                ("channel", "ＳＭＳ\u200b"),
                ("sender", "  "),
                ("sender", "AC\u200bME"),
                ("destination", "12ab"),
                ("destination", "+44 1234\u200b567890"),
                ("destination", "٤٤١٢٣٤٥٦٧٨٩٠"),
                ("destination", HUGE),
                ("sender", HUGE),
            ]
            + [("destination", w) for w in WRONG]
            + [("channel", w) for w in WRONG],
        )
    )


def role_tasks() -> dict[str, asyncio.Task[Any]]:
    """The tasks tests.kit.running runs the roles in (named after the role)."""
    return {t.get_name(): t for t in asyncio.all_tasks() if t.get_name() in ROLES}


def a_role_stopped(tasks: dict[str, asyncio.Task[Any]]) -> Callable[[], str | None]:
    """For ``eventually(unless=...)``: fail at once, with the cause, if a role stops."""

    def reason() -> str | None:
        for name, task in tasks.items():
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                return f"the {name} role stopped ({exc!r})"
        return None

    return reason


async def produce_raw(
    settings: Settings, topic: str, records: list[Garbage]
) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, g.value, key=g.key) for g in records]
        return [((md := await f).partition, md.offset) for f in futures]
    finally:
        await producer.stop()


def original(dead: dict[str, Any]) -> bytes | None:
    if dead["value"] is None:
        return None
    if dead["value_encoding"] == "base64":
        return base64.b64decode(dead["value"])
    return str(dead["value"]).encode()


async def test_garbage_on_every_input_topic_is_dead_lettered_and_the_roles_keep_going(
    settings: Settings,
) -> None:
    t = settings.topics
    topics = {
        name: getattr(t, name)
        for name in ("inbound_messages", "url_unsubscribes", "journey_actions",
                     "delivery_reports", "outbound")
    }  # fmt: skip
    sent: dict[tuple[str, int, int], Garbage] = {}
    async with running(settings, *ROLES):
        tasks = role_tasks()
        async with reading(settings, t.dead_letter, t.changes, t.allowed, t.blocked) as (
            dlq,
            changes,
            allowed,
            blocked,
        ):
            for i, (name, topic) in enumerate(topics.items()):
                records = garbage_for(name, seed=i)
                for g, (partition, offset) in zip(
                    records, await produce_raw(settings, topic, records), strict=True
                ):
                    sent[(topic, partition, offset)] = g
            # Then one valid record on each topic: they must still be processed.
            await produce_raw(settings, t.inbound_messages, [Garbage(orjson.dumps(INBOUND), "")])
            await produce_raw(settings, t.url_unsubscribes, [Garbage(orjson.dumps(URL), "")])
            await produce_raw(settings, t.journey_actions, [Garbage(orjson.dumps(JOURNEY), "")])
            await produce_raw(settings, t.delivery_reports, [Garbage(orjson.dumps(REPORT), "")])

            async def all_dead() -> bool:
                await dlq.poll(0.1)
                return len(dlq.records) >= len(sent)

            await eventually(
                all_dead, 60, unless=a_role_stopped(tasks), what=f"{len(sent)} dead letters"
            )

            async def four_changes() -> bool:
                await changes.poll(0.1)
                return len(changes.records) >= 4

            await eventually(
                four_changes,
                60,
                unless=a_role_stopped(tasks),
                what="the valid opt-outs after the garbage",
            )
            await produce_raw(
                settings,
                t.outbound,
                [Garbage(orjson.dumps(OUTBOUND), ""),
                 Garbage(orjson.dumps(outbound("m-other", "441234567899")), "")],
            )  # fmt: skip

            async def decided() -> bool:
                await allowed.poll(0.1)
                await blocked.poll(0.1)
                return len(_messages(allowed)) + len(blocked.records) >= 2

            await eventually(
                decided,
                60,
                unless=a_role_stopped(tasks),
                what="the valid outbound messages after the garbage",
            )
            await dlq.settle(1.0)

    dead = dlq.values()
    assert len(dead) == len(sent), "each bad record exactly once in the dead-letter topic"
    problems = []
    for d in dead:
        where = (d["topic"], d["partition"], d["offset"])
        bad = sent.get(where)
        if bad is None:
            problems.append(f"unexpected dead letter {where}: {d['error']}")
            continue
        if not d["error"].startswith((f"{bad.field}:", f"{bad.field}.")):
            problems.append(f"{where}: error {d['error']!r} does not name {bad.field!r}")
        if original(d) != bad.value:
            problems.append(f"{where}: the original value is not in the dead letter")
    assert not problems, "\n".join(problems)
    assert [orjson.loads(r.value)["message"]["message_id"] for r in blocked.records] == ["m-valid"]
    assert [orjson.loads(r.value)["message_id"] for r in _messages(allowed)] == ["m-other"]


async def test_a_record_too_big_to_dead_letter_does_not_stop_the_gate(
    settings: Settings,
) -> None:
    """800 kB of binary garbage is a valid Kafka record (the broker takes up to 1 MB), but
    its dead letter (base64, +33 %) is larger than the broker accepts. The gate must not
    stop on it (it would retry it for ever and forward nothing else)."""
    t = settings.topics
    garbage = Garbage(random.Random(7).randbytes(800_000), "value")
    async with running(settings, "listwriter", "gate"):
        tasks = role_tasks()
        async with reading(settings, t.allowed) as (allowed,):
            await produce_raw(settings, t.outbound, [garbage, Garbage(orjson.dumps(OUTBOUND), "")])

            async def forwarded() -> bool:
                await allowed.poll(0.1)
                return bool(_messages(allowed))

            await eventually(
                forwarded,
                60,
                unless=a_role_stopped(tasks),
                what="the valid message after the big garbage",
            )


async def test_a_huge_timestamp_does_not_stop_the_opt_out_consumer(settings: Settings) -> None:
    """``received_at`` has no size limit and is copied into the list command; a STOP with
    a ~1 MB timestamp makes a command the broker refuses. The opt-out consumer must
    dead-letter it, not stop (every later opt-out would wait behind it)."""
    t = settings.topics
    huge = {**inbound("mo-huge", "441234567893", "STOP"), "received_at": "9" * 1_040_000}
    async with running(settings, "ingest", "listwriter"):
        tasks = role_tasks()
        async with reading(settings, t.changes) as (changes,):
            await produce_raw(
                settings,
                t.inbound_messages,
                [Garbage(orjson.dumps(huge), "received_at"), Garbage(orjson.dumps(INBOUND), "")],
            )

            async def opted_out() -> bool:
                await changes.poll(0.1)
                return any(orjson.loads(r.key)[1] == PHONE for r in changes.records)

            await eventually(
                opted_out,
                60,
                unless=a_role_stopped(tasks),
                what="the valid STOP after the huge one",
            )


async def test_a_message_too_big_to_wrap_does_not_stop_the_gate(settings: Settings) -> None:
    """A valid message just under the broker's 1 MB limit, to a contact who opted out:
    the blocked wrapper adds a few hundred bytes and no longer fits. The gate must not
    forward it, and must not stop on it."""
    t = settings.topics
    # The broker takes batches up to 1,048,588 bytes: this record fits, its wrapper not.
    filler = 1_048_450 - len(orjson.dumps(outbound("m-big", PHONE, text="")))
    big = outbound("m-big", PHONE, text="x" * filler)
    async with running(settings, *ROLES):
        tasks = role_tasks()
        async with reading(settings, t.changes, t.allowed, t.blocked) as (chg, allowed, blocked):
            await produce_raw(settings, t.inbound_messages, [Garbage(orjson.dumps(INBOUND), "")])

            async def opted_out() -> bool:
                await chg.poll(0.1)
                return bool(chg.records)

            await eventually(opted_out, 60, "the opt-out", unless=a_role_stopped(tasks))
            await produce_raw(
                settings,
                t.outbound,
                [Garbage(orjson.dumps(big), ""),
                 Garbage(orjson.dumps(outbound("m-after", "441234567899")), "")],
            )  # fmt: skip

            async def after() -> bool:
                await allowed.poll(0.1)
                return bool(_messages(allowed))

            await eventually(
                after, 60, unless=a_role_stopped(tasks), what="the message after the big one"
            )
            await blocked.settle(0.5)
    assert [orjson.loads(r.value)["message_id"] for r in _messages(allowed)] == ["m-after"]


# --- logs never contain a full phone number or e-mail address -------------------------------

PII_PHONES = ["+44 1234 567891", "0044-1234-567892", "441234567893", "+1 (202) 555-0143",
              "＋４４ １２３４ ５６７８９４"]  # fmt: skip
PII_EMAILS = ["jane.doe@example.com", "Bob.Smith@Example.ORG", "carol+news@example.net"]


def pii_inputs(t: Any) -> list[tuple[str, bytes | None]]:
    """Good and bad records whose contacts and senders must never reach a log line."""
    out: list[tuple[str, bytes | None]] = []
    for i, phone in enumerate(PII_PHONES):
        out.append((t.inbound_messages, orjson.dumps(inbound(f"mo-{i}", phone, "STOP"))))
        out.append(
            (t.inbound_messages, orjson.dumps(inbound(f"mo-x{i}", phone + "\u200b", "STOP")))
        )
        out.append(
            (t.inbound_messages, orjson.dumps(inbound(f"mo-y{i}", phone, "hello", to=phone)))
        )
        out.append((t.outbound, orjson.dumps(outbound(f"m-{i}", phone, sender=phone))))
        out.append((t.outbound, orjson.dumps(outbound(f"m-x{i}", phone + "ab"))))
        out.append((t.outbound, f'{{"destination": "{phone}", broken'.encode()))
        out.append((t.delivery_reports, orjson.dumps({**REPORT, "destination": phone})))
        out.append((t.delivery_reports, orjson.dumps({**REPORT, "destination": phone + "!"})))
    for i, email in enumerate(PII_EMAILS):
        url = {**URL, "event_id": f"u-{i}", "contact": email, "sender": email}
        out.append((t.url_unsubscribes, orjson.dumps(url)))
        out.append((t.url_unsubscribes, orjson.dumps({**url, "channel": "SMS"})))
        out.append((t.url_unsubscribes, orjson.dumps({**url, "contact": email + "@"})))
        out.append(
            (t.journey_actions, orjson.dumps({**JOURNEY, "contact": email, "channel": None}))
        )
        out.append((t.journey_actions, orjson.dumps({**JOURNEY, "contact": email})))
        out.append(
            (t.outbound, orjson.dumps(outbound(f"e-{i}", email, channel="EMAIL", sender=email)))
        )
        out.append((t.outbound, orjson.dumps(outbound(f"e-x{i}", email.replace("@", "@@")))))
    return out


def leaks_in(text: str) -> list[str]:
    """Log lines holding a full phone number (in any spelling) or an e-mail address."""
    import re
    import unicodedata

    phones = {re.sub(r"\D", "", unicodedata.normalize("NFKC", p))[-10:] for p in PII_PHONES}
    emails = {e.lower() for e in PII_EMAILS} | {e.split("@")[0].lower() for e in PII_EMAILS}
    found = []
    for line in text.splitlines():
        joined = re.sub(r"(?<=\d)[\s\-().+*]+(?=\d)", "", unicodedata.normalize("NFKC", line))
        if any(p in joined for p in phones) or any(e in line.lower() for e in emails):
            found.append(line)
    return found


@pytest.mark.parametrize("log_json", [True, False], ids=["json-logs", "text-logs"])
async def test_role_logs_never_contain_a_phone_number_or_an_email_address(
    make_settings: MakeSettings, tmp_path: Any, log_json: bool
) -> None:
    """The roles as real processes (their own logging set-up, DEBUG level) on good and
    bad input, then a list writer that stops on a corrupt changelog record whose key holds
    a phone number and an e-mail address (the error and its traceback are logged)."""
    from tests.kit import Process

    settings = await make_settings(log_json=log_json, log_level="DEBUG")
    t = settings.topics
    procs = {r: Process(settings, r, tmp_path) for r in ROLES}
    inputs = pii_inputs(t)
    try:
        for p in procs.values():
            p.start()
        async with reading(settings, t.dead_letter, t.allowed, t.blocked, t.changes) as readers:
            for topic, value in inputs:
                await produce_raw(settings, topic, [Garbage(value, "", key=b"k")])
            expected_outbound = sum(1 for topic, _ in inputs if topic == t.outbound)
            deadline = time.monotonic() + 60
            while True:
                for r in readers:
                    await r.poll(0.1)
                dead_outbound = [v for v in readers[0].values() if v["topic"] == t.outbound]
                done = len(dead_outbound) + len(readers[1].records) + len(readers[2].records)
                if done >= expected_outbound and len(readers[3].records) >= 16:
                    break  # every outbound message decided, every valid opt-out applied
                assert all(p.alive for p in procs.values()), "a role stopped"
                assert time.monotonic() < deadline, "the roles did not process every record"
        assert procs["listwriter"].terminate() == 0
        # A changelog record that is not ours: the list writer stops on it, loudly.
        corrupt_key = orjson.dumps(["acme", PII_PHONES[2], PII_EMAILS[0]])
        await produce_raw(settings, t.changes, [Garbage(b"{not an entry", "", key=corrupt_key)])
        procs["listwriter"].start()
        assert procs["listwriter"].proc is not None
        await asyncio.to_thread(procs["listwriter"].proc.wait, 60)
    finally:
        for p in procs.values():
            p.terminate()
    logs = {r: (tmp_path / f"{r}.log").read_text(errors="replace") for r in ROLES}
    assert "catch-up of partition" in logs["listwriter"], "the failure path was not exercised"
    assert "***" in logs["listwriter"], "the values in the error were not masked"
    leaks = {r: leaks_in(text) for r, text in logs.items() if leaks_in(text)}
    assert not leaks, leaks


def _messages(reader: Any) -> list[Any]:
    """What the gate allowed, without the list writer's opt-out confirmations."""
    return [r for r in reader.records if not is_confirmation(r)]
