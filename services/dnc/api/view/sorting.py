"""Sorted listings: the list in another order than newest first (contract addition,
``GET /v1/entries?sort=``), with keyset cursors that name their order.

Every order ends with ``kh`` (the changelog position, see ``dnc.api.view.store``), so entries with
equal values (one import's ``added_at``, one sender) keep one order on every API instance
and a cursor means the same position everywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson

from dnc.api.view.pages import decode_cursor, encode_cursor
from dnc.api.view.query import EntryQuery
from dnc.api.view.reader import Reader
from dnc.api.view.store import COLUMNS, Listed, entry_of, filters, position_of
from dnc.domain.entries import Entry
from dnc.errors import InvalidValue

# A sorted listing's position: (the sort column's value, kh) of the last entry seen.
SortPosition = tuple[int | str, int]
# The listing's sort columns: the API's name → the SQL it orders by (a NULL sender, "all
# senders", sorts as ''), and how an entry's value is read for a cursor. Every order ends
# with ``kh``, so equal values (one import's added_at, one sender) keep one stable order.
SORT_COLUMNS: dict[str, str] = {
    "added": "added_at",
    "contact": "contact",
    "sender": "coalesce(sender, '')",
    "source": "source",
}


def sort_value(entry: Entry, column: str) -> int | str:
    """An entry's value in a SORT_COLUMNS column, as SQLite compares it."""
    if column == "added":
        return entry.added_at
    if column == "contact":
        return entry.key.contact
    if column == "sender":
        return entry.key.sender or ""
    return entry.source.value


# The listing's orders: "added" (oldest first), "-added" (newest first, the default), and
# the same for contact, sender and source.
DEFAULT_SORT = "-added"


def parse_sort(raw: str) -> tuple[str, bool]:
    """ "-sender" → ("sender", descending)."""
    text = raw.strip().lower()
    column = text.removeprefix("-")
    if column not in SORT_COLUMNS:
        names = ", ".join(f"{c} or -{c}" for c in SORT_COLUMNS)
        raise InvalidValue("sort", raw, f"is not a sort order; use {names} (- for descending)")
    return column, text.startswith("-")


NEWEST = parse_sort(DEFAULT_SORT)  # on its own index (store.page), with its own cursors


def position(listed: Listed, sort: tuple[str, bool]) -> Any:
    """Where an entry of a page is in the listing's order ``sort``, for the next keyset
    query."""
    if sort == NEWEST:
        return position_of(listed)
    entry, kh = listed
    return sort_value(entry, sort[0]), kh


def encode_position(sort: tuple[str, bool], at: Any) -> str:
    return encode_cursor(at) if sort == NEWEST else encode_sorted_cursor(sort, at)


def decode_position(cursor: str, sort: tuple[str, bool]) -> Any:
    return decode_cursor(cursor) if sort == NEWEST else decode_sorted_cursor(cursor, sort)


def encode_sorted_cursor(sort: tuple[str, bool], position: SortPosition) -> str:
    column, descending = sort
    raw = [f"{'-' if descending else ''}{column}", *position]
    return base64.urlsafe_b64encode(orjson.dumps(raw)).rstrip(b"=").decode()


def decode_sorted_cursor(cursor: str, sort: tuple[str, bool]) -> SortPosition:
    """A cursor of a sorted listing; one of another order is refused (it would skip or
    repeat entries)."""
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        name, value, kh = raw
        if isinstance(name, str) and isinstance(value, int | str) and isinstance(kh, int):
            if parse_sort(name) != sort:
                raise InvalidValue(
                    "cursor", cursor[:40], "belongs to another sort order; start at page 1"
                )
            return value, kh
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        if isinstance(exc, InvalidValue):
            raise
    raise InvalidValue("cursor", cursor[:40], "is not a cursor from this listing")


def sorted_page(
    conn: Reader,
    q: EntryQuery,
    limit: int,
    sort: tuple[str, bool],
    after: SortPosition | None,
) -> list[Listed]:
    """``page`` in another order: ``sort`` is (a SORT_COLUMNS name, descending)."""
    column, descending = sort
    expr = SORT_COLUMNS[column]
    where, params = filters(q)
    if after is not None:
        where.append(f"({expr}, kh) {'<' if descending else '>'} (?, ?)")
        params += list(after)
    cond = "".join(f" AND {w}" for w in where)
    way = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {COLUMNS}, {expr} FROM entries WHERE account = ?{cond}"
        f" ORDER BY {expr} {way}, kh {way} LIMIT ?"
    )
    rows: list[Sequence[Any]] = []
    for account in q.accounts:
        rows += conn.execute(sql, [account, *params, limit]).fetchall()
    if len(q.accounts) > 1:
        rows.sort(key=lambda r: (r[9], r[8]), reverse=descending)
    return [(entry_of(r), r[8]) for r in rows[:limit]]
