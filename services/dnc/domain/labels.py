"""The words people read for the list's codes: on the page, in exports and in messages.

One place, so the page, an export and an error message never name a thing two ways
(``WHATSAPP`` in one, "WhatsApp" in another). The codes stay what the API speaks.
"""

from __future__ import annotations

from dnc.domain.channels import CHANNEL_LABELS
from dnc.domain.entries import Source

SOURCE_LABELS: dict[str, str] = {
    Source.END_USER_MESSAGE: "Message from end user",
    Source.CAMPAIGN_ACTION: "Campaign action",
    Source.URL_OPT_OUT: "URL opt out",
    Source.MANUAL: "Added manually",
    Source.IMPORT: "Import",
    Source.CHANNEL_SIGNAL: "Channel signal",
}
__all__ = ["CHANNEL_LABELS"]  # defined with the channels, which name them in messages

ALL_CHANNELS = "All channels"
ALL_SENDERS = "All senders"
NEVER = "Never"
ACTION_LABELS: dict[str, str] = {
    "add": "Added",
    "extend": "Expiry extended",
    "remove": "Removed",
    "expire": "Expired",
    "erase": "Erased",
}
CAUSE_LABELS: dict[str, str] = {
    "api": "By hand or API",
    "import": "Import",
    "journey": "Journey",
    "inbound_message": "Message from end user",
    "inbound_intent": "Opt-out in the person's own words",
    "review": "Reviewed reply",
    "url_unsubscribe": "Unsubscribe link",
    "channel_signal": "Channel signal",
    "expiry": "Expiry",
    "erasure": "Erasure request",
}


def channel_label(code: str | None) -> str:
    return ALL_CHANNELS if code is None else CHANNEL_LABELS.get(code, code)


def source_label(code: str | None) -> str:
    return "" if code is None else SOURCE_LABELS.get(code, code)


def channels_named(codes: list[str] | None = None) -> str:
    """ "SMS, MMS, Voice, …": channels as people read them, for messages."""
    return ", ".join(CHANNEL_LABELS.get(c, c) for c in (codes or list(CHANNEL_LABELS)))
