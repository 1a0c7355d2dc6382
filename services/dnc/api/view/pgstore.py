"""The list view in PostgreSQL (``DNC_VIEW__BACKEND=postgres``): the same rows, order,
cursors and queries as the SQLite file (``dnc.api.view.store``), in tables of a schema of
the deployment's own (``dnc_view_<app id>``).

- **Schema versions** (``MIGRATIONS``) are applied at start under a transaction-level
  advisory lock, so that instances starting together migrate once; a database whose schema
  is newer than this code is refused with a clear error (an older release must not write
  into tables it does not understand).
- **One writer**: the writer holds a session advisory lock for its life; a second one is
  refused, as a second process on one SQLite file is.
- **Exactly once**: rows and each partition's next offset move in one transaction; a
  restart resumes from the stored offsets, and tables built from another cluster, topic
  or partition count (``meta``) are emptied and rebuilt from offset 0.
- **Reads** run the SQLite backend's queries (standard SQL, ``?`` made ``%s``) on a
  connection pool. Text key columns are ``COLLATE "C"``: byte order, as SQLite's, so that
  contact prefixes are index ranges and a cursor means the same on both backends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from dnc.api.view import history as view_history
from dnc.api.view import store
from dnc.api.view.reader import Cursor, Reader
from dnc.api.view.reads import Reads
from dnc.errors import ConfigurationError

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

# version → DDL (run in the view's schema). Append, never edit a released version.
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
}
SCHEMA_VERSION = max(MIGRATIONS)

# One statement per kind of change per batch (arrays unnested server-side): one round trip
# each, however many records the batch holds.
_DELETE = """
DELETE FROM entries e USING unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS d(a, c, ch, s)
WHERE e.account = d.a AND e.contact = d.c
  AND coalesce(e.channel, '') = d.ch AND coalesce(e.sender, '') = d.s
"""
_UPSERT = """
INSERT INTO entries (account, contact, channel, sender, source, added_at, origin, expires_at, kh)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[],
                     %s::text[], %s::bigint[], %s::bigint[])
ON CONFLICT (account, contact, (coalesce(channel, '')), (coalesce(sender, ''))) DO UPDATE SET
    source = excluded.source, added_at = excluded.added_at,
    -- An extension rewrites the entry without its origin: the same entry keeps its origin
    -- (as in the SQLite store).
    origin = CASE WHEN excluded.origin IS NULL AND entries.source = excluded.source
                   AND entries.added_at = excluded.added_at
              THEN entries.origin ELSE excluded.origin END,
    expires_at = excluded.expires_at, kh = excluded.kh
"""
_HISTORY_DELETE = "DELETE FROM history WHERE hk = ANY(%s::bigint[])"
_HISTORY_UPSERT = f"""
INSERT INTO history (hk, {view_history.COLUMNS})
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                     %s::bigint[], %s::integer[], %s::bigint[], %s::text[], %s::text[], %s::text[])
ON CONFLICT (hk) DO UPDATE SET
    account = excluded.account, contact = excluded.contact, channel = excluded.channel,
    sender = excluded.sender, hid = excluded.hid, at = excluded.at, part = excluded.part,
    off = excluded.off, action = excluded.action, entry = excluded.entry, cause = excluded.cause
"""
_OFFSETS = (
    "INSERT INTO offsets VALUES (%s, %s, %s)"
    " ON CONFLICT (log, part) DO UPDATE SET next = excluded.next"
)


class _Qmark:
    """A psycopg connection that takes the SQLite store's ``?`` placeholders."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def execute(self, query: str, parameters: Any = (), /) -> Cursor:
        return self._conn.execute(query.replace("?", "%s"), parameters)


class PostgresStore(Reads):
    """The view in PostgreSQL: one writer connection, a pool for the readers."""

    def __init__(
        self, url: str, identity: dict[str, str], *, schema: str, pool_size: int = 4
    ) -> None:
        self.url = url
        self.schema = schema
        self.identity = dict(identity)
        self.pool_size = pool_size
        self._writer: Conn | None = None
        self._pool: ConnectionPool[Conn] | None = None

    @property
    def where(self) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        host, port, db = (info.get(k, "") for k in ("host", "port", "dbname"))
        return f"PostgreSQL {host}:{port}/{db}, schema {self.schema}"

    def _options(self) -> dict[str, Any]:
        # The schema's name is ours (letters, digits, '_'), safe in a -c option.
        return {"options": f"-c search_path={self.schema}"}

    # --- the writer ------------------------------------------------------------------------

    def open(self) -> dict[int, int]:
        conn: Conn = psycopg.connect(self.url, **self._options())
        try:
            migrate(conn, self.schema)
            taken = conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                (f"dnc-view-writer:{self.schema}",),
            ).fetchone()
            conn.commit()
            if not taken or not taken[0]:
                raise ConfigurationError(
                    f"the list view in {self.where} already has a writer; one view writer "
                    "per deployment (DNC_APP_ID) and database"
                )
            with conn.transaction():
                meta = conn.execute("SELECT name, value FROM meta").fetchall()
                stored = {str(k): str(v) for k, v in meta}
                if stored != self.identity:
                    # Empty, or built from another cluster/topic/partition count: rebuild.
                    conn.execute("TRUNCATE entries, history, offsets, meta")
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO meta VALUES (%s, %s)", list(self.identity.items())
                        )
        except BaseException:
            conn.close()
            raise
        self._writer = conn
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={**self._options(), "autocommit": True},
            open=True,
            name=f"dnc-view-{self.schema}",
        )
        return self.offsets()

    @property
    def conn(self) -> Conn:
        if self._writer is None:
            raise RuntimeError("PostgresStore is not open")
        return self._writer

    def offsets(self, log: str = store.CHANGES) -> dict[int, int]:
        with self.conn.transaction():
            rows = self.conn.execute("SELECT part, next FROM offsets WHERE log = %s", (log,))
            return {int(p): int(o) for p, o in rows.fetchall()}

    def reset(self) -> None:
        with self.conn.transaction():
            self.conn.execute("TRUNCATE entries, history, offsets")

    def apply(
        self,
        records: Iterable[tuple[bytes, bytes | None]],
        offsets: dict[int, int],
        history: Iterable[view_history.Record] = (),
        history_offsets: dict[int, int] | None = None,
    ) -> int:
        deletes, upserts, bad = store.parse_changes(records)
        gone, rows, hbad = view_history.parse_records(history)
        moved = [(store.CHANGES, p, o) for p, o in offsets.items()]
        moved += [(store.HISTORY, p, o) for p, o in (history_offsets or {}).items()]
        # One row per conflict key: two spellings of one key in a batch would make the
        # statement update a row twice (an error); the later record wins, as in SQLite.
        unique = {(r[0], r[1], r[2] or "", r[3] or ""): r for r in upserts}
        with self.conn.transaction(), self.conn.cursor() as cur:
            if deletes:
                cur.execute(_DELETE, _columns(deletes, 4))
            if unique:
                cur.execute(_UPSERT, _columns(list(unique.values()), 9))
            if gone:
                cur.execute(_HISTORY_DELETE, ([hk for (hk,) in gone],))
            if rows:
                cur.execute(_HISTORY_UPSERT, _columns(rows, 12))
            if moved:
                cur.executemany(_OFFSETS, moved)
        return bad + hbad

    def optimize(self) -> None:
        with self.conn.transaction():
            self.conn.execute("ANALYZE entries, history")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        conn, self._writer = self._writer, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()  # the writer's advisory lock goes with its session

    # --- readers -------------------------------------------------------------------------

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open")
        with self._pool.connection() as conn:
            return fn(_Qmark(conn), *args)


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows → one list per column (the arrays the statements unnest)."""
    return [[row[i] for row in rows] for i in range(width)]


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


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "Reader", "migrate"]
