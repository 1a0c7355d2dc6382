"""The history side of the list view: ``dnc.history`` records in SQLite, and its queries.

A history record's key is ``[account, contact, channel, sender, "<p>-<offset>-<i>"]``
(unique: the topic is compacted only so that an erasure can delete records with
tombstones). Rows are ordered by the record's time, then by its own position in
``dnc.history`` (partition, offset): one person's records of one account share a
partition, so within it the order is the list writer's, and it is the same on every API
instance.

``hk`` is a 64-bit hash of the key (re-serialised, so spelling does not matter) that
tombstones find the row by; the key itself is rebuilt from the columns when an erasure
needs it. Two keys of one list sharing a hash is a 2^-64 event per pair.

What a record repeats is stored once and put back when it is read: an added entry's
``origin`` is its record's ``cause``, and the entry's account, contact, channel and
sender are the key's (together half of a record's bytes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import xxhash

from dnc.api.view.reader import Reader
from dnc.domain.timestamps import format_ms, parse_repeated_ts

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    hk INTEGER NOT NULL,     -- hash of the record's key (tombstones)
    account TEXT NOT NULL,
    contact TEXT NOT NULL,
    channel TEXT,
    sender TEXT,
    hid TEXT NOT NULL,       -- the key's last element
    at INTEGER NOT NULL,     -- epoch ms
    part INTEGER NOT NULL,   -- the record's position in dnc.history
    off INTEGER NOT NULL,
    action TEXT NOT NULL,
    entry TEXT NOT NULL,     -- JSON
    cause TEXT               -- JSON
);
CREATE UNIQUE INDEX IF NOT EXISTS history_key ON history (hk);
CREATE INDEX IF NOT EXISTS history_person ON history (account, contact, at, part, off);
CREATE INDEX IF NOT EXISTS history_recent ON history (account, at);  -- the overview's days
"""

COLUMNS = "account, contact, channel, sender, hid, at, part, off, action, entry, cause"
_UPSERT = f"""
INSERT INTO history (hk, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hk) DO UPDATE SET
    account = excluded.account, contact = excluded.contact, channel = excluded.channel,
    sender = excluded.sender, hid = excluded.hid, at = excluded.at, part = excluded.part,
    off = excluded.off, action = excluded.action, entry = excluded.entry, cause = excluded.cause
"""
_ACTIONS = frozenset({"add", "extend", "remove", "expire", "erase"})
_SAME_AS_CAUSE = "origin=cause"  # stored instead of an origin equal to the cause
_KEY_FIELDS = ("account", "contact", "channel", "sender")

# (partition, offset, key, value or None) of a dnc.history record
Record = tuple[int, int, bytes, bytes | None]
Position = tuple[int, int, int]  # (at, part, off): newest-first paging
ExportPosition = tuple[str, str, int, int, int]  # (account, contact, at, part, off)
Row = tuple[int, str, str, str | None, str | None, str, int, int, int, str, str, str | None]


@dataclass(frozen=True, slots=True)
class HistoryItem:
    account: str
    contact: str
    channel: str | None
    sender: str | None
    hid: str
    at: int
    part: int
    off: int
    action: str
    entry: dict[str, Any]
    cause: dict[str, Any] | None

    @property
    def key(self) -> list[Any]:
        """The record's key in ``dnc.history`` (what an erasure tombstones)."""
        return [self.account, self.contact, self.channel, self.sender, self.hid]

    @property
    def position(self) -> Position:
        return self.at, self.part, self.off

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "action": self.action,
            "at": format_ms(self.at),
            "entry": self.entry,
            "cause": self.cause,
        }

    @classmethod
    def of_row(cls, r: Sequence[Any]) -> HistoryItem:
        stored = orjson.loads(r[9])
        cause = None if r[10] is None else orjson.loads(r[10])
        entry = stored
        if "account" not in stored:
            entry = {"account": r[0], "contact": r[1], "channel": r[2], "sender": r[3], **stored}
        if _SAME_AS_CAUSE in entry:
            del entry[_SAME_AS_CAUSE]
            entry["origin"] = cause
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], entry, cause)


def key_hash(key: list[Any]) -> int:
    return xxhash.xxh3_64_intdigest(orjson.dumps(key)) - (1 << 63)


def decode_key(raw: bytes) -> list[Any]:
    k = orjson.loads(raw)
    if not (
        isinstance(k, list)
        and len(k) == 5
        and all(isinstance(x, str) for x in (k[0], k[1], k[4]))
        and all(x is None or isinstance(x, str) for x in (k[2], k[3]))
    ):
        raise ValueError(f"not a history key: {raw[:80]!r}")
    return k


def row_of(part: int, off: int, key: list[Any], value: bytes) -> Row:
    d = orjson.loads(value)
    action, entry, cause = d["action"], d["entry"], d.get("cause")
    if action not in _ACTIONS or not isinstance(entry, dict):
        raise ValueError(f"not a history record: {value[:80]!r}")
    if [entry.get(f, "") for f in _KEY_FIELDS] == key[:4]:
        entry = {k: v for k, v in entry.items() if k not in _KEY_FIELDS}
    if cause is not None and "origin" in entry and entry["origin"] == cause:
        entry = {k: v for k, v in entry.items() if k != "origin"}
        entry[_SAME_AS_CAUSE] = True
    return (
        key_hash(key),
        key[0],
        key[1],
        key[2],
        key[3],
        key[4],
        parse_repeated_ts(d["at"], "at"),
        part,
        off,
        action,
        orjson.dumps(entry).decode(),
        None if cause is None else orjson.dumps(cause).decode(),
    )


def apply(conn: sqlite3.Connection, records: Iterable[Record]) -> int:
    """Apply history records inside the caller's transaction; return how many could not
    be read (skipped, as for the changelog)."""
    gone, rows, bad = parse_records(records)
    conn.executemany("DELETE FROM history WHERE hk = ?", gone)
    conn.executemany(_UPSERT, rows)
    return bad


def parse_records(records: Iterable[Record]) -> tuple[list[tuple[int]], list[Row], int]:
    """History records → (hashes of keys to delete, rows to upsert, unreadable count)."""
    latest: dict[int, Row | None] = {}  # a key's last record wins
    bad = 0
    for part, off, raw_key, value in records:
        try:
            key = decode_key(raw_key)
            latest[key_hash(key)] = None if value is None else row_of(part, off, key, value)
        except (ValueError, KeyError, TypeError):
            bad += 1
    gone = [(hk,) for hk, row in latest.items() if row is None]
    return gone, [row for row in latest.values() if row is not None], bad


def _in(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def page(
    conn: Reader,
    accounts: Sequence[str],
    contacts: Sequence[str],
    limit: int,
    after: Position | None,
) -> list[HistoryItem]:
    """A person's records (``contacts``: every form they are stored under), newest first."""
    cond, params = "", []
    if after is not None:
        cond = " AND (at, part, off) < (?, ?, ?)"
        params = list(after)
    sql = (
        f"SELECT {COLUMNS} FROM history WHERE account = ? AND contact IN ({_in(contacts)})"
        f"{cond} ORDER BY at DESC, part DESC, off DESC LIMIT ?"
    )
    rows: list[Sequence[Any]] = []
    for account in accounts:
        rows += conn.execute(sql, [account, *contacts, *params, limit]).fetchall()
    rows.sort(key=lambda r: (r[5], r[6], r[7]), reverse=True)
    return [HistoryItem.of_row(r) for r in rows[:limit]]


def keys(conn: Reader, account: str, contacts: Sequence[str]) -> list[list[Any]]:
    """The keys of every record of a person in one account (what an erasure deletes)."""
    cur = conn.execute(
        f"SELECT account, contact, channel, sender, hid FROM history"
        f" WHERE account = ? AND contact IN ({_in(contacts)})",
        [account, *contacts],
    )
    return [list(r) for r in cur]


def of_matching(
    conn: Reader,
    accounts: Sequence[str],
    entry_filters: tuple[list[str], list[object]],
    limit: int,
    after: ExportPosition | None,
) -> list[HistoryItem]:
    """The records of every person with an entry the filters match (an export's second
    part), by account, person, then oldest first. ``entry_filters``: conditions on
    ``entries`` columns (``dnc.api.view.store.filters``)."""
    where, params = entry_filters
    cond = "".join(f" AND {w}" for w in where)
    paging, paging_params = "", []
    if after is not None:
        paging = " AND (h.account, h.contact, h.at, h.part, h.off) > (?, ?, ?, ?, ?)"
        paging_params = list(after)
    sql = (
        f"SELECT {', '.join('h.' + c.strip() for c in COLUMNS.split(','))} FROM history h"
        f" WHERE h.account IN ({_in(accounts)}){paging}"
        " AND EXISTS (SELECT 1 FROM entries WHERE entries.account = h.account"
        f" AND entries.contact = h.contact{cond})"
        " ORDER BY h.account, h.contact, h.at, h.part, h.off LIMIT ?"
    )
    rows = conn.execute(sql, [*accounts, *paging_params, *params, limit]).fetchall()
    return [HistoryItem.of_row(r) for r in rows]


def of_people(conn: Reader, people: Sequence[tuple[str, str]]) -> list[HistoryItem]:
    """The records of these (account, stored contact) pairs, as ``of_matching`` orders them."""
    out: list[HistoryItem] = []
    sql = f"SELECT {COLUMNS} FROM history WHERE account = ? AND contact = ? ORDER BY at, part, off"
    for account, contact in sorted(set(people)):
        out += [HistoryItem.of_row(r) for r in conn.execute(sql, (account, contact))]
    return out


def export_position(item: HistoryItem) -> ExportPosition:
    return item.account, item.contact, item.at, item.part, item.off
