"""The list view's tables in PostgreSQL and their versions (``dnc.api.view.pgstore`` reads
and writes them): applied at start under a transaction-level advisory lock, so that
instances starting together migrate once; a schema newer than this code is refused (an
older release must not write into tables it does not understand)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from dnc.errors import ConfigurationError

Conn = psycopg.Connection[tuple[Any, ...]]

# version → DDL (run in the view's schema). Append, never edit a released version.
# ``entries.kh`` is, since 2026-12-03, the position in dnc.changes of the record that wrote
# the row (``store.changelog_kh``); rows written before keep their key's hash. No migration:
# any number unique per row orders ties, and every instance reads this one table alike.
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE offsets (
    log text NOT NULL, part integer NOT NULL, next bigint NOT NULL, PRIMARY KEY (log, part)
);
CREATE TABLE entries (
    account text COLLATE "C" NOT NULL,
    contact text COLLATE "C" NOT NULL,
    channel text COLLATE "C",      -- NULL = all channels
    sender text COLLATE "C",       -- NULL = all senders
    source text COLLATE "C" NOT NULL,
    added_at bigint NOT NULL,      -- epoch ms
    origin text,                   -- JSON, as written (jsonb would reorder its keys)
    expires_at bigint,             -- epoch ms, NULL = never
    kh bigint NOT NULL             -- key hash: the deterministic tie-break of the order
);
CREATE UNIQUE INDEX entries_key
    ON entries (account, contact, (coalesce(channel, '')), (coalesce(sender, '')));
CREATE INDEX entries_newest ON entries (account, added_at, kh);
CREATE INDEX entries_sender ON entries (account, sender, added_at, kh);
CREATE INDEX entries_channel ON entries (account, channel, added_at, kh);
CREATE INDEX entries_source ON entries (account, source, added_at, kh);
CREATE TABLE history (
    hk bigint PRIMARY KEY,         -- hash of the record's key (tombstones)
    account text COLLATE "C" NOT NULL,
    contact text COLLATE "C" NOT NULL,
    channel text COLLATE "C",
    sender text COLLATE "C",
    hid text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    part integer NOT NULL,
    off bigint NOT NULL,
    action text NOT NULL,
    entry text NOT NULL,           -- JSON
    cause text                     -- JSON
);
CREATE INDEX history_person ON history (account, contact, at, part, off);
""",
    # Records applied per partition: with one view writer per group of partitions, the
    # proof that none was applied twice or skipped (it equals the partition's records).
    2: "ALTER TABLE offsets ADD COLUMN applied bigint NOT NULL DEFAULT 0;",
    # Entries per account, kept by the writers in the rows' transaction: an account's
    # unfiltered total without counting its rows (tens of millions for a large customer).
    3: """
CREATE TABLE account_counts (account text COLLATE "C" PRIMARY KEY, entries bigint NOT NULL);
INSERT INTO account_counts SELECT account, count(*) FROM entries GROUP BY account;
""",
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(conn: Conn, schema: str) -> int:
    """Bring ``schema`` up to ``SCHEMA_VERSION`` (once, under an advisory lock, however
    many instances start together); refuse a newer one. Returns the version found."""
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"dnc-view-schema:{schema}",)
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_version (version integer NOT NULL)"
            ).format(sql.Identifier(schema))
        )
        row = conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
                sql.Identifier(schema)
            )
        ).fetchone()
        found = int(row[0]) if row else 0
        if found > SCHEMA_VERSION:
            raise ConfigurationError(
                f"the list view's PostgreSQL schema {schema} is at version {found}, newer than "
                f"this release knows ({SCHEMA_VERSION}): a newer dnc has migrated it; run that "
                "release (or a view of its own: another DNC_APP_ID or database)"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version].encode())  # no parameters: several statements
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(sql.Identifier(schema)),
                (version,),
            )
    return found
