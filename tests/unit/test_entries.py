"""The list's rules as pure logic: rule 1, opt-in semantics, blocking, specificity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnc.domain.entries import (
    Command,
    ContactState,
    Entry,
    EntryKey,
    Op,
    Source,
    apply_op,
    blocking_entries,
)
from dnc.domain.timestamps import _format_ms_datetime, format_ms

A, C = "acme", "441234567890"


def key(channel: str | None = "SMS", sender: str | None = "acme") -> EntryKey:
    return EntryKey(A, C, channel, sender)


def cmd(*ops: Op, at: int = 1000) -> Command:
    return Command(list(ops), at, {"kind": "test"}, "ref-1")


def test_adding_an_existing_key_changes_nothing_and_keeps_the_first_source_and_time() -> None:
    state = ContactState()
    assert apply_op(state, Op("add", key(), Source.END_USER_MESSAGE), cmd(at=1))[0] == "added"
    outcome, change = apply_op(state, Op("add", key(), Source.MANUAL), cmd(at=2))
    assert (outcome, change) == ("already_present", None)
    entry = state.entries[("SMS", "acme")]
    assert (entry.source, entry.added_at) == (Source.END_USER_MESSAGE, 1)


def test_removing_a_missing_key_is_not_an_error() -> None:
    assert apply_op(ContactState(), Op("remove", key()), cmd()) == ("absent", None)


def test_opt_in_removes_only_entries_of_the_persons_own_messages() -> None:
    state = ContactState()
    apply_op(state, Op("add", key(), Source.END_USER_MESSAGE), cmd())
    apply_op(state, Op("add", key(sender=None), Source.MANUAL), cmd())
    own = apply_op(state, Op("remove_if_source", key(), Source.END_USER_MESSAGE), cmd())
    manual = apply_op(
        state, Op("remove_if_source", key(sender=None), Source.END_USER_MESSAGE), cmd()
    )
    assert own[0] == "removed" and own[1] is not None and own[1].previous is not None
    assert manual == ("kept", None)
    assert list(state.entries) == [("SMS", None)]


def test_rule_2_channel_and_sender_or_all() -> None:
    entries = [
        Entry(key("SMS", "acme"), Source.MANUAL, 5),
        Entry(key(None, "acme"), Source.MANUAL, 4),
        Entry(key("SMS", None), Source.MANUAL, 3),
        Entry(key(None, None), Source.MANUAL, 2),
        Entry(key("VOICE", "acme"), Source.MANUAL, 1),
    ]
    found = blocking_entries(entries, "SMS", "acme", now=10)
    assert [(e.key.channel, e.key.sender) for e in found] == [
        ("SMS", "acme"),
        ("SMS", None),
        (None, "acme"),
        (None, None),
    ]
    assert [e.key.channel for e in blocking_entries(entries, "VOICE", "other", 10)] == [None]
    assert blocking_entries(entries[:1], "SMS", "other", 10) == []


def test_expired_entries_do_not_block() -> None:
    e = Entry(key(), Source.MANUAL, 1, None, expires_at=100)
    assert e.blocks("SMS", "acme", now=99)
    assert not e.blocks("SMS", "acme", now=100)


def test_commands_round_trip_through_json() -> None:
    original = cmd(Op("add", key(), Source.IMPORT, expires_at=5), Op("remove", key(None, None)))
    again = Command.from_json(original.to_json())
    assert again == original


def test_timestamps_round_trip_to_the_millisecond() -> None:
    from dnc.domain.timestamps import format_ms, parse_ts

    for ms in [0, 1007, 1_795_673_733_664, 2_500_000_000_123, 4_102_444_800_999]:
        assert parse_ts(format_ms(ms), "t") == ms
    assert parse_ts("2026-11-26T06:31:27.123+01:00", "t") == parse_ts(
        "2026-11-26T05:31:27.123Z", "t"
    )


def test_remembered_timestamps_answer_and_refuse_like_parsing_them() -> None:
    from dnc.domain.timestamps import parse_repeated_ts, parse_ts
    from dnc.errors import InvalidValue

    for raw in ["2026-11-26T05:31:27.123Z", "2026-11-26T06:31:27.123+01:00"] * 2:
        assert parse_repeated_ts(raw, "t") == parse_ts(raw, "t")
    # A bad time is refused every time it comes (an error is never remembered as a value).
    for raw in ["2026-11-26T05:31:27", "2026-11-26T05:31:27", "soon", 17, None, ["x"]]:
        with pytest.raises(InvalidValue) as refused:
            parse_repeated_ts(raw, "added_at")
        assert "added_at" in str(refused.value)


def test_a_view_row_refuses_a_source_the_contract_does_not_have() -> None:
    from dnc.api.view.store import parse_changes

    key = b'["acme","+447700900123","SMS",null]'
    good = b'{"source":"IMPORT","added_at":"2026-11-26T05:31:27.123Z"}'
    _, rows, bad = parse_changes([(0, 0, key, good), (0, 1, key[:-1] + b",1]", good)])
    assert bad == 1 and rows[0][4] == "IMPORT"
    _, rows, bad = parse_changes([(0, 2, key, good.replace(b"IMPORT", b"import"))])
    assert (rows, bad) == ([], 1)


def test_an_add_never_shortens_an_entry_but_lengthens_it() -> None:
    state = ContactState()
    apply_op(state, Op("add", key(), Source.CHANNEL_SIGNAL, expires_at=100), cmd(at=1))
    assert apply_op(state, Op("add", key(), Source.MANUAL, expires_at=50), cmd(at=2))[0] == (
        "already_present"
    )
    outcome, change = apply_op(state, Op("add", key(), Source.END_USER_MESSAGE), cmd(at=3))
    assert outcome == "extended" and change is not None and change.action == "extend"
    entry = state.entries[("SMS", "acme")]
    assert (entry.source, entry.added_at, entry.expires_at) == (Source.CHANNEL_SIGNAL, 1, None)


def test_the_expiry_sweep_removes_only_what_has_expired() -> None:
    state = ContactState()
    apply_op(state, Op("add", key(), Source.CHANNEL_SIGNAL, expires_at=100), cmd(at=1))
    apply_op(state, Op("add", key(sender=None), Source.MANUAL), cmd(at=1))
    assert apply_op(state, Op("remove_if_expired", key()), cmd(at=99))[0] == "kept"
    assert apply_op(state, Op("remove_if_expired", key(sender=None)), cmd(at=500))[0] == "kept"
    outcome, change = apply_op(state, Op("remove_if_expired", key()), cmd(at=100))
    assert outcome == "expired" and change is not None and change.action == "expire"


def test_a_confirmation_goes_with_the_add_that_creates_the_entry_only() -> None:
    state = ContactState()
    confirm = {"text": "You are unsubscribed"}
    first = apply_op(state, Op("add", key(), Source.END_USER_MESSAGE, confirm=confirm), cmd())
    again = apply_op(state, Op("add", key(), Source.END_USER_MESSAGE, confirm=confirm), cmd())
    assert first[1] is not None and first[1].confirm == confirm
    assert again == ("already_present", None)


@given(st.integers(-(10**13), 253_402_300_799_999))
def test_the_fast_timestamp_format_writes_what_datetime_writes(ms: int) -> None:
    """format_ms renders most times through gmtime; it must be the contract's format to the
    character (four-digit years, milliseconds, Z) wherever datetime can say it."""
    assert format_ms(ms) == _format_ms_datetime(ms)
    for edge in (-1, 0, 999, 253_402_300_799_999):
        assert format_ms(edge) == _format_ms_datetime(edge)
