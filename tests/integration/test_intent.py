"""Opt-outs in people's own words on the real stack (Kafka, Redis, ingest, list writer,
gate as processes): with policy ``auto`` "Please stop texting me!!" blocks that sender;
"Can you stop by at 5?" changes nothing; the history keeps the words that decided."""

from __future__ import annotations

import pytest

from dnc.settings import IntentSettings, Keywords, Settings
from tests.integration.test_rules import PHONE, changes, gate_outputs
from tests.kit import ids, inbound, outbound, produce, reading, running

pytestmark = pytest.mark.integration


async def test_auto_blocks_an_opt_out_in_own_words_and_ignores_a_false_friend(
    make_settings: object,
) -> None:
    settings: Settings = await make_settings(intent=IntentSettings(policy="auto"))  # type: ignore[operator]
    t = settings.topics
    async with running(settings, "ingest", "listwriter", "gate"):
        async with reading(settings, t.history) as (history,):
            await produce(
                settings,
                t.inbound_messages,
                inbound("mo-visit", "+44 1234 567899", "Can you stop by at 5?"),
                inbound("mo-1", "+44 1234 567890", "Please stop texting me!!"),
            )
            (entry,) = await changes(settings, 1)
            await history.wait_for(1)
            (record,) = history.values()
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", PHONE, sender="OTHER"),
            outbound("m-3", "441234567899", sender="ACME"),
        )
    assert sorted(allowed) == ["m-2", "m-3"]  # the visitor is not blocked
    assert ids(b["message"] for b in blocked) == ["m-1"]
    assert isinstance(entry, dict) and entry["source"] == "END_USER_MESSAGE"
    cause = record["cause"]
    assert cause["kind"] == "inbound_intent" and cause["message_id"] == "mo-1"
    assert cause["text"] == "Please stop texting me!!" and cause["phrase"] == "stop texting"


async def test_review_changes_nothing_on_the_list(settings: Settings) -> None:
    t = settings.topics
    assert settings.intent.policy == "review"  # the default
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings, t.inbound_messages, inbound("mo-1", PHONE, "Please stop texting me!!")
        )
        async with reading(settings, t.changes, t.dead_letter) as (chg, dlq):
            await chg.settle(2.0)
            assert chg.records == [] and dlq.records == []
        allowed, _, _ = await gate_outputs(settings, outbound("m", PHONE))
    assert allowed == ["m"]


async def test_stop_scope_all_senders_blocks_every_sender_of_that_channel(
    make_settings: object,
) -> None:
    settings: Settings = await make_settings(keywords=Keywords(stop_scope="all_senders"))  # type: ignore[operator]
    async with running(settings, "ingest", "listwriter", "gate"):
        await produce(
            settings, settings.topics.inbound_messages, inbound("mo-1", "+44 1234 567890", "STOP")
        )
        await changes(settings, 1)
        allowed, blocked, _ = await gate_outputs(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", PHONE, sender="OTHER"),
            outbound("m-3", PHONE, channel="VIBER"),
        )
    assert allowed == ["m-3"]
    assert sorted(ids(b["message"] for b in blocked)) == ["m-1", "m-2"]
    assert blocked[0]["entry"]["sender"] is None
