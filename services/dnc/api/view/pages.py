"""Pages of the list view's answers and their cursors: opaque to clients, an encoded
position (keyset paging) to the view."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

from dnc.api.view import history as view_history
from dnc.api.view import store
from dnc.domain.entries import Entry
from dnc.errors import InvalidValue


@dataclass(slots=True)
class Page:
    entries: list[Entry]
    total: int
    next_cursor: str | None
    # ``total`` is a lower bound: the filter matches more (``DNC_VIEW__COUNT_BOUND``).
    total_is_lower_bound: bool = False


@dataclass(slots=True)
class HistoryPage:
    items: list[view_history.HistoryItem]
    next_cursor: str | None


def encode_cursor(position: tuple[int, ...]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> store.Position:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        added_at, kh = raw
        if isinstance(added_at, int) and isinstance(kh, int):
            return added_at, kh
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise InvalidValue("cursor", cursor[:40], "is not a cursor from this listing")


def decode_history_cursor(cursor: str) -> view_history.Position:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, part, off = raw
        if all(isinstance(x, int) for x in raw):
            return at, part, off
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise InvalidValue("cursor", cursor[:40], "is not a cursor from this history")


__all__ = ["HistoryPage", "Page", "decode_cursor", "decode_history_cursor", "encode_cursor"]
