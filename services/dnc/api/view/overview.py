"""The list at a glance (contract addition, ``GET /v1/overview``): how many entries the
chosen accounts have by source and by channel, and how many were added and removed on
each of the last days (from the history: ``add`` records, and ``remove`` / ``expire``).

Days are UTC days. An erasure deletes a person's history records, so the days before it
count fewer changes afterwards (the totals do not change: the entries stay).
"""

from __future__ import annotations

from typing import Any

from dnc.api.view.reader import Reader
from dnc.domain.timestamps import format_ms

DAY_MS = 86_400_000
ADDED, REMOVED = ("add",), ("remove", "expire")


def overview(conn: Reader, accounts: list[str], days: int, now: int) -> dict[str, Any]:
    marks = ", ".join("?" * len(accounts))
    by_source = dict(
        conn.execute(
            f"SELECT source, count(*) FROM entries WHERE account IN ({marks}) GROUP BY source",
            accounts,
        ).fetchall()
    )
    by_channel = dict(
        conn.execute(
            f"SELECT coalesce(channel, 'ALL'), count(*) FROM entries WHERE account IN ({marks})"
            " GROUP BY channel",
            accounts,
        ).fetchall()
    )
    first = (now // DAY_MS - days + 1) * DAY_MS
    counted = conn.execute(
        f"SELECT at / {DAY_MS}, action, count(*) FROM history WHERE account IN ({marks})"
        " AND at >= ? AND action IN ('add', 'remove', 'expire') GROUP BY 1, 2",
        [*accounts, first],
    ).fetchall()
    per_day = {d: {"added": 0, "removed": 0} for d in range(first // DAY_MS, now // DAY_MS + 1)}
    for day, action, n in counted:
        if day in per_day:
            per_day[day]["added" if action in ADDED else "removed"] += n
    return {
        "accounts": accounts,
        "total": sum(by_source.values()),
        "by_source": by_source,
        "by_channel": by_channel,
        "days": [{"day": format_ms(d * DAY_MS)[:10], **counts} for d, counts in per_day.items()],
    }
