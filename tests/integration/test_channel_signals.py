"""Channel signals against the real stack: a delivery report whose error code means "this
person opted out at the channel" (Twilio 21610, WhatsApp 131050, AWS
DESTINATION_PHONE_NUMBER_OPTED_OUT) becomes a CHANNEL_SIGNAL entry that blocks that channel
from every sender; any other code changes nothing; the mapping is configuration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dnc.index import make_index
from dnc.settings import Settings
from tests.apikit import gate_verdicts
from tests.kit import eventually, outbound, produce, reading, running

pytestmark = pytest.mark.integration

TWILIO, WHATSAPP, AWS, OTHER = "447700900601", "447700900602", "447700900603", "447700900604"


def report(
    report_id: str, destination: str, provider: str, code: object, channel: str = "SMS"
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "account": "acme",
        "channel": channel,
        "sender": "ACME",
        "destination": destination,
        "provider": provider,
        "error_code": code,
        "occurred_at": "2026-11-26T05:31:27.123Z",
    }


async def entries_of(settings: Settings, contact: str) -> list[Any]:
    async with make_index(settings) as index:
        return await index.entries_of("acme", contact)


async def settled(settings: Settings, *reports: dict[str, Any]) -> None:
    """Produce reports and wait until ingest has consumed all of them (each ends as
    commands, nothing, or a dead letter: its input offset is then committed)."""
    t = settings.topics
    sent = await produce(settings, t.delivery_reports, *reports)
    async with reading(settings, t.dead_letter) as (dead,):

        async def consumed() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
            await admin.start()
            try:
                offsets = await admin.list_consumer_group_offsets(settings.group_id("ingest"))
            finally:
                await admin.close()
            done = {
                (tp.partition, meta.offset)
                for tp, meta in offsets.items()
                if tp.topic == t.delivery_reports
            }
            return all(any(p == m.partition and o > m.offset for p, o in done) for m in sent)

        await eventually(consumed, what="ingest to consume the delivery reports")
        assert await dead.poll() == []


async def test_opt_out_codes_become_channel_signal_entries(
    make_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await make_settings()
    async with running(settings, "ingest", "listwriter", "gate"):
        await settled(
            settings,
            report("r-1", TWILIO, "twilio", 21610),  # a number code
            report("r-2", f"+{WHATSAPP}", "WhatsApp", "131050", channel="WHATSAPP"),
            report("r-3", AWS, "aws", "DESTINATION_PHONE_NUMBER_OPTED_OUT"),
            report("r-4", OTHER, "twilio", 30003),  # unreachable: not an opt-out
            report("r-5", OTHER, "aws", None),  # delivered
        )

        async def listed() -> bool:
            return all([await entries_of(settings, c) for c in (TWILIO, WHATSAPP, AWS)])

        await eventually(listed, what="the three channel signals to be entries")
        for contact, channel in ((TWILIO, "SMS"), (WHATSAPP, "WHATSAPP"), (AWS, "SMS")):
            (entry,) = await entries_of(settings, contact)
            k = entry.key
            assert (k.channel, k.sender, entry.source.value) == (channel, None, "CHANNEL_SIGNAL")
        assert await entries_of(settings, OTHER) == []

        verdicts = await gate_verdicts(
            settings,
            outbound("m-1", TWILIO, sender="ACME"),
            outbound("m-2", TWILIO, sender="PROMO"),  # every sender on that channel
            outbound("m-3", TWILIO, channel="VIBER"),  # not another channel
            outbound("m-4", WHATSAPP, channel="WHATSAPP", sender="447700900001"),
            outbound("m-5", WHATSAPP, channel="SMS"),
            outbound("m-6", AWS, sender="x"),
            outbound("m-7", OTHER),
        )
        assert verdicts == {
            "m-1": "blocked",
            "m-2": "blocked",
            "m-3": "allowed",
            "m-4": "blocked",
            "m-5": "allowed",
            "m-6": "blocked",
            "m-7": "allowed",
        }


async def test_the_mapping_comes_from_configuration(
    make_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await make_settings(channel_signals={"acme-sms": ["OPTOUT-7"]})
    async with running(settings, "ingest", "listwriter", "gate"):
        await settled(
            settings,
            report("r-1", TWILIO, "twilio", 21610),  # not in this deployment's table
            report("r-2", AWS, "ACME-SMS", " optout-7 "),  # provider and code: any case
        )
        await eventually(
            lambda: _listed(settings, AWS), what="the configured code to become an entry"
        )
        assert await entries_of(settings, TWILIO) == []
        verdicts = await gate_verdicts(settings, outbound("m-1", TWILIO), outbound("m-2", AWS))
        assert verdicts == {"m-1": "allowed", "m-2": "blocked"}


async def _listed(settings: Settings, contact: str) -> bool:
    return bool(await entries_of(settings, contact))
