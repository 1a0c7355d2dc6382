"""Reading the changelog back for a rebuild: the fast path gives what the list writer
wrote (the packed form of ``pack_entries``, exact timestamps)."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from dnc.domain.changelog import entry_dict
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.domain.timestamps import format_ms, parse_ts
from dnc.errors import InvalidValue
from dnc.index.layout import Layout, entry_slot, pack_entries
from dnc.index.replay import ReplayBuilder
from dnc.settings import IndexSettings

INDEX = Layout(IndexSettings(buckets=1024))


def record(
    key: bytes, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="dnc.changes",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value or b""),
        headers=headers or [],
    )


@given(st.integers(0, 253402300799999))  # up to 9999-12-31
def test_timestamps_we_write_are_read_back_exactly(ms: int) -> None:
    assert ReplayBuilder(INDEX).ms(format_ms(ms), "added_at") == ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T05:31:27.123+00:00",
        "2026-11-26T06:31:27.123+01:00",
        "2026-11-26 05:31:27.123Z",
        "2026-11-26T05:31:27Z",
    ],
)
def test_other_rfc3339_forms_are_read_as_parse_ts_reads_them(text: str) -> None:
    assert ReplayBuilder(INDEX).ms(text, "added_at") == parse_ts(text, "added_at")


@pytest.mark.parametrize(
    "text", ["2026-11-26T05:31:60.123Z", "2026-13-26T05:31:27.123Z", "2026-11-26T05:31:2x.123Z", 5]
)
def test_invalid_timestamps_are_refused(text: object) -> None:
    with pytest.raises(InvalidValue):
        ReplayBuilder(INDEX).ms(text, "added_at")


@given(
    st.sampled_from([None, "SMS", "VOICE", "EMAIL", "WHATSAPP"]),
    st.one_of(st.none(), st.sampled_from(["acme", "447700900123", "news@acme.com"])),
    st.sampled_from(list(Source)),
    st.integers(0, 2**44),
    st.one_of(st.none(), st.integers(0, 2**44)),
)
def test_records_are_packed_as_the_list_writer_packs_them(
    channel: str | None, sender: str | None, source: Source, added: int, expires: int | None
) -> None:
    key = EntryKey("acme", "441234567890", channel, sender)
    entry = Entry(key, source, added, {"kind": "manual"}, expires)
    builder = ReplayBuilder(INDEX)
    out, counters, expiry = builder.build(
        [
            record(key.to_json(), entry.to_json(), [("dnc-ref", b"imp-1")]),
            record(key.to_json(), None),
        ]
    )
    bucket, member, field = INDEX.locate("acme", "441234567890")
    slot = entry_slot(channel, sender)
    assert out == [
        bucket,
        member,
        field,
        slot,
        pack_entries([entry]).decode(),
        bucket,
        member,
        field,
        slot,
        "",
    ]
    assert counters == {("imp-1", "added"): 1}
    # Every record places its key in the expiry index, or takes it out.
    assert expiry == [(key.to_json(), expires), (key.to_json(), None)]


def test_unknown_source_stops_the_rebuild() -> None:
    key = EntryKey("acme", "441234567890", None, None).to_json()
    value = b'{"source":"MAGIC","added_at":"2026-11-26T05:31:27.123Z"}'
    with pytest.raises(ValueError, match="unknown source"):
        ReplayBuilder(INDEX).build([record(key, value)])


@given(
    st.sampled_from([None, "SMS", "EMAIL"]),
    st.one_of(st.none(), st.text(max_size=8)),
    st.sampled_from(list(Source)),
    st.integers(0, 253402300799999),
    st.one_of(st.none(), st.integers(0, 253402300799999)),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
    st.booleans(),
)
def test_entry_dict_is_entry_to_dict(
    channel: str | None,
    sender: str | None,
    source: Source,
    added: int,
    expires: int | None,
    origin: dict[str, int] | None,
    with_origin: bool,
) -> None:
    e = Entry(EntryKey("acme", "441234567890", channel, sender), source, added, origin, expires)
    got = entry_dict(e, origin=with_origin)
    assert got == e.to_dict(origin=with_origin)
    assert list(got) == list(e.to_dict(origin=with_origin))  # the same order, so the same JSON
