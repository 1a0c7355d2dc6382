"""Channel signals (contract addition): delivery reports whose error code means "this
person opted out at the channel" become entries with source ``CHANNEL_SIGNAL``.

The mapping from provider error codes is configuration (``DNC_CHANNEL_SIGNALS``), e.g.
Twilio 21610, WhatsApp 131050, AWS ``DESTINATION_PHONE_NUMBER_OPTED_OUT``. A report with
any other code changes nothing. The entry blocks the channel for all senders: a carrier-
level opt-out is not specific to one of our senders.
"""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from dnc.domain.channels import check_channel_for_contact, parse_channel
from dnc.domain.contacts import normalise_contact
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.events import DeliveryReport, parse_record
from dnc.settings import Settings


class SignalMapper:
    def __init__(self, codes: dict[str, list[str]]) -> None:
        self._codes = {
            (p.casefold(), str(c).strip().casefold()) for p, cs in codes.items() for c in cs
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> SignalMapper:
        return cls(settings.channel_signals)

    def is_opt_out(self, provider: str, code: object) -> bool:
        return (
            code is not None and (provider.casefold(), str(code).strip().casefold()) in self._codes
        )

    def commands(self, record: ConsumerRecord[bytes, bytes], now: int) -> list[Command]:
        report = parse_record(DeliveryReport, record.value)
        if not self.is_opt_out(report.provider, report.error_code):
            return []
        channel = parse_channel(report.channel, allow_all=False)
        assert channel is not None
        contact, kind = normalise_contact(report.destination, "destination")
        check_channel_for_contact(kind, channel, by_hand=False)
        origin: dict[str, Any] = {
            "kind": "channel_signal",
            "report_id": report.report_id,
            "provider": report.provider,
            "error_code": str(report.error_code),
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
        key = EntryKey(report.account, contact, channel.value, None)
        return [Command([Op("add", key, Source.CHANNEL_SIGNAL)], now, origin, None)]
