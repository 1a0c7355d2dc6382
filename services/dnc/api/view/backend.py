"""The list view's storage, behind one interface: ``SqliteStore`` (a file per API
instance, the embedded default) or ``PostgresStore`` (``dnc.api.view.pgstore``), chosen once
from ``DNC_VIEW__BACKEND``.

Both are synchronous: ``ListView`` calls the writing methods on its one writer thread and
the reading methods on its reader threads, never on the event loop. Each store keeps its
own connections (a SQLite connection per reader thread; a PostgreSQL pool).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dnc.api.view import history as view_history
from dnc.api.view import sorting as view_sorting
from dnc.api.view import store
from dnc.api.view.query import EntryQuery
from dnc.api.view.reads import Reads
from dnc.domain.entries import Entry, EntryKey
from dnc.settings import Settings

Changes = Iterable[store.Change]
T = TypeVar("T")


class ViewStore(Protocol):
    """Where the view's rows and its consumed offsets live (both moved in one transaction)."""

    @property
    def where(self) -> str:
        """Where the view lives, for logs and errors (a path; a database and schema)."""
        ...

    # --- the writer (one thread) --------------------------------------------------------

    def open(self) -> dict[int, int]:
        """Take the writer's place, bring the schema up to date and rebuild a view that
        belongs to another cluster or topic; return the changelog's stored offsets."""
        ...

    def offsets(self, log: str = store.CHANGES) -> dict[int, int]:
        """Partition → next offset stored, of the changelog (or of the history)."""
        ...

    def reset(self) -> None:
        """Forget everything (the changelog was recreated or truncated): rebuild from 0."""
        ...

    def apply(
        self,
        records: Changes,
        offsets: dict[int, int],
        history: Iterable[view_history.Record] = (),
        history_offsets: dict[int, int] | None = None,
    ) -> int:
        """Apply changelog and history records and move both logs' offsets atomically;
        return how many records could not be read (skipped, not fatal)."""
        ...

    def optimize(self) -> None:
        """Refresh the planner's statistics (after a rebuild)."""
        ...

    def close(self) -> None: ...

    # --- readers (any thread) -------------------------------------------------------------

    def page(
        self, q: EntryQuery, limit: int, after: store.Position | None
    ) -> list[store.Listed]: ...

    def count(self, q: EntryQuery) -> int: ...

    def total(self, q: EntryQuery, bound: int) -> tuple[int, bool]:
        """(matches, False), or (bound, True) when ``q`` matches more than ``bound``."""
        ...

    def keys(self, q: EntryQuery) -> list[EntryKey]: ...

    def get(self, wanted: Sequence[EntryKey]) -> dict[EntryKey, Entry]: ...

    def listed(self, wanted: Sequence[EntryKey]) -> dict[EntryKey, store.Listed]: ...

    def history_page(
        self,
        accounts: Sequence[str],
        contacts: Sequence[str],
        limit: int,
        after: view_history.Position | None,
    ) -> list[view_history.HistoryItem]: ...

    def history_keys(self, account: str, contacts: Sequence[str]) -> list[list[Any]]: ...

    def history_of_matching(
        self, q: EntryQuery, limit: int, after: view_history.ExportPosition | None
    ) -> list[view_history.HistoryItem]: ...

    def history_of_people(
        self, people: Sequence[tuple[str, str]]
    ) -> list[view_history.HistoryItem]: ...

    def sorted_page(
        self,
        q: EntryQuery,
        limit: int,
        sort: tuple[str, bool],
        after: view_sorting.SortPosition | None,
    ) -> list[store.Listed]: ...

    def overview(self, accounts: list[str], days: int, now: int) -> dict[str, Any]: ...


class SqliteStore(Reads):
    """The view in a SQLite file of this instance's own (``dnc.api.view.store``)."""

    def __init__(self, path: Path, identity: dict[str, str]) -> None:
        self.path = path
        self._writer = store.ViewWriter(path, identity)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    @property
    def where(self) -> str:
        return str(self.path)

    def open(self) -> dict[int, int]:
        return self._writer.open()

    def offsets(self, log: str = store.CHANGES) -> dict[int, int]:
        return self._writer.offsets(log)

    def reset(self) -> None:
        self._writer.reset()

    def apply(
        self,
        records: Changes,
        offsets: dict[int, int],
        history: Iterable[view_history.Record] = (),
        history_offsets: dict[int, int] | None = None,
    ) -> int:
        return self._writer.apply(records, offsets, history, history_offsets)

    def optimize(self) -> None:
        self._writer.optimize()

    def close(self) -> None:
        self._writer.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = store.connect(self.path, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._reader(), *args)


def make_store(settings: Settings, path: Path, identity: dict[str, str]) -> ViewStore:
    """The configured backend (``DNC_VIEW__BACKEND``)."""
    if settings.view.backend == "postgres":
        from dnc.api.view.pgstore import PostgresStore  # psycopg only where it is used

        return PostgresStore(
            settings.view.postgres_url.get_secret_value(),
            identity,
            schema=view_schema(settings),
            pool_size=settings.view.postgres_pool_size,
            statement_timeout_s=settings.view.postgres_statement_timeout_s,
        )
    return SqliteStore(path, identity)


def view_identity(settings: Settings, partitions: int, history_partitions: int) -> dict[str, str]:
    """What a view was built from: a store holding another identity is emptied and rebuilt."""
    return {
        "bootstrap": settings.kafka_bootstrap,
        "topic": settings.topics.changes,
        "partitions": str(partitions),
        "history": settings.topics.history,
        "history_partitions": str(history_partitions),
    }


def view_schema(settings: Settings) -> str:
    """The PostgreSQL schema of this deployment's view (``Settings.view_schema``)."""
    return settings.view_schema()
