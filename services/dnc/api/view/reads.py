"""The list view's read methods, once for both stores: each is a query of ``store``,
``history``, ``sorting`` or ``overview`` (plain SQL both databases run) on the reader the
store hands out (``_read``: a SQLite connection of this thread; a pooled PostgreSQL one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dnc.api.view import history as view_history
from dnc.api.view import overview as view_overview
from dnc.api.view import sorting as view_sorting
from dnc.api.view import store
from dnc.api.view.query import EntryQuery
from dnc.api.view.reader import Reader
from dnc.domain.entries import Entry, EntryKey

T = TypeVar("T")


def bounded_count(conn: Reader, q: EntryQuery, bound: int) -> tuple[int, bool]:
    """``store.count`` that stops at ``bound`` + 1 matching rows."""
    where, params = store.filters(q)
    cond = "".join(f" AND {w}" for w in where)
    marks = ", ".join("?" * len(q.accounts))
    row = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM entries WHERE account IN ({marks}){cond}"
        " LIMIT ?) AS matched",
        [*q.accounts, *params, bound + 1],
    ).fetchone()
    n = int(row[0]) if row else 0
    return (bound, True) if n > bound else (n, False)


class Reads:
    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(reader, *args)`` on one of the store's readers."""
        raise NotImplementedError

    def page(self, q: EntryQuery, limit: int, after: store.Position | None) -> list[store.Listed]:
        return self._read(store.page, q, limit, after)

    def count(self, q: EntryQuery) -> int:
        return self._read(store.count, q)

    def total(self, q: EntryQuery, bound: int) -> tuple[int, bool]:
        """How many entries ``q`` matches, counted up to ``bound``: (n, False) when exact,
        (bound, True) when there are more (a count of millions of rows takes seconds). An
        unfiltered total is always exact."""
        if q == EntryQuery(accounts=q.accounts):
            return self.count(q), False
        return self._read(bounded_count, q, bound)

    def keys(self, q: EntryQuery) -> list[EntryKey]:
        return self._read(store.keys, q)

    def get(self, wanted: Sequence[EntryKey]) -> dict[EntryKey, Entry]:
        return self._read(store.get, wanted)

    def listed(self, wanted: Sequence[EntryKey]) -> dict[EntryKey, store.Listed]:
        return self._read(store.listed, wanted)

    def history_page(
        self,
        accounts: Sequence[str],
        contacts: Sequence[str],
        limit: int,
        after: view_history.Position | None,
    ) -> list[view_history.HistoryItem]:
        return self._read(view_history.page, accounts, contacts, limit, after)

    def history_keys(self, account: str, contacts: Sequence[str]) -> list[list[Any]]:
        return self._read(view_history.keys, account, contacts)

    def history_of_matching(
        self, q: EntryQuery, limit: int, after: view_history.ExportPosition | None
    ) -> list[view_history.HistoryItem]:
        return self._read(store.history_of_matching, q, limit, after)

    def history_of_people(
        self, people: Sequence[tuple[str, str]]
    ) -> list[view_history.HistoryItem]:
        return self._read(view_history.of_people, people)

    def sorted_page(
        self,
        q: EntryQuery,
        limit: int,
        sort: tuple[str, bool],
        after: view_sorting.SortPosition | None,
    ) -> list[store.Listed]:
        return self._read(view_sorting.sorted_page, q, limit, sort, after)

    def overview(self, accounts: list[str], days: int, now: int) -> dict[str, Any]:
        return self._read(view_overview.overview, accounts, days, now)
