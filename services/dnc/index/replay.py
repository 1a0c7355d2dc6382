"""Changelog records back into the index, at speed (``ReplayBuilder``).

The list writer's catch-up, the path of a full rebuild, so it runs once per entry of the
list and goes straight from the record's JSON to the packed form the index stores (no
``Entry`` objects, no read of the current entries: ``replay.lua`` merges in Redis). The
records are our own (``dnc.domain.changelog``); anything unexpected raises, which stops
the catch-up rather than guess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from dnc.domain.changelog import decode_key
from dnc.domain.contactids import is_token
from dnc.domain.timestamps import parse_ts
from dnc.index.layout import SEP, SOURCE_CODE, Layout, entry_slot, fingerprint

_SOURCES = {source.value: code for source, code in SOURCE_CODE.items()}
_CACHE_LIMIT = 100_000


class ReplayBuilder:
    def __init__(self, index: Layout) -> None:
        self.index = index
        self._minutes: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM" → epoch ms

    def build(
        self, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[Any], Counter[tuple[str, str]], list[tuple[bytes, int | None]]]:
        """(replay records, progress counters, expiry index changes) of changelog records."""
        mask = self.index.mask
        out: list[Any] = []
        counters: Counter[tuple[str, str]] = Counter()
        expiry: list[tuple[bytes, int | None]] = []
        for r in records:
            if r.key is None:
                continue
            account, contact, channel, sender = decode_key(r.key)
            field = self.index.field(str(account), str(contact))
            fp = fingerprint(field)
            slot = entry_slot(channel, sender)
            value = r.value
            if value is None:
                packed, expires = "", None
            else:
                tail, expires = self._packed_tail(value, is_token(str(contact)))
                packed = slot + tail
            out += (
                fp & mask,
                (fp >> 32) - 0x80000000,  # as Layout.locate
                field,
                slot,
                packed,
            )
            # Every record sets its key's place in the expiry index: an entry that no
            # longer expires (or left) must leave it.
            expiry.append((r.key, expires))
            if r.headers and value is not None:
                ref = dict(r.headers).get("dnc-ref")
                if ref:
                    counters[(ref.decode(), "added")] += 1
        return out, counters, expiry

    def _packed_tail(self, raw: bytes, as_id: bool) -> tuple[str, int | None]:
        """(``source␟added_at␟expires_at`` of a changelog value (see ``pack_entries``; a
        lower-case source marks an entry stored under the contact's id), its expiry)."""
        d = orjson.loads(raw)
        source = _SOURCES.get(d["source"])
        if source is None:
            raise ValueError(f"changelog value has an unknown source {d['source']!r}")
        expires_text = d.get("expires_at")
        expires = self.ms(expires_text, "expires_at") if expires_text else None
        code = source.lower() if as_id else source
        tail = "" if expires is None else str(expires)
        return f"{code}{SEP}{self.ms(d['added_at'], 'added_at')}{SEP}{tail}", expires

    def ms(self, text: object, field: str) -> int:
        """``parse_ts``, exact and fast for the form we write (``format_ms``:
        ``2026-11-26T05:31:27.123Z``): the minute is parsed once, seconds and
        milliseconds are added as integers."""
        if (
            type(text) is str
            and len(text) == 24
            and text[16] == ":"
            and text[19] == "."
            and text[23] == "Z"
        ):
            seconds, millis = text[17:19], text[20:23]
            if seconds.isdigit() and millis.isdigit() and seconds.isascii() and millis.isascii():
                minute = text[:16]
                base = self._minutes.get(minute)
                if base is None:
                    base = parse_ts(minute + ":00.000Z", field)  # whole seconds: exact
                    if len(self._minutes) >= _CACHE_LIMIT:
                        self._minutes.clear()
                    self._minutes[minute] = base
                if seconds < "60":
                    return base + int(seconds) * 1000 + int(millis)
        return parse_ts(text, field)
