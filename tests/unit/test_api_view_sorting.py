"""Sorted listings (issue 17): every order walks the model's order page by page — ties
(one added_at, one sender) kept in one stable order by the changelog position, nothing skipped or
repeated across pages — and a cursor is only accepted by the order that made it."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from dnc.api.view import store
from dnc.api.view.query import EntryQuery
from dnc.api.view.sorting import (
    SORT_COLUMNS,
    SortPosition,
    decode_sorted_cursor,
    encode_sorted_cursor,
    parse_sort,
    sort_value,
    sorted_page,
)
from dnc.domain.entries import EntryKey
from dnc.errors import InvalidValue
from tests.unit.test_api_view_store import change, listed, matches, random_entry, random_query


@pytest.fixture
def writer(tmp_path: Path) -> store.ViewWriter:
    w = store.ViewWriter(tmp_path / "v.sqlite3", {"topic": "t"})
    w.open()
    return w


def walk_sorted(
    fetch: Callable[[EntryQuery, int, tuple[str, bool], SortPosition | None], list[store.Listed]],
    q: EntryQuery,
    limit: int,
    order: tuple[str, bool],
) -> list[store.Listed]:
    """Every page of ``q`` in ``order``, each after the cursor the previous one gave."""
    walked: list[store.Listed] = []
    after = None
    while True:
        got = fetch(q, limit, order, after)
        walked += got
        if len(got) < limit:
            return walked
        entry, kh = got[-1]
        cursor = encode_sorted_cursor(order, (sort_value(entry, order[0]), kh))
        after = decode_sorted_cursor(cursor, order)


def test_every_order_pages_through_the_model(writer: store.ViewWriter) -> None:
    rng = random.Random(17)
    model: dict[EntryKey, store.Listed] = {}
    records: list[store.Change] = []
    for _ in range(300):
        e = random_entry(rng)
        records.append(change(e))
        model[e.key] = listed(records[-1], e)
    assert writer.apply(records, {0: 1}) == 0
    conn = store.connect(writer.path, readonly=True)
    for column in SORT_COLUMNS:
        for descending in (False, True):
            order = (column, descending)
            for _ in range(25):
                q = random_query(rng)
                expected = sorted(
                    (le for le in model.values() if matches(q, le[0])),
                    key=lambda le: (sort_value(le[0], column), le[1]),
                    reverse=descending,
                )
                walked = walk_sorted(
                    lambda *a: sorted_page(conn, *a), q, rng.randrange(1, 7), order
                )
                assert walked == expected, order
    conn.close()


def test_sort_names_and_cursors_are_checked() -> None:
    assert parse_sort("-Sender") == ("sender", True)
    assert parse_sort("contact") == ("contact", False)
    with pytest.raises(InvalidValue, match="is not a sort order; use added or -added"):
        parse_sort("name")
    cursor = encode_sorted_cursor(("sender", False), ("acme", 12))
    assert decode_sorted_cursor(cursor, ("sender", False)) == ("acme", 12)
    with pytest.raises(InvalidValue, match="belongs to another sort order"):
        decode_sorted_cursor(cursor, ("contact", False))
    with pytest.raises(InvalidValue, match="is not a cursor from this listing"):
        decode_sorted_cursor("garbage", ("sender", False))
