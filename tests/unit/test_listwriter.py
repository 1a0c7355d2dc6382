"""The list writer's records, byte for byte.

``Evaluator.evaluate`` splices its changelog and history records from parts rendered once
per command. ``reference`` below is the plain form it must equal: every record built as a
dict (``entry_dict``, the history shape) and serialised with ``orjson.dumps``. Random
batches of every kind of op, over contacts that already have entries (some stored under
their id), must give the same records, index updates, expiry changes and counters.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import pytest

from dnc.domain.changelog import entry_dict, format_time
from dnc.domain.entries import Command, ContactState, Entry, EntryKey, Op, Source, apply_op
from dnc.index.layout import Layout, pack_entries
from dnc.index.meta import ContactUpdate, IndexMeta
from dnc.kafka.batches import BatchWriter, Headers, Record
from dnc.kafka.clients import make_producer
from dnc.listwriter.evaluate import Contact, Contacts, Evaluated, Evaluator
from dnc.settings import IndexSettings, Settings

P = 3
SETTINGS = Settings()
T = SETTINGS.topics
Sent = list[tuple[str, int, bytes | None, bytes | None, list[tuple[str, bytes]]]]


class FakeIndex(Layout):
    """The index's read and write of packed entries, in a dict."""

    def __init__(self) -> None:
        super().__init__(IndexSettings())
        self.values: dict[bytes, bytes] = {}

    async def load(self, fields: Sequence[tuple[int, bytes]]) -> tuple[IndexMeta, list[Any]]:
        return IndexMeta(), [self.values.get(f) for _b, f in fields]

    def apply(self, updates: Iterable[ContactUpdate]) -> None:
        for u in updates:
            if u.value:
                self.values[u.field] = u.value
            else:
                self.values.pop(u.field, None)


class Recorder:
    """A BatchWriter that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: Sent = []
        self.tally: dict[str, int] = {}
        self.dead: dict[str, int] = {}

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers = (),
    ) -> None:
        self.sent.append((topic, partition, key, value, list(headers)))

    def extend(self, topic: str, partition: int, records: Iterable[Record]) -> None:
        for key, value, headers in records:
            self.append(topic, partition, key, value, headers)

    def by_topic(self) -> dict[str, Sent]:
        out: dict[str, Sent] = {}
        for record in self.sent:
            out.setdefault(record[0], []).append(record)
        return out


# --- the reference: the list writer as it was before its records were spliced ---------


def reference(
    writer: Evaluator, commands: Sequence[tuple[int, Command]], contacts: Contacts
) -> tuple[Recorder, Evaluated]:
    out, done = Recorder(), Evaluated()
    changed: dict[bytes, Contact] = {}
    for offset, cmd in commands:
        for i, op in enumerate(cmd.ops):
            state = contacts[(op.key.account, op.key.contact)]
            hid = f"{P}-{offset}-{i}"
            if op.op == "erase":
                outcome = _erase(writer, out, done, state, op, cmd, hid)
                changed[state.field] = state
            else:
                outcome, change = apply_op(state, op, cmd)
                if change is not None:
                    changed[state.field] = state
                    headers = [("dnc-ref", change.ref.encode())] if change.ref else []
                    key = change.key.to_json()
                    shown = change.entry or change.previous
                    assert shown is not None
                    entry = entry_dict(shown)
                    value = orjson.dumps(entry) if change.entry else None
                    out.append(T.changes, P, key, value, headers)
                    history = {
                        "action": change.action,
                        "entry": entry,
                        "at": format_time(cmd.at),
                        "cause": change.cause,
                    }
                    hk = orjson.dumps([*change.key, hid])
                    out.append(T.history, P, hk, orjson.dumps(history), headers)
                    expires = change.entry.expires_at if change.entry is not None else None
                    previous = change.previous
                    if expires is not None or (previous is not None and previous.expires_at):
                        done.expiry.append((key, expires))
                    if change.confirm is not None:
                        writer._confirm(out, change.confirm)  # type: ignore[arg-type]
            if cmd.ref:
                done.counters[(cmd.ref, outcome)] += 1
    for c in changed.values():
        done.updates.append(
            ContactUpdate(c.bucket, c.member, c.field, pack_entries(c.entries.values()))
        )
    return out, done


def _erase(
    writer: Evaluator,
    out: Recorder,
    done: Evaluated,
    state: ContactState,
    op: Op,
    cmd: Command,
    hid: str,
) -> str:
    account, contact = op.key.account, op.key.contact
    token = writer.index.ids.token(contact)
    for hk in op.history_keys or ():
        if (
            isinstance(hk, list)
            and len(hk) == 5
            and hk[0] == account
            and hk[1]
            in {
                contact,
                token,
            }
        ):
            out.append(T.history, P, orjson.dumps(hk), None)
    for slot, e in list(state.entries.items()):
        if e.stored_as_id:
            continue
        moved = Entry(e.key._replace(contact=token), e.source, e.added_at, None, e.expires_at, True)
        state.entries[slot] = moved
        out.append(T.changes, P, e.key.to_json(), None)
        out.append(T.changes, P, moved.key.to_json(), orjson.dumps(entry_dict(moved)))
        if e.expires_at is not None:
            done.expiry += [(e.key.to_json(), None), (moved.key.to_json(), e.expires_at)]
    record = {
        "action": "erase",
        "entry": {"account": account, "contact": token, "channel": None, "sender": None},
        "at": format_time(cmd.at),
        "cause": cmd.origin,
    }
    out.append(T.history, P, orjson.dumps([account, token, None, None, hid]), orjson.dumps(record))
    return "erased"


# --- random batches ---------------------------------------------------------------------

PLAIN = ["441234567890", "441234567891", "someone@example.com", "447700900123"]
CHANNELS = [None, "SMS", "EMAIL", "VIBER"]
SENDERS = [None, "ACME", "news@acme.com", 'odd "sender" \\ ü']
ORIGINS: list[dict[str, Any] | None] = [
    None,
    {"kind": "import", "import_id": "imp-1", "key": "bench"},
    {"kind": "message", "text": 'Stöp \u2028 "now"', "n": 3, "nested": [1, None, "x"]},
]


def random_op(rng: random.Random, contacts: list[tuple[str, str]], history: list[Any]) -> Op:
    account, contact = rng.choice(contacts)
    k = EntryKey(account, contact, rng.choice(CHANNELS), rng.choice(SENDERS))
    roll = rng.random()
    if roll < 0.6:
        expires = rng.choice([None, None, 5_000, 9_000_000_000_000])
        confirm = (
            {"message_id": f"c-{rng.randrange(99)}", "channel": "SMS", "destination": contact}
            if rng.random() < 0.1
            else None
        )
        return Op("add", k, rng.choice(list(Source)), expires, confirm)
    if roll < 0.75:
        return Op("remove", k)
    if roll < 0.85:
        return Op("remove_if_source", k, rng.choice(list(Source)))
    if roll < 0.95:
        return Op("remove_if_expired", k)
    keys = [*rng.sample(history, min(len(history), 3)), ["other", contact, None, None, "1-1-1"]]
    return Op("erase", k, history_keys=keys)


def batches(seed: int, layout: Layout) -> list[list[tuple[int, Command]]]:
    rng = random.Random(seed)
    forms = [(a, c) for a in ("acme", "globex") for c in PLAIN]
    forms += [(a, layout.ids.token(c)) for a, c in forms[:3]]  # an id, and its number
    history = [[a, c, None, "ACME", "3-1-0"] for a, c in forms[:4]] + ["not a key"]
    out = []
    offset = 0
    for _ in range(12):
        batch = []
        for _ in range(rng.randrange(1, 6)):
            ops = [random_op(rng, forms, history) for _ in range(rng.randrange(1, 40))]
            at = rng.choice([1_000, 4_000, 10_000, 1_795_671_087_123])
            batch.append((offset, Command(ops, at, rng.choice(ORIGINS), rng.choice([None, "r"]))))
            offset += rng.randrange(1, 3)
        out.append(batch)
    return out


@pytest.mark.parametrize("seed", range(25))
async def test_records_are_those_of_the_reference(seed: int) -> None:
    index = FakeIndex()
    allowed = {T.allowed: 3}
    writer = Evaluator(SETTINGS, index, allowed)  # type: ignore[arg-type]
    for batch in batches(seed, index):
        _meta, contacts = await writer.load(batch)
        expected_contacts = copy.deepcopy(contacts)
        out = Recorder()
        done = writer.evaluate(P, batch, contacts, out)  # type: ignore[arg-type]
        expected_out, expected = reference(writer, batch, expected_contacts)
        assert out.by_topic() == expected_out.by_topic()
        assert done.updates == expected.updates
        assert done.expiry == expected.expiry
        assert done.counters == expected.counters
        assert {ac: c.entries for ac, c in contacts.items()} == {
            ac: c.entries for ac, c in expected_contacts.items()
        }
        index.apply(done.updates)


async def test_both_forms_of_a_contact_share_its_entries_and_read_back_under_the_number() -> None:
    index = FakeIndex()
    writer = Evaluator(SETTINGS, index, {T.allowed: 3})  # type: ignore[arg-type]
    number = PLAIN[0]
    token = index.ids.token(number)
    plain = Entry(EntryKey("acme", number, "SMS", None), Source.MANUAL, 5)
    stored = Entry(EntryKey("acme", token, None, None), Source.IMPORT, 6, stored_as_id=True)
    bucket, member, f = index.locate("acme", number)
    index.values[f] = pack_entries([plain, stored])
    batch = [(0, Command([Op("remove", EntryKey("acme", token, None, None))], 7))]
    batch.append((1, Command([Op("remove", EntryKey("acme", number, "SMS", None))], 8)))
    _meta, contacts = await writer.load(batch)
    c = contacts[("acme", number)]
    assert contacts[("acme", token)] is c
    assert (c.bucket, c.member, c.field) == (bucket, member, f)
    assert c.entries == {("SMS", None): plain, (None, None): stored}


def test_commands_decode_as_they_were_encoded() -> None:
    ops = [
        Op("add", EntryKey("a", "c", None, "s"), Source.IMPORT, 5, {"x": 1}),
        Op("remove_if_source", EntryKey("a", "c", "SMS", None), Source.END_USER_MESSAGE),
        Op("erase", EntryKey("a", "c", None, None), history_keys=[["a", "c", None, None, "1"]]),
    ]
    cmd = Command(ops, 12, {"kind": "x"}, "r")
    again = Command.from_json(cmd.to_json())
    assert again == cmd
    assert all(
        type(o.key) is EntryKey and type(o.source) in (Source, type(None)) for o in again.ops
    )
    bad = cmd.to_json().replace(b'"IMPORT"', b'"NOPE"')
    with pytest.raises(ValueError, match="NOPE"):
        Command.from_json(bad)


async def test_a_batch_writer_extends_in_order_and_opens_no_empty_batch() -> None:
    producer = make_producer(SETTINGS)  # never started: batches are built, not sent
    out = BatchWriter(producer)
    out.extend("t", 0, [])
    assert not out
    big = b"x" * 200_000
    records: list[Record] = [(b"%d" % i, big, [("h", b"1")]) for i in range(6)]
    out.extend("t", 0, records[:2])
    out.append("t", 0, b"2", big, [("h", b"1")])
    out.extend("t", 0, records[3:])
    out.extend("u", 1, records[:1])
    built = [(t, p, b.record_count()) for b, t, p in out._full]
    built += [(t, p, b.record_count()) for (t, p), b in out._open.items()]
    assert built == [("t", 0, 2), ("t", 0, 2), ("t", 0, 2), ("u", 1, 1)]  # 512 KiB each
    await producer.stop()


async def test_a_batch_tallies_the_commands_that_changed_the_list_and_those_that_did_not() -> None:
    index = FakeIndex()
    writer = Evaluator(SETTINGS, index, {T.allowed: 3})  # type: ignore[arg-type]
    key = EntryKey("acme", PLAIN[0], "SMS", None)
    batch = [
        (0, Command([Op("add", key, Source.MANUAL)], 5)),
        (1, Command([Op("add", key, Source.MANUAL)], 6)),  # already there: no change
        (2, Command([Op("remove", key._replace(channel="EMAIL"))], 7)),  # nothing to remove
        (3, Command([Op("remove", key)], 8)),
    ]
    _meta, contacts = await writer.load(batch)
    out = Recorder()
    writer.evaluate(P, batch, contacts, out)  # type: ignore[arg-type]
    assert out.tally == {"changed": 2, "unchanged": 2}
