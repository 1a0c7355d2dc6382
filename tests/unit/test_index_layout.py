"""Index layout: packing round trip, stable placement, partitioning."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dnc.domain.channels import Channel
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.index.layout import CHANNEL_CODE, CODE_CHANNEL, Layout, pack_entries, unpack_entries
from dnc.settings import IndexSettings

senders = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20),
)
channels = st.sampled_from([None, "SMS", "MMS", "VOICE", "VIBER", "WHATSAPP", "RCS", "EMAIL"])


@given(
    st.lists(
        st.tuples(
            channels,
            senders,
            st.sampled_from(list(Source)),
            st.integers(0, 2**45),
            st.one_of(st.none(), st.integers(0, 2**45)),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_packed_entries_round_trip(
    rows: list[tuple[str | None, str | None, Source, int, int | None]],
) -> None:
    entries = [
        Entry(EntryKey("acme", "441234567890", ch, s), src, added, None, exp)
        for ch, s, src, added, exp in rows
    ]
    assert unpack_entries("acme", "441234567890", pack_entries(entries)) == entries


def test_placement_is_stable_and_within_range() -> None:
    index = Layout(IndexSettings(buckets=1024))
    bucket, member, field = index.locate("acme", "441234567890")
    assert (bucket, member, field) == index.locate("acme", "441234567890")
    assert 0 <= bucket < 1024 and -(2**31) <= member < 2**31
    assert field.startswith(b"acme\x1f") and b"441234567890" not in field  # a contact id
    assert index.locate("acme-eu", "441234567890")[2] != field


def test_list_partition_spreads_contacts() -> None:
    counts = [0] * 6
    for i in range(6000):
        counts[Layout(IndexSettings()).partition("acme", f"4412345{i:05d}", 6)] += 1
    assert min(counts) > 800


def test_every_channel_has_a_storage_code_of_its_own() -> None:
    assert set(CHANNEL_CODE) == {*Channel, None}
    assert len(set(CHANNEL_CODE.values())) == len(CHANNEL_CODE)
    assert all(type(CODE_CHANNEL[code]) in (str, type(None)) for code in CODE_CHANNEL)
