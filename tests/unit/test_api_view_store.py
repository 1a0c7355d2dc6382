"""The list view's SQLite store against a plain-Python model of the list: applying the
changelog (upserts, tombstones, re-adds), every filter, keyset pagination through ties,
and the file's life (offsets kept, foreign or broken files rebuilt, one writer only)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import orjson
import pytest

from dnc.api.routes.check import verdict
from dnc.api.view import store
from dnc.api.view.listview import view_file
from dnc.api.view.pages import decode_cursor, encode_cursor
from dnc.api.view.query import EntryQuery
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.domain.timestamps import format_ms
from dnc.errors import ConfigurationError, InvalidValue
from dnc.settings import ApiSettings, Settings

ACCOUNTS = ("acme", "acme-eu", "beta")
CONTACTS = ("441234567890", "441234567891", "447700900123", "jane@example.com", "joe@ex.org")
CHANNELS = (None, "SMS", "VIBER", "EMAIL")
SENDERS = (None, "acme", "447700900001")
# 2026: dnc.timestamps.parse_ts goes through a float and is off by 1 ms for some instants
# (e.g. 1970-01-01T00:00:01.007Z, and 0.6% of those after 2038).
T0 = 1_795_671_087_123


_OFFSETS = itertools.count()


def change(entry: Entry) -> store.Change:
    """The entry's changelog record, at the next offset of partition 0."""
    return 0, next(_OFFSETS), entry.key.to_json(), entry.to_json()


def listed(record: store.Change, entry: Entry) -> store.Listed:
    """The entry as a page lists it: ordered, among equal times, by its record's place."""
    return entry, store.changelog_kh(record[0], record[1])


def random_entry(rng: random.Random) -> Entry:
    key = EntryKey(
        rng.choice(ACCOUNTS), rng.choice(CONTACTS), rng.choice(CHANNELS), rng.choice(SENDERS)
    )
    origin = {"kind": "test", "n": rng.randrange(1000)} if rng.random() < 0.8 else None
    return Entry(key, rng.choice(list(Source)), T0 + rng.randrange(8), origin)


def matches(q: EntryQuery, e: Entry) -> bool:
    k = e.key
    return (
        k.account in q.accounts
        and (
            not (q.contacts or q.contact_prefixes)
            or k.contact in q.contacts
            or any(k.contact.startswith(p) for p in q.contact_prefixes)
        )
        and (not q.channels or k.channel in q.channels)
        and (not q.senders or k.sender in q.senders)
        and (not q.sources or e.source.value in q.sources)
        and (q.added_from is None or e.added_at >= q.added_from)
        and (q.added_to is None or e.added_at < q.added_to)
    )


def random_query(rng: random.Random) -> EntryQuery:
    def some(values: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(rng.sample(values, rng.randrange(len(values)))) if rng.random() < 0.5 else ()

    return EntryQuery(
        accounts=tuple(rng.sample(ACCOUNTS, rng.randrange(1, 4))),
        contacts=some(CONTACTS),  # type: ignore[arg-type]
        contact_prefixes=rng.choice([(), ("4412",), ("j",), ("4477", "joe@")]),
        channels=some(CHANNELS),  # type: ignore[arg-type]
        senders=some(SENDERS),  # type: ignore[arg-type]
        sources=some(tuple(s.value for s in Source)),  # type: ignore[arg-type]
        added_from=rng.choice([None, T0 + 2]),
        added_to=rng.choice([None, T0 + 6]),
    )


@pytest.fixture
def writer(tmp_path: Path) -> store.ViewWriter:
    w = store.ViewWriter(tmp_path / "v.sqlite3", {"topic": "t"})
    w.open()
    return w


def test_the_store_answers_like_the_model_for_random_changes_and_queries(
    writer: store.ViewWriter,
) -> None:
    rng = random.Random(3)
    model: dict[EntryKey, store.Listed] = {}
    for batch in range(30):
        records: list[store.Change] = []
        for _ in range(rng.randrange(1, 40)):
            if model and rng.random() < 0.3:
                gone = rng.choice(list(model))
                del model[gone]
                records.append((0, next(_OFFSETS), gone.to_json(), None))
            else:
                e = random_entry(rng)
                records.append(change(e))
                model[e.key] = listed(records[-1], e)
        # A foreign record is skipped, not fatal.
        records.append((0, next(_OFFSETS), b"not json", b"{}"))
        assert writer.apply(records, {0: batch + 1}) == 1
    assert writer.offsets() == {0: 30}

    conn = store.connect(writer.path, readonly=True)
    for _ in range(200):
        q = random_query(rng)
        expected = sorted(
            (le for le in model.values() if matches(q, le[0])),
            key=store.position_of,
            reverse=True,
        )
        assert store.count(conn, q) == len(expected)
        assert set(store.keys(conn, q)) == {e.key for e, _ in expected}
        limit = rng.randrange(1, 6)
        walked: list[store.Listed] = []
        after = None
        while True:
            got = store.page(conn, q, limit, after)
            walked += got
            if len(got) < limit:
                break
            after = store.position_of(got[-1])
        assert walked == expected
    wanted = [*list(model)[:5], EntryKey("acme", "nobody@example.com", None, None)]
    assert store.get(conn, wanted) == {k: model[k][0] for k in wanted[:5]}
    assert store.listed(conn, wanted) == {k: model[k] for k in wanted[:5]}
    conn.close()


def test_entries_of_one_time_are_listed_as_the_changelog_wrote_them(
    writer: store.ViewWriter,
) -> None:
    """One import gives all its entries one added_at: the newest written lists first, on
    every instance alike (the changelog's positions are the same everywhere)."""
    kh = store.changelog_kh
    assert kh(0, 1) < kh(5, 1) < kh(0, 2) < kh(0, 2**48 - 1)  # partitions interleave
    assert kh(0, 0) == -(2**63) and kh(2**16 - 1, 2**48 - 1) == 2**63 - 1
    for part, offset in [(-1, 0), (0, -1), (2**16, 0), (0, 2**48)]:
        with pytest.raises(ValueError, match=f"partition {part}, offset {offset}"):
            kh(part, offset)
    a, b, c = (
        Entry(EntryKey("acme", f"4412345678{i}", None, None), Source.IMPORT, T0) for i in "abc"
    )
    writer.apply([(1, 10, *change(a)[2:]), (0, 11, *change(b)[2:]), (2, 9, *change(c)[2:])], {})
    conn = store.connect(writer.path, readonly=True)
    q = EntryQuery(accounts=("acme",))
    assert [e.key.contact for e, _ in store.page(conn, q, 10, None)] == [
        b.key.contact,
        a.key.contact,
        c.key.contact,
    ]
    # Rewritten later (an extension: same added_at), an entry moves to the front.
    writer.apply([(2, 12, *change(Entry(c.key, Source.IMPORT, T0, None, T0 + 9))[2:])], {})
    (first, _), *_ = store.page(conn, q, 10, None)
    assert first.key == c.key
    conn.close()


def test_offsets_survive_a_restart_and_a_foreign_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    e = Entry(EntryKey("acme", "441234567890", None, None), Source.MANUAL, 5, {"kind": "api"})
    first = store.ViewWriter(path, {"topic": "t"})
    first.open()
    with pytest.raises(ConfigurationError, match="another API process"):
        store.ViewWriter(path, {"topic": "t"}).open()
    first.apply([change(e)], {0: 7, 1: 3})
    first.close()

    again = store.ViewWriter(path, {"topic": "t"})
    assert again.open() == {0: 7, 1: 3}
    again.close()

    other = store.ViewWriter(path, {"topic": "another-changelog"})
    assert other.open() == {}
    assert other.conn.execute("SELECT count(*) FROM entries").fetchone() == (0,)
    other.close()

    path.write_bytes(b"this is not a database" * 100)
    broken = store.ViewWriter(path, {"topic": "t"})
    assert broken.open() == {}
    broken.close()


def test_cursors_and_file_names() -> None:
    position = (1_795_671_087_123, -(2**63))
    assert decode_cursor(encode_cursor(position)) == position
    for bad in ("", "nope", encode_cursor((1, 2))[:-2] + "!!", "WzEsIjIiXQ"):
        with pytest.raises(InvalidValue):
            decode_cursor(bad)
    a = Settings(app_id="dnc-a", api=ApiSettings(view_path="/var/dnc/view.sqlite3"))
    b = Settings(app_id="dnc/b", api=ApiSettings(view_path="/var/dnc/view.sqlite3"))
    assert view_file(a) == Path("/var/dnc/view.dnc-a.sqlite3")
    assert view_file(b) == Path("/var/dnc/view.dnc_b.sqlite3")


def test_check_verdict_with_and_without_channel_and_sender() -> None:
    def entry(channel: str | None, sender: str | None, expires: int | None = None) -> Entry:
        return Entry(EntryKey("acme", "c", channel, sender), Source.MANUAL, 1, None, expires)

    entries = [entry(None, None), entry("SMS", "acme"), entry("SMS", None), entry(None, "acme")]
    got = verdict("c", entries, "SMS", "acme")
    assert got["blocked"] is True
    assert [(e["channel"], e["sender"]) for e in got["entries"]] == [
        ("SMS", "acme"),
        ("SMS", None),
        (None, "acme"),
        (None, None),
    ]
    assert got["entry"] == entries[1].to_dict(origin=False)
    got = verdict("c", [entry("SMS", "acme")], "SMS", None)  # any sender
    assert got["blocked"] is True
    got = verdict("c", [entry("SMS", "acme")], "VIBER", None)
    assert (got["blocked"], got["entries"][0]["blocks"]) == (False, False)
    got = verdict("c", [entry(None, None, expires=2)], None, None)  # expired long ago
    assert got["blocked"] is False
    assert got["entries"][0]["expires_at"] == format_ms(2)
    assert orjson.dumps(got)
