"""Contract timestamps: RFC 3339, UTC, milliseconds, e.g. ``2026-11-26T05:31:27.123Z``.

Internally every time is an int of epoch milliseconds: cheap to compare, to store in
Redis and to pack.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta

from dnc.errors import InvalidValue

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# 10000-01-01T00:00:00Z: below it (and from 1970) every year has four digits, so the
# C-level gmtime path writes exactly what strftime would.
_FAST_UNTIL_MS = 253_402_300_800_000


def format_ms(ms: int) -> str:
    if 0 <= ms < _FAST_UNTIL_MS:
        # A third of the datetime path's cost: it runs for every blocked message and
        # every changelog record.
        t = time.gmtime(ms // 1000)
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (measured faster)
            t.tm_year,
            t.tm_mon,
            t.tm_mday,
            t.tm_hour,
            t.tm_min,
            t.tm_sec,
            ms % 1000,
        )
    return _format_ms_datetime(ms)


def _format_ms_datetime(ms: int) -> str:
    """``format_ms`` for any time datetime can hold (the reference of the fast path)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_ts(raw: object, field: str) -> int:
    """Accept any RFC 3339 timestamp with an offset (or Z); return epoch ms in UTC."""
    if not isinstance(raw, str):
        raise InvalidValue(field, raw, "must be an RFC 3339 timestamp string")
    text = raw.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(field, raw, "is not an RFC 3339 timestamp") from None
    if dt.tzinfo is None:
        raise InvalidValue(field, raw, "has no time zone (use Z or an offset)")
    # Integer arithmetic: dt.timestamp() is a float and loses a millisecond now and then.
    return (dt - _EPOCH) // timedelta(milliseconds=1)


@functools.lru_cache(maxsize=1024)
def _remembered_ts(raw: str, field: str) -> int:
    return parse_ts(raw, field)


def parse_repeated_ts(raw: object, field: str) -> int:
    """``parse_ts`` for times that repeat, remembered: the records of one command share
    their times (an import gives half a million list entries one ``added_at``), and
    parsing them was a fifth of the list view's Python cost per row. Errors are not
    remembered: they raise every time."""
    return _remembered_ts(raw, field) if type(raw) is str else parse_ts(raw, field)
