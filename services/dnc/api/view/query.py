"""Filters over the list, shared by listing, counting, export and remove-by-filter.

A filter may take several values (repeat the query parameter): values of one filter are
OR-ed, filters are AND-ed. ``channel=ALL`` / ``sender=ALL`` select the entries that apply
to all channels / all senders. ``contact`` is exact unless it ends with ``*`` (prefix).
Contacts, senders and channels are normalised exactly as at write time, so a filter on
``+44 1234 567890`` finds ``441234567890``; a contact matches every form the list stores
it under (``dnc.api.contactforms``: its id in privacy mode, or after an erasure), and in
privacy mode a prefix cannot match anything, so it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnc.api.auth import Principal
from dnc.api.contactforms import ContactForms
from dnc.domain.channels import parse_channel
from dnc.domain.contacts import normalise_sender
from dnc.domain.entries import Source
from dnc.domain.timestamps import parse_ts
from dnc.errors import InvalidValue

ALL = "ALL"


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """A filter over the list. ``accounts`` is always the authorised scope (never empty)."""

    accounts: tuple[str, ...]
    contacts: tuple[str, ...] = ()
    contact_prefixes: tuple[str, ...] = ()
    channels: tuple[str | None, ...] = ()  # None = entries for all channels
    senders: tuple[str | None, ...] = ()  # None = entries for all senders
    sources: tuple[str, ...] = ()
    added_from: int | None = None  # epoch ms, inclusive
    added_to: int | None = None  # epoch ms, exclusive


def build_query(  # noqa: PLR0917 - mirrors the query string, one argument per filter
    who: Principal,
    account: list[str] | None = None,
    contact: list[str] | None = None,
    channel: list[str] | None = None,
    sender: list[str] | None = None,
    source: list[str] | None = None,
    added_from: str | None = None,
    added_to: str | None = None,
    *,
    forms: ContactForms,
) -> EntryQuery:
    """Validate and normalise raw filter values; 403 for accounts the key does not grant."""
    accounts = tuple(who.scope(account))
    exact: list[str] = []
    prefixes: list[str] = []
    for raw in contact or ():
        text = raw.strip()
        if text.endswith("*"):
            if forms.privacy:
                raise InvalidValue(
                    "contact",
                    raw,
                    "cannot be matched by its start in privacy mode: contacts are stored as "
                    "keyed hashes, so give the whole contact",
                )
            stem = text[:-1].strip().lstrip("+").replace(" ", "").lower()
            if not stem:
                raise InvalidValue("contact", raw, "needs at least one character before '*'")
            prefixes.append(stem)
        else:
            exact += forms.forms(forms.parse(text)[0])
    channels: list[str | None] = []
    for raw in channel or ():
        if raw.strip().upper() == ALL:
            channels.append(None)
        else:
            parsed = parse_channel(raw, allow_all=False)
            assert parsed is not None
            channels.append(parsed.value)
    senders: list[str | None] = []
    for raw in sender or ():
        senders.append(None if raw.strip().upper() == ALL else normalise_sender(raw))
    sources: list[str] = []
    for raw in source or ():
        try:
            sources.append(Source(raw.strip().upper()).value)
        except ValueError:
            names = ", ".join(s.value for s in Source)
            raise InvalidValue("source", raw, f"is not a source; use one of {names}") from None
    return EntryQuery(
        accounts=accounts,
        contacts=tuple(exact),
        contact_prefixes=tuple(prefixes),
        channels=tuple(channels),
        senders=tuple(senders),
        sources=tuple(sources),
        added_from=parse_ts(added_from, "added_from") if added_from else None,
        added_to=parse_ts(added_to, "added_to") if added_to else None,
    )
