"""The SQLite side of the list view: schema, applying changelog (and history) records,
and queries. The history's own table and queries are ``dnc.api.view.history``.

Synchronous and thread-bound on purpose: ``ListView`` runs every call here on its own
threads (one writer connection, one reader connection per reader thread, WAL), never on
the event loop. The file is a cache of ``dnc.changes``: it holds the consumed offsets in
the same transaction as the rows, and whenever it cannot be trusted (other cluster, other
topic, other partition count, other schema, unreadable) it is deleted and rebuilt.

Ordering is ``added_at`` descending, then ``kh`` descending: the position in
``dnc.changes`` (partition, offset) of the record that wrote the entry, as one 64-bit
number (``changelog_kh``). The tie-break is derived from the changelog, not from the row
id, because one import gives thousands of entries the same ``added_at`` and a cursor must
mean the same position on every API instance, whose row ids differ but whose changelog
is the same. It used to be a hash of the entry's key: the import's rows then landed all
over the six indexes that end in ``(…, added_at, kh)``, and each transaction rewrote
most of their pages; in changelog order they land at the end (per imported entry, 52 →
30 µs of the view's CPU for 530k entries; /tmp micro-benchmark of ``ViewWriter.apply``).
Among one import's entries the newest written comes first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from dnc.api.view import history as view_history
from dnc.api.view.query import EntryQuery
from dnc.api.view.reader import Reader
from dnc.domain.entries import Entry, EntryKey, Source
from dnc.domain.timestamps import parse_repeated_ts
from dnc.errors import ConfigurationError

SCHEMA_VERSION = "3"  # 3: kh is the changelog position (was the key's hash)
CHANGES, HISTORY = "c", "h"  # the logs whose offsets the file keeps
# An upper bound for "starts with": sorts after any character a contact can contain.
_PREFIX_END = "\U0010ffff"
COLUMNS = "account, contact, channel, sender, source, added_at, origin, expires_at, kh"
_KEY_MATCH = (
    "account = ? AND contact = ? AND coalesce(channel, '') = ? AND coalesce(sender, '') = ?"
)

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (
    log TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (log, part)
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    contact TEXT NOT NULL,
    channel TEXT,            -- NULL = all channels
    sender TEXT,             -- NULL = all senders
    source TEXT NOT NULL,
    added_at INTEGER NOT NULL,  -- epoch ms
    origin TEXT,             -- JSON
    expires_at INTEGER,      -- epoch ms, NULL = never
    kh INTEGER NOT NULL      -- changelog position: the deterministic tie-break of the order
);
CREATE UNIQUE INDEX IF NOT EXISTS entries_key
    ON entries (account, contact, coalesce(channel, ''), coalesce(sender, ''));
CREATE INDEX IF NOT EXISTS entries_newest ON entries (account, added_at, kh);
CREATE INDEX IF NOT EXISTS entries_sender ON entries (account, sender, added_at, kh);
CREATE INDEX IF NOT EXISTS entries_channel ON entries (account, channel, added_at, kh);
CREATE INDEX IF NOT EXISTS entries_source ON entries (account, source, added_at, kh);
-- The listing's other sort orders (see SORT_COLUMNS).
CREATE INDEX IF NOT EXISTS entries_by_contact ON entries (account, contact, kh);
CREATE INDEX IF NOT EXISTS entries_by_sender ON entries (account, coalesce(sender, ''), kh);
CREATE INDEX IF NOT EXISTS entries_by_source ON entries (account, source, kh);
"""
    + view_history.SCHEMA
)

_UPSERT = f"""
INSERT INTO entries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (account, contact, coalesce(channel, ''), coalesce(sender, '')) DO UPDATE SET
    source = excluded.source, added_at = excluded.added_at,
    -- An extension rewrites the entry without its origin (the list writer reads entries
    -- from Redis, which does not keep origins): the same entry keeps the origin it had.
    origin = CASE WHEN excluded.origin IS NULL AND entries.source = excluded.source
                   AND entries.added_at = excluded.added_at
              THEN entries.origin ELSE excluded.origin END,
    expires_at = excluded.expires_at, kh = excluded.kh
"""

Position = tuple[int, int]  # (added_at, kh) of the last entry seen, for keyset paging


Row = tuple[str, str, str | None, str | None, str, int, str | None, int | None, int]
# A changelog record: (partition, offset, key, value or None for a tombstone).
Change = tuple[int, int, bytes, bytes | None]
# An entry of a page and its ``kh`` (what a cursor after it needs).
Listed = tuple[Entry, int]


_SOURCES = frozenset(s.value for s in Source)


_PARTITION_BITS = 16


def changelog_kh(partition: int, offset: int) -> int:
    """The order's tie-break of the entry a changelog record wrote, as a signed 64-bit
    SQLite integer: offset, then partition (so that the partitions' records interleave
    and new ones sort after old ones in every partition)."""
    if not (0 <= partition < 1 << _PARTITION_BITS and 0 <= offset < 1 << (64 - _PARTITION_BITS)):
        raise ValueError(f"not a changelog position: partition {partition}, offset {offset}")
    return ((offset << _PARTITION_BITS) | partition) - (1 << 63)


def position_of(listed: Listed) -> Position:
    entry, kh = listed
    return entry.added_at, kh


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        # Losing the last transactions on a power cut is fine: their offsets go with them
        # and are consumed again.
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    return conn


class ViewWriter:
    """The single writer of one view file. Holds an exclusive lock on it for its life."""

    def __init__(self, path: Path, identity: dict[str, str]) -> None:
        self.path = path
        self.identity = {**identity, "schema": SCHEMA_VERSION}
        self._lock: IO[bytes] | None = None
        self._conn: sqlite3.Connection | None = None

    def open(self) -> dict[int, int]:
        """Lock, open (rebuilding a file that belongs elsewhere); return stored offsets."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(f"{self.path}.lock", "wb")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigurationError(
                f"the list view {self.path} is used by another API process; give each "
                "instance its own DNC_API__VIEW_PATH"
            ) from None
        self._lock = lock
        try:
            self._conn = self._open_checked()
        except sqlite3.DatabaseError:
            self._delete_files()  # unreadable: it is only a cache of the changelog
            self._conn = self._open_checked()
        return self.offsets()

    def _open_checked(self) -> sqlite3.Connection:
        conn = connect(self.path, readonly=False)
        conn.executescript(_SCHEMA)
        stored = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if stored and stored != self.identity:
            conn.close()
            self._delete_files()
            conn = connect(self.path, readonly=False)
            conn.executescript(_SCHEMA)
            stored = {}
        if not stored:
            with _transaction(conn):
                conn.executemany("INSERT INTO meta VALUES (?, ?)", self.identity.items())
        return conn

    def _delete_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("ViewWriter is not open")
        return self._conn

    def offsets(self, log: str = CHANGES) -> dict[int, int]:
        """Partition → next offset stored, of the changelog (or of the history)."""
        cur = self.conn.execute("SELECT part, next FROM offsets WHERE log = ?", (log,))
        return dict(cur.fetchall())

    def reset(self) -> None:
        """Forget everything (the changelog was recreated or truncated): rebuild from 0."""
        with _transaction(self.conn):
            self.conn.execute("DELETE FROM entries")
            self.conn.execute("DELETE FROM history")
            self.conn.execute("DELETE FROM offsets")

    def apply(
        self,
        records: Iterable[Change],
        offsets: dict[int, int],
        history: Iterable[view_history.Record] = (),
        history_offsets: dict[int, int] | None = None,
    ) -> int:
        """Apply changelog records (key, value or None) and history records, and move
        both logs' offsets, atomically. Returns how many records could not be read
        (skipped, not fatal: one foreign record must not stop the list from updating)."""
        deletes, upserts, bad = parse_changes(records)
        moved = [(CHANGES, p, o) for p, o in offsets.items()]
        moved += [(HISTORY, p, o) for p, o in (history_offsets or {}).items()]
        with _transaction(self.conn):
            self.conn.executemany(f"DELETE FROM entries WHERE {_KEY_MATCH}", deletes)
            self.conn.executemany(_UPSERT, upserts)
            bad += view_history.apply(self.conn, history)
            self.conn.executemany(
                "INSERT INTO offsets VALUES (?, ?, ?)"
                " ON CONFLICT (log, part) DO UPDATE SET next = excluded.next",
                moved,
            )
        return bad

    def optimize(self) -> None:
        self.conn.execute("PRAGMA optimize")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


KeyMatch = tuple[str, str, str, str]  # account, contact, channel or "", sender or ""


def parse_changes(records: Iterable[Change]) -> tuple[list[KeyMatch], list[Row], int]:
    """Changelog records → (keys to delete, rows to upsert, how many could not be read)."""
    latest: dict[bytes, tuple[int, int, bytes | None]] = {}
    for part, offset, key, value in records:
        latest[key] = (part, offset, value)  # a key lives in one partition: the last wins
    deletes: list[KeyMatch] = []
    upserts: list[Row] = []
    bad = 0
    for raw_key, (part, offset, value) in latest.items():
        try:
            k = decode_key(raw_key)
            if value is None:
                deletes.append((k.account, k.contact, k.channel or "", k.sender or ""))
            else:
                upserts.append(row_of(k, value, changelog_kh(part, offset)))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return deletes, upserts, bad


def decode_key(raw: bytes) -> EntryKey:
    k = orjson.loads(raw)
    if not (
        isinstance(k, list) and len(k) == 4 and isinstance(k[0], str) and isinstance(k[1], str)
    ):
        raise ValueError(f"not an entry key: {raw[:80]!r}")
    return EntryKey(k[0], k[1], k[2], k[3])


def row_of(key: EntryKey, value: bytes, kh: int) -> Row:
    d = orjson.loads(value)
    origin = d.get("origin")
    expires = d.get("expires_at")
    source = d["source"]
    if source not in _SOURCES:
        raise ValueError(f"not a source: {source!r}")
    return (
        key.account,
        key.contact,
        key.channel,
        key.sender,
        source,
        parse_repeated_ts(d["added_at"], "added_at"),
        None if origin is None else orjson.dumps(origin).decode(),
        parse_repeated_ts(expires, "expires_at") if expires else None,
        kh,
    )


# --- reading -------------------------------------------------------------------------------


def _in(column: str, values: Sequence[object]) -> tuple[str, list[object]]:
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


def _nullable_in(column: str, values: Sequence[str | None]) -> tuple[str, list[object]]:
    """``column`` is one of ``values``, where None means "the entry is for all"."""
    named = [v for v in values if v is not None]
    parts, params = [], []
    if None in values:
        parts.append(f"{column} IS NULL")
    if named:
        sql, p = _in(column, named)
        parts.append(sql)
        params += p
    return "(" + " OR ".join(parts) + ")", params


def filters(q: EntryQuery) -> tuple[list[str], list[object]]:
    """SQL conditions (AND-ed) for everything in ``q`` but the accounts."""
    where: list[str] = []
    params: list[object] = []
    if q.contacts or q.contact_prefixes:
        parts = []
        if q.contacts:
            sql, p = _in("contact", q.contacts)
            parts.append(sql)
            params += p
        for stem in q.contact_prefixes:
            parts.append("(contact >= ? AND contact < ?)")
            params += [stem, stem + _PREFIX_END]
        where.append("(" + " OR ".join(parts) + ")")
    for column, values in (("channel", q.channels), ("sender", q.senders)):
        if values:
            sql, p = _nullable_in(column, values)
            where.append(sql)
            params += p
    if q.sources:
        sql, p = _in("source", q.sources)
        where.append(sql)
        params += p
    if q.added_from is not None:
        where.append("added_at >= ?")
        params.append(q.added_from)
    if q.added_to is not None:
        where.append("added_at < ?")
        params.append(q.added_to)
    return where, params


def entry_of(row: Sequence[Any]) -> Entry:
    account, contact, channel, sender, source, added_at, origin, expires_at = row[:8]
    return Entry(
        EntryKey(account, contact, channel, sender),
        Source(source),
        added_at,
        None if origin is None else orjson.loads(origin),
        expires_at,
    )


def page(conn: Reader, q: EntryQuery, limit: int, after: Position | None) -> list[Listed]:
    """Up to ``limit`` entries after ``after``, newest first, each with its ``kh`` (for
    the cursor after it). One query per account, each
    walking an index in order, merged here: an ``account IN (…)`` query would have to sort
    every matching row of every account to return the first page."""
    where, params = filters(q)
    if after is not None:
        where.append("(added_at, kh) < (?, ?)")
        params += list(after)
    cond = "".join(f" AND {w}" for w in where)
    sql = (
        f"SELECT {COLUMNS} FROM entries WHERE account = ?{cond}"
        " ORDER BY added_at DESC, kh DESC LIMIT ?"
    )
    rows: list[Sequence[Any]] = []
    for account in q.accounts:
        rows += conn.execute(sql, [account, *params, limit]).fetchall()
    if len(q.accounts) > 1:
        rows.sort(key=lambda r: (r[5], r[8]), reverse=True)
    return [(entry_of(r), r[8]) for r in rows[:limit]]


def count(conn: Reader, q: EntryQuery) -> int:
    where, params = filters(q)
    acc_sql, acc_params = _in("account", q.accounts)
    cond = "".join(f" AND {w}" for w in where)
    row = conn.execute(
        f"SELECT count(*) FROM entries WHERE {acc_sql}{cond}", [*acc_params, *params]
    ).fetchone()
    return int(row[0])


def keys(conn: Reader, q: EntryQuery) -> list[EntryKey]:
    where, params = filters(q)
    acc_sql, acc_params = _in("account", q.accounts)
    cond = "".join(f" AND {w}" for w in where)
    cur = conn.execute(
        f"SELECT account, contact, channel, sender FROM entries WHERE {acc_sql}{cond}",
        [*acc_params, *params],
    )
    return [EntryKey(*r) for r in cur]


def get(conn: Reader, wanted: Sequence[EntryKey]) -> dict[EntryKey, Entry]:
    return {k: entry for k, (entry, _) in listed(conn, wanted).items()}


def listed(conn: Reader, wanted: Sequence[EntryKey]) -> dict[EntryKey, Listed]:
    """``get``, each entry with its ``kh``: to put chosen entries in a listing's order."""
    out: dict[EntryKey, Listed] = {}
    sql = f"SELECT {COLUMNS} FROM entries WHERE {_KEY_MATCH}"
    for k in wanted:
        row = conn.execute(sql, (k.account, k.contact, k.channel or "", k.sender or "")).fetchone()
        if row is not None:
            out[k] = (entry_of(row), row[8])
    return out


def history_of_matching(
    conn: Reader,
    q: EntryQuery,
    limit: int,
    after: view_history.ExportPosition | None,
) -> list[view_history.HistoryItem]:
    """The history of every person with an entry ``q`` matches (see ``dnc.api.view.history``)."""
    return view_history.of_matching(conn, q.accounts, filters(q), limit, after)
