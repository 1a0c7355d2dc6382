"""How the API turns the contacts people type into what the list stores, and back.

In privacy mode (``settings.privacy.enabled``) commands, the changelog, the history and
the list view hold contact ids (``h<n>:…``, ``dnc.domain.contactids``), never the contact: every
contact the API receives becomes ``ids.token(contact)`` before a command is built or the
view is asked. Without privacy mode contacts are stored as they are, except those of an
erased person, whose entries the list writer moved under their id; so a filter by contact
looks for both forms.

People see an id masked (``h1:Ab3x…``); API answers carry the full id as ``contact_id`` as
well, because that is the only handle a client has on such an entry (to delete it, check
it or see its history).
"""

from __future__ import annotations

from typing import Any

from dnc.domain.contactids import ContactIds, is_token, masked
from dnc.domain.contacts import ContactKind, normalise_contact
from dnc.domain.entries import shown_sender
from dnc.errors import InvalidValue

_MASK_MARK = "…"


class ContactForms:
    def __init__(self, ids: ContactIds, *, privacy: bool) -> None:
        self.ids = ids
        self.privacy = privacy

    def parse(
        self, raw: object, field: str = "contact", default_region: str | None = None
    ) -> tuple[str, ContactKind | None]:
        """A typed contact in canonical form with its kind, or a full contact id as given
        (kind None: an id does not say whether it is a phone number or an address)."""
        if isinstance(raw, str):
            text = raw.strip()
            if is_token(text):
                self.ids.cid(text)  # refuses an id made with more keys than are known
                return text, None
            if text.startswith("h") and ":" in text[:5] and text.endswith(_MASK_MARK):
                raise InvalidValue(
                    field,
                    raw,
                    "is a masked contact id, which cannot be looked up: use the entry's "
                    "contact_id (the full id) instead",
                )
        return normalise_contact(raw, field, default_region)

    def stored(self, contact: str) -> str:
        """What commands carry for a canonical contact or an id."""
        if self.privacy or is_token(contact):
            return self.ids.token(contact)
        return contact

    def forms(self, contact: str) -> list[str]:
        """Every form under which the view may hold a person's rows."""
        if self.privacy or is_token(contact):
            return [self.ids.token(contact)]
        return [contact, self.ids.token(contact)]


def shown(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry (or history entry) as the API answers it: an id masked in ``contact``
    and in full in ``contact_id``. Other contacts are left as they are. Contract addition:
    ``sender_shown``, the sender as entered ("ACME" where ``sender`` is "acme"), when the
    entry's origin says so."""
    contact = entry.get("contact")
    out = entry
    if isinstance(contact, str) and is_token(contact):
        out = {**entry, "contact": masked(contact), "contact_id": contact}
    sender = entry.get("sender")
    if isinstance(sender, str):
        written = shown_sender(sender, entry.get("origin"))
        if written != sender:
            out = {**out, "sender_shown": written}
    return out
