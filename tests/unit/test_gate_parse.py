"""The gate's per-message parse takes shortcuts for speed; each must give exactly what the
plain, careful reading gives (the reference below), errors included."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from dnc.domain.channels import parse_channel
from dnc.domain.contacts import destination_key, normalise_sender
from dnc.domain.events import account_ok
from dnc.errors import InvalidValue, MissingField, NotJson
from dnc.gate.reader import _refuse_duplicate_fields
from dnc.gate.role import Gate
from dnc.index.layout import Layout, filter_key, fingerprint
from dnc.settings import IndexSettings, Settings

REQUIRED = ("message_id", "account", "channel", "sender", "destination")


def reference(raw: bytes | None) -> tuple[str, str, str, str, int, bytes] | str:
    """The gate's reading of a message, written for clarity: fields or the error text."""
    try:
        if raw is None:
            raise NotJson("value: is empty (null record)")
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise NotJson(f"value: is not valid JSON ({exc.msg} at position {exc.pos})") from None
        if type(d) is not dict:
            raise NotJson(f"value: must be a JSON object, not {type(d).__name__}")
        patterns = [f'"{f}"'.encode() for f in REQUIRED]
        if b"\\u" in raw or any(raw.count(p) > 1 for p in patterns):
            _refuse_duplicate_fields(raw)
        values = []
        for name in REQUIRED:
            v = d.get(name)
            if v is None:
                raise MissingField(name)
            if type(v) is not str:
                raise InvalidValue(name, v, f"must be a string, not {type(v).__name__}")
            values.append(v)
        message_id, account, channel, sender, destination = values
        if not 0 < len(message_id) <= 256:
            raise InvalidValue("message_id", message_id, "must be 1-256 characters")
        for name, value in (("sender", sender), ("destination", destination)):
            if not 0 < len(value) <= 320:
                raise InvalidValue(name, value, "must be 1-320 characters")
        if not account_ok(account):
            raise InvalidValue(
                "account", account, "must be 1-128 printable characters without spaces"
            )
        ch = parse_channel(channel, allow_all=False)
        assert ch is not None
        s = normalise_sender(sender)
        if s is None:
            raise InvalidValue("sender", sender, "must not be empty")
        contact = destination_key(destination)
    except (InvalidValue, NotJson) as exc:
        return str(exc)
    field = Layout(IndexSettings()).field(account, contact)
    return account, ch.value, s, contact, fingerprint(field), field


def gate_parse(gate: Gate, raw: bytes | None) -> tuple[str, str, str, str, int, bytes] | str:
    try:
        return gate._parse(raw)
    except (InvalidValue, NotJson) as exc:
        return str(exc)


def gate_check(gate: Gate, raws: list[bytes | None]) -> list[Any]:
    """What the batch loop decides for each message (no filter: every one is looked up)."""
    records = [
        ConsumerRecord("out", 0, i, 0, 0, None, raw, None, 0, len(raw or b""), [])
        for i, raw in enumerate(raws)
    ]
    decisions, ask, special = gate.reader.check({TopicPartition("out", 0): records}, None, True)
    assert ask == [i for i, d in enumerate(decisions) if isinstance(d, tuple)]
    assert special == list(range(len(raws)))
    return decisions


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate(Settings(index=IndexSettings(buckets=1024)))


GOOD = {
    "message_id": "m-1",
    "account": "acme",
    "channel": "SMS",
    "sender": "ACME",
    "destination": "441234567890",
    "text": "hello",
}

CASES: list[bytes | None] = [
    None,
    b"",
    b"[]",
    b"nope",
    orjson.dumps(GOOD),
    json.dumps(GOOD).encode(),  # spaces after separators: not the compact form
    json.dumps(GOOD, indent=2).encode(),
    orjson.dumps({**GOOD, "n": 1, "f": 1.5, "b": True, "z": None}),
    orjson.dumps({**GOOD, "meta": {"sender": "X", "destination": "Y"}}),
    orjson.dumps({**GOOD, "text": 'say "sender" twice'}),
    orjson.dumps({**GOOD, "text": "caf\u00e9 \u0001"}),
    orjson.dumps(GOOD)[:-1] + b',"destination":"441234567891"}',
    orjson.dumps(GOOD)[:-1] + b',"destin\\u0061tion":"441234567891"}',
    orjson.dumps(GOOD)[:-1] + b',"text":"again"}',  # a repeated optional key
    orjson.dumps(GOOD)[:-1] + b',"n":1,"n":2}',
    orjson.dumps(GOOD)[:-1] + b',"big":123456789012345678901234567890}',
    orjson.dumps({**GOOD, "message_id": ""}),
    orjson.dumps({**GOOD, "message_id": "x" * 257}),
    orjson.dumps({**GOOD, "account": "ac me"}),
    orjson.dumps({**GOOD, "account": 7}),
    orjson.dumps({**GOOD, "account": ["acme"]}),
    orjson.dumps({**GOOD, "channel": "sms"}),
    orjson.dumps({**GOOD, "channel": "ALL"}),
    orjson.dumps({**GOOD, "channel": {"x": 1}}),
    orjson.dumps({**GOOD, "sender": "  "}),
    orjson.dumps({**GOOD, "sender": "+44 1234 567890"}),
    orjson.dumps({**GOOD, "destination": "+44 1234 567890"}),
    orjson.dumps({**GOOD, "destination": "Jane@Example.com"}),
    orjson.dumps({**GOOD, "destination": "12ab"}),
    orjson.dumps({**GOOD, "destination": None}),
    orjson.dumps({k: v for k, v in GOOD.items() if k != "sender"}),
    orjson.dumps({**GOOD, "message_id": None, "destination": 5}),
    orjson.dumps({**GOOD, "message_id": "x" * 300, "destination": "12ab"}),
    # Deep enough for the standard library's parser (the duplicate test) to give up.
    b'{"text": "caf\\u00e9", "deep": ' + b"[" * 1000 + b"]" * 1000 + b"}",
]


@pytest.mark.parametrize("raw", CASES)
def test_same_result_as_the_careful_reading(gate: Gate, raw: bytes | None) -> None:
    assert gate_parse(gate, raw) == reference(raw)
    assert gate_parse(gate, raw) == reference(raw)  # again, now with warm caches


def test_the_batch_loop_decides_as_the_careful_reading() -> None:
    fresh = Gate(Settings(index=IndexSettings(buckets=1024)))
    expected = [reference(raw) for raw in CASES]
    assert gate_check(fresh, CASES) == expected  # cold caches: the careful path
    assert gate_check(fresh, CASES) == expected  # warm: the inline path


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=12))
values = st.one_of(
    scalars,
    st.sampled_from(["acme", "SMS", "ACME", "441234567890", "+44 1234 567890", "a@b.io"]),
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from([*REQUIRED, "x"]), scalars, max_size=3),
)
keys = st.sampled_from([*REQUIRED, "text", "x"])


@st.composite
def messages(draw: Any) -> bytes:
    """JSON objects near the valid ones: any order, repeats, spacing and escapes."""
    pairs = [(k, draw(st.sampled_from([GOOD[k]]) | values)) for k in REQUIRED]
    pairs += draw(st.lists(st.tuples(keys, values), max_size=3))
    order = draw(st.permutations(pairs))
    spaced = draw(st.booleans())
    escaped = draw(st.booleans())
    parts = []
    for k, v in order:
        name = json.dumps(k, ensure_ascii=True)
        if escaped and k == "destination":
            name = '"destin\\u0061tion"'
        text = json.dumps(v, ensure_ascii=draw(st.booleans()))
        parts.append(f"{name}: {text}" if spaced else f"{name}:{text}")
    return ("{" + (", " if spaced else ",").join(parts) + "}").encode()


@given(messages())
@settings(max_examples=400, deadline=None)
def test_same_result_on_messages_near_the_valid_ones(gate: Gate, raw: bytes) -> None:
    assert gate_parse(gate, raw) == reference(raw)
    assert gate_check(gate, [raw, raw]) == [reference(raw)] * 2


def test_filter_key_is_the_fingerprint_masked() -> None:
    index = Layout(IndexSettings(buckets=4096))
    for i in range(2000):
        bucket, member, field = index.locate("acme", f"4477{i:08d}")
        assert filter_key(bucket, member) == fingerprint(field) & index.filter_mask
