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
from dnc.domain.entries import Entry, EntryKey

T = TypeVar("T")


class Reads:
    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(reader, *args)`` on one of the store's readers."""
        raise NotImplementedError

    def page(self, q: EntryQuery, limit: int, after: store.Position | None) -> list[Entry]:
        return self._read(store.page, q, limit, after)

    def count(self, q: EntryQuery) -> int:
        return self._read(store.count, q)

    def keys(self, q: EntryQuery) -> list[EntryKey]:
        return self._read(store.keys, q)

    def get(self, wanted: Sequence[EntryKey]) -> dict[EntryKey, Entry]:
        return self._read(store.get, wanted)

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
    ) -> list[Entry]:
        return self._read(view_sorting.sorted_page, q, limit, sort, after)

    def overview(self, accounts: list[str], days: int, now: int) -> dict[str, Any]:
        return self._read(view_overview.overview, accounts, days, now)
