"""Audience dry run (contract addition): which contacts of a planned send the list would
suppress, and why, writing nothing.

Contacts come as a JSON list or as a file read like an import (``dnc.files.imports``: the same
formats, skipped rows, column mapping, default country; only the contact column is read).
They are normalised (the gate's fast path for clean numbers), de-duplicated, looked up in
the index in chunks (``Index.entries_of_many``: one round trip per 5000 contacts) and
decided by ``dnc.domain.entries.blocking_entries``, the gate's rule. Contact ids (``h1:…``) are
accepted as they are: the index is keyed by contact id.

Memory is about 150 bytes per distinct contact (the contact, a dict slot, its row).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dnc.api.contactforms import ContactForms, shown
from dnc.domain.contactids import is_token
from dnc.domain.entries import Entry, blocking_entries
from dnc.domain.timestamps import now_ms
from dnc.errors import IndexNotReady, InvalidValue
from dnc.files.imports import ImportOptions, Invalid, scan
from dnc.files.read import ImportFile
from dnc.index import Index

INVALID_SHOWN = 100
LOOKUP_CHUNK = 5000
DEFAULT_CONTACT_COLUMN = "0"


@dataclass(slots=True)
class Audience:
    """Distinct valid contacts in first-seen order, the row of each, and what was not."""

    contacts: list[str] = field(default_factory=list)
    rows: array[int] = field(default_factory=lambda: array("L"))
    total: int = 0
    duplicate: int = 0
    invalid: int = 0
    invalid_rows: list[dict[str, Any]] = field(default_factory=list)
    file: dict[str, Any] | None = None

    def counts(self, suppressed: int) -> dict[str, int]:
        valid = len(self.contacts)
        return {
            "rows": self.total,
            "valid": valid,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "suppressed": suppressed,
            "deliverable": valid - suppressed,
        }


class _Collector:
    def __init__(self) -> None:
        self.audience = Audience()
        self._seen: dict[str, None] = {}

    def valid(self, row: int, contact: str) -> None:
        a = self.audience
        a.total += 1
        if contact in self._seen:
            a.duplicate += 1
            return
        self._seen[contact] = None
        a.contacts.append(contact)
        a.rows.append(row)

    def refused(self, row: int, value: object, reason: str) -> None:
        a = self.audience
        a.total += 1
        a.invalid += 1
        if len(a.invalid_rows) < INVALID_SHOWN:
            a.invalid_rows.append({"row": row, "value": value, "reason": reason})


def from_values(values: Iterable[object], forms: ContactForms) -> Audience:
    """A JSON list of contacts; ``row`` counts from 1."""
    out = _Collector()
    parse = forms.parse
    for row, raw in enumerate(values, 1):
        try:
            out.valid(row, parse(raw)[0])
        except InvalidValue as exc:
            out.refused(row, raw, exc.reason)
    return out.audience


def contact_options(options: ImportOptions) -> ImportOptions:
    """The import options reduced to the contact column: a dry run reads nothing else, so
    a sender or channel cell an import would refuse does not make a row invalid here."""
    mapping = options.mapping or {DEFAULT_CONTACT_COLUMN: "contact"}
    column = next((c for c, t in mapping.items() if t.strip().lower() == "contact"), None)
    if column is None:
        raise InvalidValue("mapping", mapping, "maps no column to contact")
    return ImportOptions(
        skip_rows=options.skip_rows,
        mapping={column: "contact"},
        default_country=options.default_country,
    )


def from_file(f: ImportFile, options: ImportOptions) -> Audience:
    """The contact column of an import-like file; ``row`` is the file's row number."""
    out = _Collector()
    state, rows = scan(f, contact_options(options))
    for number, result in rows:
        if not isinstance(result, Invalid):
            out.valid(number, result[0])
        elif isinstance(result.value, str) and is_token(result.value):
            out.valid(number, result.value)  # a contact id: the index is keyed by them
        else:
            out.refused(number, result.value, result.reason)
    a = out.audience
    a.file = {**f.describe(), "skipped": state.skipped, "blank": state.blank}
    return a


def first_blocking(
    entries: Sequence[Entry], channel: str, sender: str | None, now: int
) -> Entry | None:
    """The most specific entry that blocks a message on ``channel`` from ``sender`` (the
    gate's rule); without a sender, from any sender (as ``/v1/check`` answers)."""
    if sender is not None:
        found = blocking_entries(entries, channel, sender, now)
        return found[0] if found else None
    return next(
        (e for e in sorted(entries, key=Entry.sort_key) if e.blocks_any(channel, None, now)), None
    )


async def dry_run(
    index: Index,
    *,
    account: str,
    channel: str,
    sender: str | None,
    audience: Audience,
    suppressed_limit: int,
) -> dict[str, Any]:
    if not (await index.meta()).complete():
        raise IndexNotReady("the index is being built; try again shortly")
    found = await index.entries_of_many(account, audience.contacts, LOOKUP_CHUNK)
    now = now_ms()
    suppressed: list[dict[str, Any]] = []
    n = 0
    for position, entries in _listed(found):
        entry = first_blocking(entries, channel, sender, now)
        if entry is None:
            continue
        n += 1
        if len(suppressed) < suppressed_limit:
            contact = audience.contacts[position]
            suppressed.append(
                {
                    **shown({"contact": contact}),
                    "row": audience.rows[position],
                    "entry": shown(entry.to_dict(origin=False)),
                }
            )
    out: dict[str, Any] = {
        "account": account,
        "channel": channel,
        "sender": sender,
        "counts": audience.counts(n),
        "suppressed": suppressed,
        "suppressed_shown": len(suppressed),
        "invalid": audience.invalid_rows,
    }
    if audience.file is not None:
        out["file"] = audience.file
    return out


def _listed(found: list[list[Entry]]) -> Iterator[tuple[int, list[Entry]]]:
    for position, entries in enumerate(found):
        if entries:
            yield position, entries
