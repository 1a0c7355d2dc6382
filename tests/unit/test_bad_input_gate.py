"""Hostile outbound messages against the gate's own fast parser.

``Gate._parse`` must accept and reject exactly what the contract's reference accepts and
rejects: ``events.parse_record(OutboundMessage, raw)`` (orjson, strict types, the length
limits), then ``parse_channel`` / ``normalise_sender`` / ``destination_key`` (the write-time
normalisation), plus the gate's own rule that a required field given twice (also spelled
with ``\\u`` escapes) is refused. When it accepts, it must produce the same account,
channel, sender and contact; when it refuses, the error must be ``InvalidValue`` naming a
field that really is wrong (or ``NotJson``), never anything else: any other exception
stops the gate.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dnc.domain.channels import parse_channel
from dnc.domain.contacts import destination_key, normalise_sender
from dnc.domain.events import OutboundMessage, parse_record
from dnc.errors import DuplicateField, InvalidValue, NotJson, PoisonRecord
from dnc.gate.role import Gate
from dnc.settings import Settings
from tests.unit.conftest import CostlyWork

REQUIRED = ("message_id", "account", "channel", "sender", "destination")
GATE = Gate(Settings())  # builds no connection; one instance, so its caches are exercised
BASE = {
    "message_id": "m-1",
    "account": "acme",
    "channel": "SMS",
    "sender": "ACME",
    "destination": "441234567890",
}
PROPERTY = settings(
    max_examples=int(os.environ.get("DNC_HYPOTHESIS_EXAMPLES", "1500")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- the reference ------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the contract says about a message: the canonical fields, or the fields that
    are wrong ("value" = not a JSON object)."""

    fields: tuple[str, str, str, str] | None = None
    wrong: set[str] = field(default_factory=set)


def _top_level_duplicates(raw: bytes) -> set[str]:
    pairs: list[list[tuple[str, Any]]] = []

    def hook(p: list[tuple[str, Any]]) -> dict[str, Any]:
        pairs.append(p)
        return dict(p)

    json.loads(raw, object_pairs_hook=hook)
    names = [k for k, _ in pairs[-1]] if pairs else []  # the outermost object comes last
    return {n for n in REQUIRED if names.count(n) > 1}


def reference(raw: bytes) -> Verdict:
    try:
        msg = parse_record(OutboundMessage, raw)
    except NotJson:
        return Verdict(wrong={"value"})
    except PoisonRecord:
        msg = None
    wrong = _top_level_duplicates(raw)
    data = orjson.loads(raw)
    if msg is None:
        try:
            OutboundMessage.model_validate(data)
        except ValidationError as exc:
            wrong |= {str(e["loc"][0]) for e in exc.errors()}
    checks = {
        "channel": lambda v: parse_channel(v, allow_all=False),
        "sender": lambda v: normalise_sender(v) or _raise(InvalidValue("sender", v, "empty")),
        "destination": destination_key,
    }
    canonical: dict[str, str] = {}
    for name, check in checks.items():
        if name in wrong:
            continue
        try:
            canonical[name] = str(check(data[name]))
        except InvalidValue:
            wrong.add(name)
    if wrong:
        return Verdict(wrong=wrong)
    assert msg is not None
    return Verdict(
        (msg.account, canonical["channel"], canonical["sender"], canonical["destination"])
    )


def _raise(exc: Exception) -> str:
    raise exc


def gate_verdict(raw: bytes) -> Verdict:
    """The gate's answer in the same shape. Any exception but InvalidValue / NotJson
    escapes and fails the test."""
    try:
        parsed = GATE._parse(raw)
    except NotJson:
        return Verdict(wrong={"value"})
    except InvalidValue as exc:
        return Verdict(wrong={exc.field})
    account, channel, sender, contact = parsed[:4]
    return Verdict((account, channel, sender, contact))


def assert_agrees(raw: bytes) -> None:
    ref, got = reference(raw), gate_verdict(raw)
    if ref.fields is not None:
        assert got.fields == ref.fields, f"{raw[:300]!r}: gate {got}, contract {ref}"
    else:
        assert got.fields is None, (
            f"{raw[:300]!r}: the gate accepted what the contract refuses ({ref.wrong})"
        )
        assert got.wrong <= ref.wrong, f"{raw[:300]!r}: gate blames {got.wrong}, not {ref.wrong}"


# --- hostile messages --------------------------------------------------------------------

ZW = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f",
      "\u202a", "\u202e", "\u2066"]  # fmt: skip
WRONG_TYPES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.just([]), st.just({}),
    st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers()),
)  # fmt: skip


def tricky(values: list[str], alphabet: str, max_size: int = 24) -> st.SearchStrategy[str]:
    """Known spellings, random strings from a relevant alphabet, and those with an
    invisible character slipped in somewhere."""
    base = st.one_of(st.sampled_from(values), st.text(alphabet=alphabet, max_size=max_size))

    @st.composite
    def slipped(draw: st.DrawFn) -> str:
        text = draw(base)
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(st.sampled_from(ZW)) + text[at:]

    return st.one_of(base, slipped(), st.text(max_size=12))


DESTINATIONS = tricky(
    [
        "441234567890", "+44 1234 567890", "0044 1234 567890", "+44 (0) 1234 567890",
        "+1 (202) 555-0143", "＋４４ １２３４ ５６７８９０", "٤٤١٢٣٤٥٦٧٨٩٠",
        "+44\u00a01234\u2009567890",
        "12ab", "", "   ", "+", "00", "4" * 400, " 441234567890 ", "+44 1234 567890" + " " * 330,
        "jane@example.com", "Jane.Doe@Example.COM", " jane@example.com ", "jаne@example.com",
        "jane@example.com" + " " * 400, "jane@@example.com", "jane@[127.0.0.1]", '"j"@example.com',
        "j" * 300 + "@example.com", "jane@exam_ple.com", "ＪＡＮＥ@example.com",
    ],
    "0123456789+ -().@aeJ\u00a0\u2013０１４＋",
)  # fmt: skip
SENDERS = tricky(
    [
        "ACME", "acme ", " Acme", "ＡＣＭＥ", "АСМЕ", "ACME\u200b", "AC ME", "AC  ME", "12345",
        "+44 1234 567890", "0044 1234 567890", "news@acme.com", "NEWS@ACME.COM ", "", "  ",
        "x" * 64, "x" * 65, "x" * 300, "ﬃ" * 20, "news@acme.com" + " " * 400, "\t", "ß", "SS",
    ],
    "ACMEacme0123456789+ -@.\u00a0ﬃß",
)  # fmt: skip
CHANNELS = tricky(
    ["SMS", "sms", " Sms ", "ＳＭＳ", "ЅMS", "ſms", "ALL", "all", "", "EMAIL", "whatsapp",
     "VOICE ", "SMS\u200b", "S MS", "MMS", "RCS", "viber"],
    "SMSmsEAIL ",
    max_size=8,
)  # fmt: skip
ACCOUNTS = tricky(
    ["acme", "acme-prod", "ac me", "", "a" * 128, "a" * 129, "acmé", "ACME", "acme\n", "a\tb"],
    "acme-_.1 ",
)  # fmt: skip
MESSAGE_IDS = tricky(["m-1", "", "x" * 256, "x" * 257, "😀" * 256, "😀" * 257, " "], "m-1 ")

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "message_id": MESSAGE_IDS,
    "account": ACCOUNTS,
    "channel": CHANNELS,
    "sender": SENDERS,
    "destination": DESTINATIONS,
}
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.text(max_size=10),
)  # fmt: skip
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
MISSING = object()


def _escaped(name: str, which: list[bool]) -> str:
    """A key spelled with some of its characters as \\u escapes."""
    return "".join(f"\\u{ord(c):04x}" if esc else c for c, esc in zip(name, which, strict=False))


def _value_text(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A JSON object (as bytes) with the required fields valid, wrong, of the wrong type
    or missing; extra fields; random key order; sometimes a required key twice, plainly
    or with escapes; random white space and escaping of non-ASCII text."""
    pairs: list[tuple[str, str, Any]] = []  # (key as written, real key, value)
    for name in REQUIRED:
        kind = draw(st.sampled_from(["good", "good", "good", "tricky", "wrong_type", "missing"]))
        if kind == "missing":
            continue
        if kind == "good":
            value: Any = BASE[name]
        elif kind == "tricky":
            value = draw(VALUES[name])
        else:
            value = draw(WRONG_TYPES)
        pairs.append((name, name, value))
    for key, value in draw(st.dictionaries(st.text(max_size=6), JSON_VALUE, max_size=3)).items():
        if key not in REQUIRED:
            pairs.append((json.dumps(key)[1:-1], key, value))
    if draw(st.integers(0, 4)) == 0:
        name = draw(st.sampled_from(REQUIRED))
        value = draw(st.one_of(st.just(BASE[name]), VALUES[name]))
        pairs.append((name, name, value))
    pairs = draw(st.permutations(pairs))
    ascii_only = draw(st.booleans())
    space = draw(st.sampled_from(["", " ", "\n  "]))
    parts = []
    for plain, real, value in pairs:
        written = plain
        if real in REQUIRED and draw(st.integers(0, 5)) == 0:
            written = _escaped(real, draw(st.lists(st.booleans(), min_size=len(real))))
        parts.append(f'{space}"{written}":{space}{_value_text(value, ascii_only)}')
    return ("{" + ",".join(parts) + space + "}").encode()


@PROPERTY
@given(messages())
@example(orjson.dumps(BASE))
@example(orjson.dumps({**BASE, "destination": "+44 (0) 1234 567890", "sender": " acme"}))
@example(b'{"message_id":"m","account":"acme","channel":"SMS","sender":"ACME",'
         b'"destination":"441234567890","destin\\u0061tion":"441234567891"}')  # fmt: skip
@example(orjson.dumps({**BASE, "text": '"destination":"441234567891"'}))
@example(orjson.dumps({**BASE, "n": 2**63 - 1, "f": 1.5e300, "deep": [[[[{"a": None}]]]]}))
def test_gate_parser_agrees_with_the_contract(raw: bytes) -> None:
    assert_agrees(raw)


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
def test_gate_parser_on_random_bytes(raw: bytes) -> None:
    assert_agrees(raw)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUE.filter(lambda v: not isinstance(v, dict)))
def test_gate_refuses_json_that_is_not_an_object(value: Any) -> None:
    with pytest.raises(NotJson):
        GATE._parse(orjson.dumps(value))


# --- duplicate keys ------------------------------------------------------------------------


def with_pairs(*extra: tuple[str, str]) -> bytes:
    """BASE followed by raw `"key": value` pairs exactly as written."""
    head = orjson.dumps(BASE)[:-1].decode()
    return (head + "".join(f",{k}:{v}" for k, v in extra) + "}").encode()


@pytest.mark.parametrize(
    ("raw", "dup"),
    [
        (with_pairs(('"destination"', '"441234567891"')), "destination"),
        (with_pairs(('"destination"', '"441234567890"')), "destination"),  # same value twice
        (with_pairs(('"destin\\u0061tion"', '"441234567891"')), "destination"),
        (with_pairs(('"\\u0064\\u0065stination"', '"441234567891"')), "destination"),
        (with_pairs(('"\\u0061ccount"', '"globex"')), "account"),
        (with_pairs(('"sender"', '"OTHER"')), "sender"),
        (with_pairs(('"channel"', '"VOICE"')), "channel"),
        (with_pairs(('"message_id"', '"m-2"')), "message_id"),
        (b'{"destination":"441234567899",' + orjson.dumps(BASE)[1:], "destination"),
    ],
)
def test_gate_refuses_a_required_field_given_twice(raw: bytes, dup: str) -> None:
    with pytest.raises(DuplicateField) as info:
        GATE._parse(raw)
    assert info.value.field == dup
    assert str(info.value) == f"{dup}: appears more than once in the message"


@pytest.mark.parametrize(
    "raw",
    [
        with_pairs(('"text"', '"\\"destination\\": \\"441234567891\\""')),
        with_pairs(('"destination_2"', '"441234567891"')),
        with_pairs(('"Destination"', '"441234567891"')),
        with_pairs(('"meta"', '{"destination": "441234567891"}')),
        with_pairs(('"text"', '"caf\\u00e9"')),
        with_pairs(('"x"', "1"), ('"x"', "2")),  # an optional field twice is not our business
    ],
)
def test_gate_accepts_what_only_looks_like_a_duplicate(raw: bytes) -> None:
    assert GATE._parse(raw)[:4] == ("acme", "SMS", "acme", "441234567890")


def test_gate_ignores_duplicates_inside_nested_objects() -> None:
    """A repeated key inside an extra, nested object does not make the five fields
    ambiguous; the reference accepts the message, so the gate must forward it."""
    raw = with_pairs(('"meta"', '{"destination": 1, "destination": 2}'))
    assert reference(raw).fields is not None
    assert GATE._parse(raw)[:4] == ("acme", "SMS", "acme", "441234567890")


# --- not JSON, or not UTF-8 ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(with_pairs(('"x"', "NaN")), id="NaN"),
        pytest.param(with_pairs(('"x"', "Infinity")), id="Infinity"),
        pytest.param(with_pairs(('"x"', "-Infinity")), id="-Infinity"),
        pytest.param(with_pairs(('"x"', '"\\ud800"')), id="lone-surrogate"),
        pytest.param(json.dumps(BASE).encode("utf-16"), id="utf-16"),
        pytest.param(json.dumps(BASE).encode("utf-32"), id="utf-32"),
        pytest.param(b"\xef\xbb\xbf" + orjson.dumps(BASE), id="utf-8-bom"),
    ],
)
def test_gate_refuses_what_is_not_utf8_json(raw: bytes) -> None:
    """The contract: every value is a UTF-8 JSON object. The ingest consumers refuse
    these (parse_record); the gate must not forward them to the channel senders."""
    with pytest.raises(NotJson):
        parse_record(OutboundMessage, raw)
    with pytest.raises(NotJson):
        GATE._parse(raw)


@pytest.mark.parametrize(
    "raw",
    [b"", b"null", b"[]", b'"x"', b"{", b'{"a":}', b"\xff\xfe\x00", b"{}" * 2, b"1" * 100,
     b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000],
)  # fmt: skip
def test_gate_refuses_garbage_as_not_json(raw: bytes) -> None:
    with pytest.raises(NotJson):
        GATE._parse(raw)


def test_gate_refuses_a_null_record() -> None:
    with pytest.raises(NotJson, match="null record"):
        GATE._parse(None)


# --- sizes and types ----------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize(
    "huge",
    ["9" * 5_000_000, "+" + "4" * 5_000_000, "a@" + "b" * 5_000_000 + ".com",
     "x" * 5_000_000, "jane@example.com" + " " * 5_000_000],
)  # fmt: skip
def test_huge_values_are_refused_before_costly_work_naming_the_field(
    name: str, huge: str, costly: CostlyWork
) -> None:
    raw = orjson.dumps({**BASE, name: huge})
    with pytest.raises(InvalidValue) as info:
        GATE._parse(raw)
    assert costly.longest < costly.BOUNDED  # never normalised, parsed or validated
    assert info.value.field == name
    assert len(str(info.value)) < 400  # the value is shortened in the error


def test_a_huge_extra_field_is_passed_through(costly: CostlyWork) -> None:
    raw = orjson.dumps({**BASE, "text": "x" * 5_000_000, "attachments": [{"a": 1}] * 1000})
    assert GATE._parse(raw)[:4] == ("acme", "SMS", "acme", "441234567890")
    assert costly.longest < costly.BOUNDED  # the gate never looks at other fields


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("value", [None, 0, 1.5, True, [], {}, ["441234567890"], {"a": "b"}])
def test_wrong_types_are_refused_naming_the_field(name: str, value: Any) -> None:
    with pytest.raises(InvalidValue) as info:
        GATE._parse(orjson.dumps({**BASE, name: value}))
    assert info.value.field == name


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_fields_are_refused_naming_the_field(name: str) -> None:
    message = {k: v for k, v in BASE.items() if k != name}
    with pytest.raises(InvalidValue) as info:
        GATE._parse(orjson.dumps(message))
    assert str(info.value) == f"{name}: is required"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sender", "news@acme.com" + " " * 320),
        ("destination", "jane@example.com" + " " * 320),
        ("destination", "+44 1234 567890" + " " * 320),
    ],
)
def test_the_models_length_limits_hold_on_the_gate(name: str, value: str) -> None:
    """OutboundMessage limits sender and destination to 320 characters; the gate trims
    e-mail addresses first and so forwards what the model refuses."""
    raw = orjson.dumps({**BASE, name: value})
    with pytest.raises(InvalidValue):
        parse_record(OutboundMessage, raw)
    with pytest.raises(InvalidValue) as info:
        GATE._parse(raw)
    assert info.value.field == name


# --- Unicode tricks in the five fields ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("destination", "＋４４ １２３４ ５６７８９０", "441234567890"),  # full-width: same person
        ("destination", "+44\u00a01234\u2009567890", "441234567890"),
        ("destination", "JANE@Example.com", "jane@example.com"),
        ("sender", "ＡＣＭＥ", "acme"),  # NFKC
        ("sender", " Acme ", "acme"),
        ("channel", " sms ", "SMS"),
    ],
)
def test_unicode_spellings_that_mean_the_same(name: str, value: str, expected: str) -> None:
    parsed = GATE._parse(orjson.dumps({**BASE, name: value}))[:4]
    position = {"channel": 1, "sender": 2, "destination": 3}[name]
    assert parsed[position] == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("destination", "+44 1234\u200b567890"),  # zero-width space
        ("destination", "\u202e441234567890"),  # right-to-left override
        ("destination", "441234567890\u200f"),  # right-to-left mark
        ("destination", "٤٤١٢٣٤٥٦٧٨٩٠"),  # Arabic-Indic digits
        ("destination", "jane@exa\u200bmple.com"),
        ("sender", "AC\u200bME"),
        ("sender", "\u202eEMCA"),
        ("channel", "ЅMS"),  # Cyrillic Ѕ
        ("channel", "ſms"),  # long s, which str.upper() turns into S
        ("channel", "SMS\u200b"),
        ("account", "ac\u200bme"),
        ("account", "acme\u202e"),
    ],
)
def test_invisible_and_look_alike_characters_are_refused(name: str, value: str) -> None:
    """Never silently mapped onto another contact, sender, channel or account: refused,
    naming the field, so the message ends in the dead-letter topic."""
    with pytest.raises(InvalidValue) as info:
        GATE._parse(orjson.dumps({**BASE, name: value}))
    assert info.value.field == name
