"""Contract timestamps: RFC 3339, UTC, milliseconds, e.g. ``2026-11-26T05:31:27.123Z``.

Internally every time is an int of epoch milliseconds: cheap to compare, to store in
Redis and to pack.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from dnc.errors import InvalidValue

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ms(ms: int) -> str:
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
