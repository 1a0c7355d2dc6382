"""The blocked wrapper's entry: the gate renders and remembers it, and must say exactly
what the rule (``entries.blocking_entries``) and ``Entry.to_dict`` say, also when an
entry expires between two messages."""

from __future__ import annotations

import importlib.util

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnc.domain.entries import Entry, EntryKey, Source, blocking_entries
from dnc.gate.decisions import Parsed
from dnc.gate.role import Gate
from dnc.index.layout import fingerprint, pack_entries
from dnc.settings import GateSettings, Settings

GATE = Gate(Settings())
NOW = 1_795_671_087_123

rows = st.lists(
    st.tuples(
        st.sampled_from([None, "SMS", "VOICE"]),
        st.sampled_from([None, "acme", "other"]),
        st.sampled_from(list(Source)),
        # Often the same time: the first of equals must win, as a stable sort keeps it.
        st.one_of(st.sampled_from([NOW - 7, NOW - 3]), st.integers(0, NOW)),
        st.one_of(st.none(), st.just(NOW), st.integers(NOW - 1000, NOW + 1000)),
        st.booleans(),  # stored under the contact's id (lower-case source code)
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda r: (r[0], r[1]),
)


def expected(entries: list[Entry], channel: str, sender: str, now: int) -> bytes | None:
    """The reference: the rule on Entry objects, rendered by the contract's to_dict (the
    gate reads the packed entries directly, dnc.gate.verdicts)."""
    found = blocking_entries(entries, channel, sender, now)
    return orjson.dumps(found[0].to_dict(origin=False)) if found else None


@given(rows, st.sampled_from(["SMS", "VOICE", "VIBER"]), st.sampled_from(["acme", "x"]))
@settings(max_examples=500, deadline=None)
def test_verdict_is_the_rule_and_the_contract_rendering(
    rows: list[tuple[str | None, str | None, Source, int, int | None, bool]],
    channel: str,
    sender: str,
) -> None:
    account, contact = "acme", "441234567890"
    entries = [
        Entry(EntryKey(account, contact, ch, s), src, added, None, exp, as_id)
        for ch, s, src, added, exp, as_id in rows
    ]
    raw = pack_entries(entries)
    field = GATE.index.field(account, contact)
    p = (account, channel, sender, contact, fingerprint(field), field)
    for now in (NOW, NOW + 2000, NOW):  # the second and third see a remembered verdict
        assert GATE.reader.verdict(p, raw, now) == expected(entries, channel, sender, now)


# --- the compiled blocked record (native/hotpath/src/verdict.rs) -------------------------

# make deps always builds the extension; without it only these tests are skipped.
compiled = pytest.mark.skipif(
    importlib.util.find_spec("dnc_hotpath") is None, reason="dnc_hotpath is not built"
)
COMPILED = Gate(Settings(gate=GateSettings(native_check=True)))
PYTHON = Gate(Settings(gate=GateSettings(native_check=False)))
ODD = st.sampled_from(["acme", "", 'q"uote', "back\\slash", "tab\there", "é-ü", "\x7f", "x\x1fy"])
# Times across format_ms's fast path and past it (the compiled side leaves those to Python).
WHEN = st.one_of(
    st.integers(0, NOW + 2000),
    st.sampled_from([-1, -86_400_001, 253_402_300_799_999, 253_402_300_800_000]),
)
odd_rows = st.lists(
    st.tuples(
        st.sampled_from([None, "SMS", "VOICE", "EMAIL"]),
        st.one_of(st.none(), ODD),
        st.sampled_from(list(Source)),
        WHEN,
        st.one_of(st.none(), WHEN),
        st.booleans(),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda r: (r[0], r[1] or None),
)


def blocked_record(gate: Gate, p: Parsed, raw: bytes, now: int) -> object:
    """The record for dnc.blocked, None, or the type of the error (the same both ways)."""
    try:
        return gate.reader.blocked(p, raw, b'{"message_id":"m-1"}', now, b"2026-12-03T07:00Z")
    except Exception as exc:
        return type(exc)


@compiled
@given(
    odd_rows,
    st.sampled_from(["SMS", "VOICE"]),
    ODD,
    st.sampled_from(["acme", 'ac"me', "acmé"]),
    st.sampled_from(["441234567890", "jane@example.com", "h1:abc"]),
    st.sampled_from([NOW, NOW + 2000]),
)
@settings(max_examples=800, deadline=None)
def test_the_compiled_blocked_record_is_the_python_one(
    rows: list[tuple[str | None, str | None, Source, int, int | None, bool]],
    channel: str,
    sender: str,
    account: str,
    contact: str,
    now: int,
) -> None:
    entries = [
        Entry(EntryKey(account, contact, ch, s or None), src, added, None, exp, as_id)
        for ch, s, src, added, exp, as_id in rows
    ]
    raw = pack_entries(entries)
    # The field stands for (account, contact): the Python side remembers verdicts by it.
    p = (account, channel, sender, contact, 0, f"{account}\x1f{contact}".encode())
    assert blocked_record(COMPILED, p, raw, now) == blocked_record(PYTHON, p, raw, now)


@compiled
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"S\x1f\x1fM\x1f5",
        b"S\x1f\x1fM\x1f5\x1f\x1f",
        b"Q\x1f\x1fM\x1f5\x1f",
        b"S\x1f\x1fZ\x1f5\x1f",
        b"S\x1f\x1fM\x1f+5\x1f",
        b"S\x1f\x1fM\x1f5\x1fx",
        b"\xff\x1f\x1fM\x1f5\x1f",
        b"SS\x1f\x1fM\x1f5\x1f",
    ],
)
def test_packed_entries_the_compiled_side_cannot_read_are_pythons(raw: bytes) -> None:
    """Broken or unusual packed records: the same answer or the same error both ways."""
    p = ("acme", "SMS", "ACME", "441234567890", 0, b"acme\x1f441234567890")
    assert blocked_record(COMPILED, p, raw, NOW) == blocked_record(PYTHON, p, raw, NOW)


@compiled
def test_the_compiled_side_renders_the_common_case_itself() -> None:
    """Not "ask Python" for a plain entry (or the twin test above would prove nothing)."""
    import dnc_hotpath

    verdicts = dnc_hotpath.Verdicts({"S": "SMS", "*": None}, {"M": "MANUAL"})
    p = ("acme", "SMS", "ACME", "441234567890", 0, b"field")
    out = verdicts.envelope(b"{}", p, b"*\x1f\x1fM\x1f1700000000000\x1f", NOW, b"T")
    assert out == (
        b'{"message":{},"reason":"DO_NOT_CONTACT","entry":{"account":"acme",'
        b'"contact":"441234567890","channel":null,"sender":null,"source":"MANUAL",'
        b'"added_at":"2023-11-14T22:13:20.000Z"},"checked_at":"T"}'
    )
    assert verdicts.envelope(b"{}", p, b"V\x1f\x1fM\x1f1700000000000\x1f", NOW, b"T") is False
    assert verdicts.envelope(b"{}", p, b"S\x1fother\x1fM\x1f1700000000000\x1f", NOW, b"T") is None
