"""How a batch of changelog and history records reaches the PostgreSQL view's tables
(``PostgresStore.apply`` and ``apply_fenced`` call ``write_rows`` inside their transaction).

Measured (README, "Scaling out"): binding a batch as arrays (``unnest(%s::text[], …)``)
cost about 17 µs per row in psycopg's array adaptation alone, more than the server's
insert. So each batch is sent with ``COPY … (FORMAT BINARY)`` into temporary staging tables
of the writer's session (``ON COMMIT DELETE ROWS``: never logged, empty again at commit),
and moved into the view by one ``DELETE … USING`` and one ``INSERT … SELECT … ON CONFLICT``
per table (each consumes its staging table).

The server's inserts (six indexes) and this process's parsing take about 20 and 6 µs per
row: a batch goes in chunks of ``CHUNK`` records, one chunk's statements running (on a
thread of the store's, waiting on the socket) while the next chunk is parsed. Chunks are
applied in log order, so a key changed in two chunks ends as the later one says.

The same transaction keeps ``account_counts`` (entries per account): an unfiltered total is
then one indexed read instead of a count of tens of millions of rows. Its rows are updated
in account order, so two view writers whose batches touch the same accounts queue on them
instead of deadlocking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import psycopg

from dnc.api.view import history as view_history
from dnc.api.view import store

Conn = psycopg.Connection[tuple[Any, ...]]

# Created once per writer session (temporary tables live as long as the connection).
STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_entries (LIKE entries) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_gone (
    account text COLLATE "C", contact text COLLATE "C", channel text COLLATE "C",
    sender text COLLATE "C"
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_history (LIKE history) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_history_gone (hk bigint) ON COMMIT DELETE ROWS;
"""
_ENTRY_TYPES = ["text", "text", "text", "text", "text", "int8", "text", "int8", "int8"]
_GONE_TYPES = ["text", "text", "text", "text"]
_HISTORY_TYPES = ["int8", "text", "text", "text", "text", "text", "int8", "int4", "int8"]
_HISTORY_TYPES += ["text", "text", "text"]

# Each returns (account, entries removed or added) per account, for the counters.
CHUNK = 1000
_DELETE = """
WITH staged AS (DELETE FROM stage_gone RETURNING *),
gone AS (
    DELETE FROM entries e USING staged d
    WHERE e.account = d.account AND e.contact = d.contact
      AND coalesce(e.channel, '') = d.channel AND coalesce(e.sender, '') = d.sender
    RETURNING e.account
)
SELECT account, count(*) FROM gone GROUP BY account
"""
_UPSERT = """
WITH staged AS (DELETE FROM stage_entries RETURNING *),
put AS (
    INSERT INTO entries SELECT * FROM staged
    ON CONFLICT (account, contact, (coalesce(channel, '')), (coalesce(sender, ''))) DO UPDATE SET
        source = excluded.source, added_at = excluded.added_at,
        -- An extension rewrites the entry without its origin: the same entry keeps its
        -- origin (as in the SQLite store).
        origin = CASE WHEN excluded.origin IS NULL AND entries.source = excluded.source
                       AND entries.added_at = excluded.added_at
                  THEN entries.origin ELSE excluded.origin END,
        expires_at = excluded.expires_at, kh = excluded.kh
    -- xmax is 0 on a row this statement inserted, and set on one it updated.
    RETURNING account, xmax = 0 AS fresh
)
SELECT account, count(*) FROM put WHERE fresh GROUP BY account
"""
_COUNT = """
INSERT INTO account_counts (account, entries)
SELECT * FROM unnest(%s::text[], %s::bigint[]) ORDER BY 1
ON CONFLICT (account) DO UPDATE SET entries = account_counts.entries + excluded.entries
"""
_HISTORY_DELETE = """
WITH staged AS (DELETE FROM stage_history_gone RETURNING hk)
DELETE FROM history h USING staged g WHERE h.hk = g.hk
"""
_HISTORY_UPSERT = f"""
WITH staged AS (DELETE FROM stage_history RETURNING *)
INSERT INTO history (hk, {view_history.COLUMNS}) SELECT * FROM staged
ON CONFLICT (hk) DO UPDATE SET
    account = excluded.account, contact = excluded.contact, channel = excluded.channel,
    sender = excluded.sender, hid = excluded.hid, at = excluded.at, part = excluded.part,
    off = excluded.off, action = excluded.action, entry = excluded.entry, cause = excluded.cause
"""


def write_rows(
    cur: psycopg.Cursor[Any],
    records: Iterable[store.Change],
    history: Iterable[view_history.Record],
    overlap: Executor,
) -> int:
    """Apply a batch inside the caller's transaction; return the unreadable records.
    ``overlap`` (one thread) runs each chunk's statements while the next is parsed."""
    changes = list(records)
    counts: Counter[str] = Counter()
    bad = 0
    pending: Future[Counter[str]] | None = None
    try:
        for start in range(0, len(changes), CHUNK):
            deletes, upserts, unreadable = store.parse_changes(changes[start : start + CHUNK])
            bad += unreadable
            if pending is not None:
                counts.update(pending.result())
            pending = overlap.submit(_send_changes, cur, deletes, upserts)
    finally:
        # Never leave the transaction with a chunk still running on its connection.
        if pending is not None:
            counts.update(pending.result())
    gone, rows, hbad = view_history.parse_records(history)
    if gone:
        _copy(cur, "stage_history_gone", ["int8"], gone)
        cur.execute(_HISTORY_DELETE)
    if rows:
        _copy(cur, "stage_history", _HISTORY_TYPES, rows)
        cur.execute(_HISTORY_UPSERT)
    moved = sorted((a, n) for a, n in counts.items() if n)
    if moved:
        cur.execute(_COUNT, ([a for a, _ in moved], [n for _, n in moved]))
    return bad + hbad


def _send_changes(
    cur: psycopg.Cursor[Any], deletes: list[store.KeyMatch], upserts: list[store.Row]
) -> Counter[str]:
    """One chunk's deletes and upserts; entries removed (negative) or added per account."""
    counts: Counter[str] = Counter()
    # One row per conflict key: two spellings of one key in a chunk would make the
    # statement update a row twice (an error); the later record wins, as in SQLite.
    unique = {(r[0], r[1], r[2] or "", r[3] or ""): r for r in upserts}
    if deletes:
        _copy(cur, "stage_gone", _GONE_TYPES, deletes)
        for account, n in cur.execute(_DELETE).fetchall():
            counts[account] -= n
    if unique:
        _copy(cur, "stage_entries", _ENTRY_TYPES, unique.values())
        for account, n in cur.execute(_UPSERT).fetchall():
            counts[account] += n
    return counts


def _copy(
    cur: psycopg.Cursor[Any], table: str, types: list[str], rows: Iterable[Sequence[Any]]
) -> None:
    # The table names are this module's constants, never input.
    with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
