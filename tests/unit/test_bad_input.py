"""Hostile input for normalisation, keywords and the opt-out event parsers.

What a user would notice if these broke: the same person written two ways gets two keys
(an opt-out that silently never matches), an invisible character turns one number into
another person's, a disguised STOP is not an opt-out, a disguised START removes one, or a
malformed event stops the opt-out consumer (every later opt-out waits behind it).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dnc.domain.contacts import (
    ContactKind,
    destination_key,
    normalise_contact,
    normalise_email,
    normalise_phone,
    normalise_sender,
)
from dnc.domain.entries import Command
from dnc.domain.events import (
    DeliveryReport,
    InboundMessage,
    JourneyAction,
    OutboundMessage,
    UrlUnsubscribe,
    parse_record,
)
from dnc.domain.keywords import DEFAULT_OPT_IN, DEFAULT_OPT_OUT, KeywordAction, KeywordMatcher
from dnc.errors import InvalidValue, NotJson, PoisonRecord
from dnc.ingest.role import Ingest
from dnc.settings import Settings
from tests.unit.conftest import CostlyWork

PROPERTY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MATCHER = KeywordMatcher.default()

# Invisible characters (Cf): zero-width space / non-joiner / joiner, word joiner, BOM,
# soft hyphen, LTR / RTL marks, embeddings and overrides, isolates.
INVISIBLE = [
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2069",
]  # fmt: skip
SEPARATORS = [" ", "-", ".", "(", ")", "\u00a0", "\u2009", "\u3000", "\u2010", "\u2013", "\u2014"]
# Numbers that phonenumbers accepts as possible international ones, as canonical digits.
PHONES = [
    "441234567890", "447700900123", "12025550143", "33612345678", "4915112345678",
    "5511912345678", "919876543210", "8613812345678", "61412345678", "390612345678",
]  # fmt: skip
EMAILS = ["jane@example.com", "jane.doe+news@example.co.uk", "j_d@sub.example.org",
          "x@example.io"]  # fmt: skip
OTHER_DIGITS = [0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x1040, 0xFF10]  # zero of each script


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """The result, or the PoisonRecord raised (any other exception propagates)."""
    try:
        return fn(*args)
    except PoisonRecord as exc:
        return exc


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def in_script(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


# --- normalisation ----------------------------------------------------------------------------


@st.composite
def written_phone(draw: st.DrawFn) -> tuple[str, str]:
    """(canonical, the same number as a person might write it)."""
    canonical = draw(st.sampled_from(PHONES))
    prefix = draw(st.sampled_from(["", "+", "00", "+ ", "  +"]))
    out = []
    for ch in canonical:
        out.append(ch)
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(SEPARATORS)))
    text = prefix + "".join(out) + draw(st.sampled_from(["", " ", "\n", "\t"]))
    if draw(st.booleans()):
        text = fullwidth(text)
    return canonical, text


@PROPERTY
@given(written_phone())
@example(("441234567890", "＋４４ １２３４ ５６７８９０"))
@example(("441234567890", "0044\u00a01234\u2013567890"))
def test_every_spelling_of_a_number_is_one_key(case: tuple[str, str]) -> None:
    """Write time (ingest, API) and check time (gate) agree on every spelling."""
    canonical, text = case
    assert normalise_contact(text) == (canonical, ContactKind.PHONE)
    assert normalise_phone(text) == canonical
    assert destination_key(text) == canonical
    assert normalise_sender(text) == canonical


@PROPERTY
@given(written_phone(), st.sampled_from(INVISIBLE), st.data())
def test_an_invisible_character_in_a_number_is_refused(
    case: tuple[str, str], invisible: str, data: st.DataObject
) -> None:
    """Never silently read as a (possibly different) number."""
    _, text = case
    at = data.draw(st.integers(0, len(text)))
    hidden = text[:at] + invisible + text[at:]
    for fn in (normalise_phone, lambda v: normalise_contact(v, "destination"), destination_key):
        with pytest.raises(InvalidValue) as info:
            fn(hidden)
        assert str(info.value).split(":")[0] in {"contact", "destination"}


@PROPERTY
@given(st.sampled_from(PHONES), st.sampled_from(OTHER_DIGITS[:-1]))
def test_digits_of_other_scripts_are_refused_not_mapped(canonical: str, zero: int) -> None:
    """NFKC maps full-width digits to ASCII, not Arabic-Indic or Devanagari ones: those
    are refused with a reason, never read as some other number."""
    text = "+" + in_script(canonical, zero)
    with pytest.raises(InvalidValue, match="non-ASCII digit"):
        normalise_phone(text)
    with pytest.raises(InvalidValue):
        destination_key(text)


@st.composite
def written_email(draw: st.DrawFn) -> tuple[str, str]:
    canonical = draw(st.sampled_from(EMAILS))
    flips = draw(st.lists(st.booleans(), min_size=len(canonical), max_size=len(canonical)))
    text = "".join(c.upper() if f else c for c, f in zip(canonical, flips, strict=True))
    return canonical, draw(st.sampled_from(["", " ", "\t"])) + text + draw(
        st.sampled_from(["", " ", "\n"])
    )


@PROPERTY
@given(written_email())
def test_every_spelling_of_an_address_is_one_key(case: tuple[str, str]) -> None:
    canonical, text = case
    assert normalise_contact(text) == (canonical, ContactKind.EMAIL)
    assert destination_key(text) == canonical
    assert normalise_sender(text) == canonical


@PROPERTY
@given(written_email(), st.sampled_from(INVISIBLE), st.data())
def test_an_invisible_character_in_an_address_is_refused(
    case: tuple[str, str], invisible: str, data: st.DataObject
) -> None:
    _, text = case
    at = data.draw(st.integers(1, len(text.strip()) - 1))
    hidden = text.strip()[:at] + invisible + text.strip()[at:]
    with pytest.raises(InvalidValue):
        normalise_email(hidden)
    with pytest.raises(InvalidValue):
        destination_key(hidden)


@pytest.mark.parametrize(
    ("look_alike", "latin"),
    [("jаne@example.com", "jane@example.com"),  # Cyrillic а
     ("jane@exаmple.com", "jane@example.com"),
     ("ʝane@example.com", "jane@example.com")],
)  # fmt: skip
def test_a_look_alike_address_is_another_address(look_alike: str, latin: str) -> None:
    """Homoglyph addresses are different mailboxes: refused or kept apart, never merged
    with the Latin one (that would apply one person's opt-out to somebody else)."""
    try:
        key = destination_key(look_alike)
    except InvalidValue:
        return
    assert key != destination_key(latin)


CONTACTISH = st.one_of(
    st.text(alphabet="0123456789+ -().@abcdefxyzABC\u00a0\u2013０１４＋ｊａｎｅ", max_size=30),
    st.sampled_from(PHONES + EMAILS),
    written_phone().map(lambda c: c[1]),
    written_email().map(lambda c: c[1]),
    st.text(max_size=30),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONTACTISH)
def test_normalisation_is_idempotent_and_check_time_agrees(raw: str) -> None:
    """A canonical key normalises to itself (an entry written from an API call, an
    import or the changelog matches), and the gate's shortcut answers exactly like the
    write-time function."""
    written = outcome(normalise_contact, raw, "destination")
    checked = outcome(destination_key, raw)
    if isinstance(written, InvalidValue):
        assert isinstance(checked, InvalidValue) and str(checked) == str(written)
        return
    assert not isinstance(checked, BaseException)
    key, kind = written
    assert checked == key
    assert normalise_contact(key) == (key, kind)
    assert destination_key(key) == key


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.text(max_size=40), CONTACTISH, st.sampled_from(["ACME", "ＡＣＭＥ", "ﬃ x", "ß"]))
)
def test_sender_normalisation_is_idempotent(raw: str) -> None:
    sender = outcome(normalise_sender, raw)
    if isinstance(sender, str):
        assert normalise_sender(sender) == sender


@pytest.mark.parametrize(
    "raw",
    ["AC\u200bME", "\u202eEMCA", "ACME\u200f", "AC\u00adME", "AC\x00ME", "AC\x1bME"],
)
def test_invisible_or_control_characters_in_a_sender_are_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"sender: .* contains an? (invisible|control)"):
        normalise_sender(raw)


# --- keywords ---------------------------------------------------------------------------------


@PROPERTY
@given(
    st.text(max_size=40) | st.sampled_from([*DEFAULT_OPT_OUT, *DEFAULT_OPT_IN, "STOP ALL"]),
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from(INVISIBLE)), max_size=6),
)
def test_invisible_characters_never_change_what_a_message_means(
    text: str, inserts: list[tuple[int, str]]
) -> None:
    hidden = text
    for position, ch in inserts:
        at = min(position, len(hidden))
        hidden = hidden[:at] + ch + hidden[at:]
    assert MATCHER.classify(hidden) == MATCHER.classify(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S\u200bT\u200cO\u200dP", KeywordAction.OPT_OUT),
        ("\u202eSTOP", KeywordAction.OPT_OUT),
        ("\u200fSTOP\u200f", KeywordAction.OPT_OUT),
        ("ＳＴＯＰ", KeywordAction.OPT_OUT),
        ("𝐒𝐓𝐎𝐏", KeywordAction.OPT_OUT),
        ("ЅТОР", KeywordAction.OPT_OUT),  # Cyrillic
        ("ꜱᴛᴏᴘ", KeywordAction.OPT_OUT),  # small capitals
        ("S\u0336T\u0336O\u0336P", KeywordAction.OPT_OUT),  # struck through, still STOP
        ("ＳＴＯＰ ＡＬＬ", KeywordAction.OPT_OUT_ALL),
        ("stop\u3000all", KeywordAction.OPT_OUT_ALL),
        ("STOP\nALL", KeywordAction.OPT_OUT_ALL),
        ("ＳＴＡＲＴ", KeywordAction.OPT_IN),
        ("ЅTART", None),  # a look-alike START never removes an opt-out
        ("STАRT", None),  # Cyrillic А
        ("ST0P", None),
        ("S.T.O.P", None),
        ("STOP\u200b please", None),
    ],
)
def test_unicode_tricks_on_keywords(text: str, expected: KeywordAction | None) -> None:
    assert MATCHER.classify(text) is expected


@pytest.mark.parametrize("text", ["¡BAJA!", "¡PARAR!", "«STOP»", '"STOP"', "(STOP)", "¿BAJA?"])
def test_leading_punctuation_around_an_opt_out(text: str) -> None:
    assert MATCHER.classify(text) is not None


# --- event parsing ----------------------------------------------------------------------------

VALID: dict[type[BaseModel], dict[str, Any]] = {
    InboundMessage: {
        "message_id": "mo-1", "account": "acme", "channel": "SMS", "from": "+44 1234 567890",
        "to": "ACME", "text": "Stop", "received_at": "2026-11-26T05:31:27.123Z",
    },
    UrlUnsubscribe: {
        "event_id": "u-1", "account": "acme", "contact": "jane@example.com", "channel": "EMAIL",
        "sender": "news@acme.com", "campaign_id": "c-9", "occurred_at": "2026-11-26T05:31:27.123Z",
    },
    JourneyAction: {
        "event_id": "j-1", "action": "add", "accounts": ["acme", "acme-eu"],
        "contact": "441234567890", "channel": "WHATSAPP", "sender": None,
        "journey_id": "welcome-flow", "occurred_at": "2026-11-26T05:31:27.123Z",
    },
    DeliveryReport: {
        "report_id": "r-1", "account": "acme", "channel": "SMS", "sender": "ACME",
        "destination": "441234567890", "provider": "twilio", "error_code": "21610",
    },
    OutboundMessage: {
        "message_id": "m-1", "account": "acme", "channel": "SMS", "sender": "ACME",
        "destination": "441234567890",
    },
}  # fmt: skip
MODELS = list(VALID)


def field_names(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def named_field(exc: PoisonRecord) -> str:
    """The field an error message starts with (``accounts.0: ...`` → ``accounts``)."""
    return str(exc).split(":", 1)[0].split(".", 1)[0]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_valid_examples_parse(model: type[BaseModel]) -> None:
    parse_record(model, orjson.dumps(VALID[model]))


JSON_ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=10,
)  # fmt: skip


@st.composite
def mangled(draw: st.DrawFn, model: type[BaseModel]) -> bytes:
    """A valid event with fields removed, retyped or replaced by hostile text."""
    event = dict(VALID[model])
    for name in list(event):
        choice = draw(st.integers(0, 6))
        if choice == 0:
            del event[name]
        elif choice == 1:
            event[name] = draw(JSON_ANY)
        elif choice == 2:
            event[name] = draw(st.text(max_size=30) | st.sampled_from(
                ["", " ", "\u200b", "STOP", "x" * 5000, "١٢٣", "null", "{}"]))  # fmt: skip
    if draw(st.booleans()):
        event.update(draw(st.dictionaries(st.text(max_size=8), JSON_ANY, max_size=3)))
    return orjson.dumps(event)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parse_record_names_a_field_of_the_event(
    model: type[BaseModel], data: st.DataObject
) -> None:
    raw = data.draw(st.one_of(mangled(model), st.binary(max_size=60),
                              JSON_ANY.map(orjson.dumps)))  # fmt: skip
    result = outcome(parse_record, model, raw)  # anything but PoisonRecord escapes
    if isinstance(result, PoisonRecord):
        assert named_field(result) in field_names(model) | {"value"}, str(result)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("wrong", [42, 1.5, True, ["x"], {"x": 1}], ids=repr)
def test_a_wrong_type_is_refused_naming_the_field(model: type[BaseModel], wrong: Any) -> None:
    for name, value in VALID[model].items():
        if value is None or (name == "error_code" and isinstance(wrong, int)):
            continue
        if name in EVENT_TIMES:  # ignored, not refused: see the next test
            continue
        if name == "accounts" and isinstance(wrong, list):
            continue
        with pytest.raises(InvalidValue) as info:
            parse_record(model, orjson.dumps({**VALID[model], name: wrong}))
        assert named_field(info.value) == name, str(info.value)


EVENT_TIMES = {"received_at", "occurred_at"}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("wrong", [42, True, ["x"], "yesterday", "2026-11-26T05:31:27", "9" * 500])
def test_a_bad_event_time_is_ignored_and_the_record_still_counts(
    model: type[BaseModel], wrong: Any
) -> None:
    """An event's own time is information: a STOP must not be lost because its
    received_at is malformed. The value becomes null; the record is processed."""
    for name in EVENT_TIMES & set(VALID[model]):
        parsed = parse_record(model, orjson.dumps({**VALID[model], name: wrong}))
        assert getattr(parsed, name) is None


# The fields whose size the contract models bound (timestamps and free-form codes are
# not bounded by the models; see the next test for what that means for the consumer).
BOUNDED = [
    (InboundMessage, ["message_id", "account", "from", "to", "text"]),
    (UrlUnsubscribe, ["event_id", "account", "contact", "sender", "campaign_id", "token"]),
    (JourneyAction, ["event_id", "contact", "sender", "journey_id"]),
    (DeliveryReport, ["report_id", "account", "sender", "destination", "provider"]),
    (OutboundMessage, ["message_id", "account", "sender", "destination"]),
]


@pytest.mark.parametrize(
    ("model", "name"),
    [(m, n) for m, names in BOUNDED for n in names],
    ids=lambda x: x if isinstance(x, str) else x.__name__,
)
def test_a_huge_value_is_refused_before_costly_work_naming_the_field(
    model: type[BaseModel], name: str, costly: CostlyWork
) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_record(model, orjson.dumps({**VALID[model], name: "9" * 2_000_000}))
    assert costly.longest < costly.BOUNDED  # never normalised, parsed or validated
    assert named_field(info.value) == name
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    "raw",
    [None, b"", b"\xff\xfe\x00garbage", b"[1,2]", b'"STOP"', b"null", b"{", b"{}{}",
     json.dumps({"a": 1}).encode("utf-16"), b"\xef\xbb\xbf{}", b'{"a":NaN}'],
)  # fmt: skip
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_what_is_not_a_json_object_is_not_json(model: type[BaseModel], raw: bytes | None) -> None:
    with pytest.raises(NotJson) as info:
        parse_record(model, raw)
    assert str(info.value).startswith("value: ")


# --- the opt-out consumer's parsers, record by record -----------------------------------------

INGEST = Ingest(Settings(api={"unsubscribe_keys": ["k" * 40]}))  # builds no connection
TOPICS = INGEST.settings.topics
PARSERS: dict[type[BaseModel], tuple[str, Callable[..., list[Command]]]] = {
    InboundMessage: (TOPICS.inbound_messages, INGEST._inbound),
    UrlUnsubscribe: (TOPICS.url_unsubscribes, INGEST._url),
    JourneyAction: (TOPICS.journey_actions, INGEST._journey),
    DeliveryReport: (TOPICS.delivery_reports, INGEST.signals.commands),
}


def record(topic: str, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 7, 0, 0, None, value, None, 0, len(value or b""), ())


@pytest.mark.parametrize("model", list(PARSERS), ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_ingest_turns_any_record_into_commands_or_a_dead_letter(
    model: type[BaseModel], data: st.DataObject
) -> None:
    """Anything but a PoisonRecord would stop the opt-out consumer, and every later
    opt-out would wait behind the bad record."""
    topic, parse = PARSERS[model]
    raw = data.draw(st.one_of(mangled(model), st.binary(max_size=60), st.none(),
                              JSON_ANY.map(orjson.dumps)))  # fmt: skip
    commands = outcome(parse, record(topic, raw), 1_800_000_000_000)
    if isinstance(commands, PoisonRecord):
        assert named_field(commands) in field_names(model) | {"value", "token"}, str(commands)
        return
    assert all(isinstance(c, Command) and c.ops for c in commands)


@pytest.mark.parametrize(
    ("model", "name"),
    [(m, n) for m in PARSERS for n, v in VALID[m].items() if isinstance(v, str)],
    ids=lambda x: x if isinstance(x, str) else x.__name__,
)
def test_a_huge_value_never_reaches_the_list_commands(model: type[BaseModel], name: str) -> None:
    """Whatever the size of a field, the command it leads to stays small: a command
    larger than the broker's record limit (1 MB by default) cannot be produced, and the
    opt-out consumer would stop on it and retry it for ever."""
    topic, parse = PARSERS[model]
    value = {**VALID[model], name: "2026-11-26T05:31:27.123Z" + "9" * 600_000}
    commands = outcome(parse, record(topic, orjson.dumps(value)), 1)
    if isinstance(commands, PoisonRecord):
        assert named_field(commands) == name
        return
    assert all(len(c.to_json()) < 16_384 for c in commands), f"{name} went into the command"


def inbound(text: str, sender_number: str = "+44 1234 567890") -> bytes:
    return orjson.dumps({**VALID[InboundMessage], "text": text, "from": sender_number})


@pytest.mark.parametrize(
    "text", ["STOP", "S\u200bTOP", "ＳＴＯＰ", "\u202eSTOP", "ЅТОР", "stop!!!", " Stop. "]
)
@pytest.mark.parametrize(
    "number",
    ["+44 1234 567890", "＋４４ １２３４ ５６７８９０", "0044-1234-567890", "441234567890"],
)
def test_a_disguised_stop_from_any_spelling_is_the_same_opt_out(text: str, number: str) -> None:
    topic, parse = PARSERS[InboundMessage]
    (plain,) = parse(record(topic, inbound("STOP")), 1)
    (command,) = parse(record(topic, inbound(text, number)), 1)
    assert [(o.op, o.key) for o in command.ops] == [(o.op, o.key) for o in plain.ops]
    assert command.ops[0].key.contact == "441234567890"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+44 1234\u200b567890", "invisible character U+200B"),
        ("\u202e+44 1234 567890", "invisible character U+202E"),
        ("+٤٤ ١٢٣٤ ٥٦٧٨٩٠", "non-ASCII digit"),
        ("+44 1234 56789O", "is not a phone number or e-mail address"),  # letter O
    ],
)
def test_a_stop_from_a_number_with_hidden_characters_is_dead_lettered(
    number: str, reason: str
) -> None:
    topic, parse = PARSERS[InboundMessage]
    with pytest.raises(InvalidValue) as info:
        parse(record(topic, inbound("STOP", number)), 1)
    assert info.value.field == "from" and reason in str(info.value)


def test_invisible_characters_are_what_we_think_they_are() -> None:
    assert {unicodedata.category(c) for c in INVISIBLE} == {"Cf"}
