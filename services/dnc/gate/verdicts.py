"""The entry that blocks a message, rendered as the blocked record quotes it: read straight
from the index's packed entries (``dnc.index.layout``), without making ``Entry`` objects.

This runs for every blocked message whose verdict is not remembered, so it is the
reference (``unpack_entries`` → ``blocking_entries`` → ``entry_dict``) written out for
speed; tests/unit/test_gate_verdicts.py checks that both give the same bytes for any
entries, channel, sender and time (rule 2: most specific first, then the earliest added).
"""

from __future__ import annotations

import orjson

from dnc.domain.changelog import format_time
from dnc.gate.decisions import Parsed
from dnc.index.layout import CODE_CHANNEL, CODE_SOURCE, REC, SEP

# Packed source code (upper case; lower case: stored under the contact's id) → its name.
SOURCE_NAME = {code: source.value for code, source in CODE_SOURCE.items()}


def blocking_entry(p: Parsed, raw: bytes, now: int) -> tuple[bytes | None, bool]:
    """(The JSON of the most specific entry of the packed entries ``raw`` of message
    ``p``'s contact that blocks its channel and sender at ``now``, or None; whether that
    answer holds at any time: no entry expires)."""
    account, channel, sender, contact = p[0], p[1], p[2], p[3]
    best: list[str] | None = None
    best_rank = (4, 0)
    timeless = True
    for rec in raw.decode().split(REC):
        fields = rec.split(SEP)
        ch, s, _src, added, expires = fields
        if expires:
            timeless = False
            if int(expires) <= now:
                continue
        code = CODE_CHANNEL[ch]
        if code is not None and code != channel:
            continue
        if s and s != sender:
            continue
        # Rule 2's order (Entry.sort_key): a channel match above a sender match, then the
        # earliest added; the first of equals, as a stable sort keeps it.
        rank = ((0 if code is not None else 2) + (0 if s else 1), int(added))
        if rank < best_rank:
            best, best_rank = fields, rank
    if best is None:
        return None, timeless
    ch, s, src, added, expires = best
    entry = {
        "account": account,
        "contact": contact,
        "channel": CODE_CHANNEL[ch],
        "sender": s or None,
        "source": SOURCE_NAME[src.upper()],
        "added_at": format_time(best_rank[1]),
    }
    if expires:
        entry["expires_at"] = format_time(int(expires))
    return orjson.dumps(entry), timeless
