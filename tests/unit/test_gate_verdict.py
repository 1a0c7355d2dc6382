"""The blocked wrapper's entry: the gate renders and remembers it, and must say exactly
what the rule (``entries.blocking_entries``) and ``Entry.to_dict`` say, also when an
entry expires between two messages."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dnc.domain.entries import Entry, EntryKey, Source, blocking_entries
from dnc.gate.role import Gate
from dnc.index.layout import fingerprint, pack_entries
from dnc.settings import Settings

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
