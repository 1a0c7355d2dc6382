"""The channels a message goes out on, and which of them fit a contact.

``Channel`` is the one list of channels: events, the gate, the index's storage codes
(``dnc.index.layout.CHANNEL_CODE``), per-channel topics and the page all derive from it.
"""

from __future__ import annotations

from enum import StrEnum

from dnc.domain.contacts import ContactKind, type_reason
from dnc.errors import InvalidValue


class Channel(StrEnum):
    SMS = "SMS"
    MMS = "MMS"
    VOICE = "VOICE"
    VIBER = "VIBER"
    WHATSAPP = "WHATSAPP"
    RCS = "RCS"
    EMAIL = "EMAIL"


# The names people read (the page, exports, messages); the codes are what the API speaks.
CHANNEL_LABELS: dict[str, str] = {
    Channel.SMS: "SMS",
    Channel.MMS: "MMS",
    Channel.VOICE: "Voice",
    Channel.VIBER: "Viber",
    Channel.WHATSAPP: "WhatsApp",
    Channel.RCS: "RCS",
    Channel.EMAIL: "Email",
}
_CHANNEL_NAMES = ", ".join(CHANNEL_LABELS.values())
_EMAIL_CHANNELS_ONLY = (
    "is not allowed for an e-mail address: choose Email or leave the channel blank (all channels)"
)
_NO_EMAIL_FOR_PHONE = "is not allowed for a phone number (Email is for e-mail addresses)"
_WHATSAPP_BY_HAND = (
    "cannot be chosen by hand: use a journey action, "
    "or leave the channel blank to block all channels"
)


def parse_channel(raw: object, field: str = "channel", *, allow_all: bool = True) -> Channel | None:
    if raw is None:
        text = ""
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise InvalidValue(field, raw, type_reason(raw))
    # str.upper() maps some non-ASCII letters onto ASCII ("ſms" -> "SMS"); a name that
    # only looks like a channel must not be taken for one.
    upper = text.upper() if text.isascii() and len(text) <= 16 else None
    if text == "" or upper == "ALL":
        if allow_all:
            return None
        raise InvalidValue(field, raw, f"must name one channel ({_CHANNEL_NAMES}), not all")
    if upper is not None and upper in Channel.__members__:
        return Channel(upper)
    raise InvalidValue(
        field, raw, f"is not a channel (valid: {_CHANNEL_NAMES}, or All / blank for all)"
    )


def check_channel_for_contact(kind: ContactKind, channel: Channel | None, *, by_hand: bool) -> None:
    # The channel's name, so that the message shows "WhatsApp", not the code or the enum's repr.
    if kind is ContactKind.EMAIL and channel not in (None, Channel.EMAIL):
        raise InvalidValue("channel", CHANNEL_LABELS[channel], _EMAIL_CHANNELS_ONLY)
    if kind is ContactKind.PHONE and channel is Channel.EMAIL:
        raise InvalidValue("channel", CHANNEL_LABELS[channel], _NO_EMAIL_FOR_PHONE)
    if by_hand and channel is Channel.WHATSAPP:
        raise InvalidValue("channel", CHANNEL_LABELS[channel], _WHATSAPP_BY_HAND)
