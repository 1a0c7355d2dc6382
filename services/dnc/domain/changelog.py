"""The changelog's record format (``dnc.changes``, and the entries ``dnc.history`` quotes),
written at speed.

``entry_dict`` is ``Entry.to_dict`` with each time formatted once (an import's entries
share one), for the list writer's changelog and history records and the gate's blocked
wrapper; keys are ``[account, contact, channel, sender]`` (``EntryKey.to_json``), read back
by ``decode_key``.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from dnc.domain.entries import Entry
from dnc.domain.timestamps import format_ms


@functools.lru_cache(maxsize=65536)
def format_time(ms: int) -> str:
    """``format_ms``, remembered: the entries of an import, and the records of one
    command, share their time."""
    return format_ms(ms)


def entry_dict(e: Entry, *, origin: bool = True) -> dict[str, Any]:
    """``Entry.to_dict`` (same keys, same order, same values), times via ``format_time``."""
    k = e.key
    out: dict[str, Any] = {
        "account": k.account,
        "contact": k.contact,
        "channel": k.channel,
        "sender": k.sender,
        "source": e.source.value,
        "added_at": format_time(e.added_at),
    }
    if origin:
        out["origin"] = e.origin
    if e.expires_at is not None:
        out["expires_at"] = format_time(e.expires_at)
    return out


def decode_key(raw: bytes) -> list[str | None]:
    key = orjson.loads(raw)
    if not (isinstance(key, list) and len(key) == 4):
        raise ValueError(f"changelog key {raw!r} is not [account, contact, channel, sender]")
    return key
