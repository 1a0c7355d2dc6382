"""The list view's history table: records in, tombstones out, a person's records newest
first through cursors, the keys an erasure sends back (byte for byte what the list writer
wrote), and the history of the people an export's filter matches."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from dnc.api.view import history, store
from dnc.api.view.pages import decode_history_cursor, encode_cursor
from dnc.api.view.query import EntryQuery
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.domain.timestamps import format_ms
from dnc.errors import InvalidValue

T0 = 1_795_671_087_123
PHONE, OTHER = "441234567890", "447700900123"
TOKEN = "h1:AAAAAAAAAAAAAAAAAAAAAA"


def record(
    account: str,
    contact: str,
    hid: str,
    at: int,
    action: str = "add",
    channel: str | None = None,
    cause: dict[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    key = orjson.dumps([account, contact, channel, None, hid])
    entry = {"account": account, "contact": contact, "channel": channel, "sender": None}
    if action != "erase":
        entry |= {"source": "MANUAL", "added_at": format_ms(at)}
    if action == "add":
        entry["origin"] = cause  # stored once, put back when read
    value = {"action": action, "entry": entry, "at": format_ms(at), "cause": cause}
    return key, orjson.dumps(value)


@pytest.fixture
def writer(tmp_path: Path) -> store.ViewWriter:
    w = store.ViewWriter(tmp_path / "v.sqlite3", {"topic": "t"})
    w.open()
    return w


def test_records_tombstones_order_keys_and_offsets(writer: store.ViewWriter) -> None:
    rng = random.Random(5)
    made = []
    for i in range(40):
        account = rng.choice(["acme", "acme-eu"])
        contact = rng.choice([PHONE, OTHER, TOKEN])
        cause = {"kind": "api", "request_id": f"r{i}"} if i % 3 else None
        made.append(record(account, contact, f"0-{i}-0", T0 + rng.randrange(5), cause=cause))
    # Records arrive with their position in dnc.history (partition, offset).
    with_position = [(i % 2, i, k, v) for i, (k, v) in enumerate(made)]
    bad = writer.apply([], {}, [*with_position, (0, 99, b"[1,2]", b"{}")], {0: 40, 1: 39})
    assert bad == 1
    assert writer.offsets(store.HISTORY) == {0: 40, 1: 39}
    assert writer.offsets() == {}

    conn = store.connect(writer.path, readonly=True)
    mine = [
        (p, o, orjson.loads(k), orjson.loads(v))
        for p, o, k, v in with_position
        if orjson.loads(k)[0] == "acme" and orjson.loads(k)[1] in (PHONE, TOKEN)
    ]
    expected = sorted(mine, key=lambda m: (m[3]["at"], m[0], m[1]), reverse=True)
    walked: list[history.HistoryItem] = []
    after = None
    while True:
        got = history.page(conn, ["acme"], [PHONE, TOKEN], 3, after)
        walked += got
        if len(got) < 3:
            break
        after = got[-1].position
    assert [(h.part, h.off) for h in walked] == [(m[0], m[1]) for m in expected]
    assert [h.to_dict()["entry"] for h in walked] == [m[3]["entry"] for m in expected]
    assert [list(h.entry)[:4] for h in walked] == [
        ["account", "contact", "channel", "sender"]
    ] * len(walked)

    # The keys an erasure sends are the keys as written, so its tombstones hit.
    keys = history.keys(conn, "acme", [PHONE, TOKEN])
    assert sorted(orjson.dumps(k) for k in keys) == sorted(orjson.dumps(m[2]) for m in mine)
    erase = record("acme", TOKEN, "1-500-0", T0 + 9, "erase", cause={"kind": "erasure"})
    writer.apply([], {}, [(1, 500, orjson.dumps(k), None) for k in keys] + [(1, 501, *erase)])
    left = history.page(conn, ["acme"], [PHONE, TOKEN], 100, None)
    assert [(h.action, h.contact, h.cause) for h in left] == [("erase", TOKEN, {"kind": "erasure"})]
    assert left[0].to_dict()["entry"] == {
        "account": "acme",
        "contact": TOKEN,
        "channel": None,
        "sender": None,
    }
    others = history.page(conn, ["acme", "acme-eu"], [OTHER], 100, None)
    assert {h.contact for h in others} == {OTHER}
    assert len(others) == sum(1 for _p, _o, k, _v in with_position if orjson.loads(k)[1] == OTHER)

    writer.reset()
    assert history.page(conn, ["acme"], [PHONE, TOKEN], 100, None) == []
    conn.close()


def test_history_of_the_people_a_filter_matches(writer: store.ViewWriter) -> None:
    def entry(offset: int, contact: str, channel: str | None) -> store.Change:
        e = Entry(EntryKey("acme", contact, channel, None), Source.MANUAL, T0, None)
        return 0, offset, e.key.to_json(), e.to_json()

    writer.apply(
        [entry(0, PHONE, "SMS"), entry(1, OTHER, None)],
        {0: 2},
        [
            (0, 0, *record("acme", PHONE, "0-0-0", T0, channel="SMS")),
            (0, 1, *record("acme", OTHER, "0-1-0", T0 + 1)),
            (0, 2, *record("acme", "449999999999", "0-2-0", T0 + 2)),  # no longer listed
            (0, 3, *record("acme", PHONE, "0-3-0", T0 + 3, "remove", channel="VIBER")),
            (0, 4, *record("acme-eu", PHONE, "0-4-0", T0 + 4)),  # another account
        ],
        {0: 5},
    )
    conn = store.connect(writer.path, readonly=True)

    def walk(q: EntryQuery, chunk: int) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        after = None
        while True:
            got = store.history_of_matching(conn, q, chunk, after)
            out += [(h.contact, h.off) for h in got]
            if len(got) < chunk:
                return out
            after = history.export_position(got[-1])

    everyone = EntryQuery(accounts=("acme",))
    assert walk(everyone, 1) == [(PHONE, 0), (PHONE, 3), (OTHER, 1)]
    # People whose SMS entries are exported: all of their history, not only SMS records.
    assert walk(EntryQuery(accounts=("acme",), channels=("SMS",)), 10) == [(PHONE, 0), (PHONE, 3)]
    assert walk(EntryQuery(accounts=("acme", "acme-eu"), contacts=(OTHER,)), 10) == [(OTHER, 1)]
    people = history.of_people(conn, [("acme", OTHER), ("acme", PHONE), ("acme", OTHER)])
    assert [(h.contact, h.off) for h in people] == [(PHONE, 0), (PHONE, 3), (OTHER, 1)]
    conn.close()


def test_history_cursors() -> None:
    position = (T0, 2, 123456)
    assert decode_history_cursor(encode_cursor(position)) == position
    for bad in ("", "nope", encode_cursor((1, 2)), "WzEsIjIiLDNd"):
        with pytest.raises(InvalidValue):
            decode_history_cursor(bad)
