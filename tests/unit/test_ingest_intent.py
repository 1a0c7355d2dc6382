"""What ingest does with an inbound message that is not a keyword, per account policy
(DNC_INTENT__POLICY, DNC_INTENT__ACCOUNTS): only ``auto`` changes the list, and exact
keywords behave the same whatever the policy."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from dnc.domain.entries import Command, EntryKey, Source
from dnc.errors import PoisonRecord
from dnc.ingest.role import Ingest
from dnc.settings import IntentSettings, Keywords, Settings

PHONE = "441234567890"


def ingest(policy: str = "review", **accounts: str) -> Ingest:
    return Ingest(Settings(intent=IntentSettings(policy=policy, accounts=accounts)))  # type: ignore[arg-type]


def record(
    text: str, account: str = "acme", sender: str = "+44 1234 567890"
) -> ConsumerRecord[bytes, bytes]:
    value = orjson.dumps(
        {"message_id": "mo-1", "account": account, "channel": "SMS", "from": sender,
         "to": "ACME", "text": text, "received_at": "2026-11-26T05:31:27.123Z"}
    )  # fmt: skip
    return ConsumerRecord("dnc.inbound-messages", 0, 7, 0, 0, None, value, None, 0, len(value), [])


def inbound(role: Ingest, text: str, account: str = "acme") -> list[Command]:
    return role._inbound(record(text, account), 1000)


def test_auto_blocks_this_sender_and_keeps_the_words_in_the_cause() -> None:
    (cmd,) = inbound(ingest("auto"), "Please stop texting me!!")
    (op,) = cmd.ops
    assert (op.op, op.key, op.source) == (
        "add", EntryKey("acme", PHONE, "SMS", "acme"), Source.END_USER_MESSAGE
    )  # fmt: skip
    assert cmd.origin["kind"] == "inbound_intent"
    assert cmd.origin["text"] == "Please stop texting me!!"
    assert cmd.origin["phrase"] == "stop texting" and cmd.origin["language"] == "en"
    assert cmd.origin["verdict"] == "opt_out" and cmd.origin["policy"] == "auto"
    assert op.confirm is not None and op.confirm["language"] == "en"


def test_auto_confirms_in_the_language_of_the_words() -> None:
    (cmd,) = inbound(ingest("auto"), "No me envíen más mensajes")
    assert cmd.ops[0].confirm is not None and cmd.ops[0].confirm["language"] == "es"


@pytest.mark.parametrize("text", ["Can you stop by at 5?", "Don't stop!", "Hello"])
@pytest.mark.parametrize("policy", ["review", "auto"])
def test_false_friends_change_nothing_and_queue_nothing(policy: str, text: str) -> None:
    role = ingest(policy)
    assert inbound(role, text) == [] and role._reviews == []


def test_auto_queues_a_possible_opt_out_for_review() -> None:
    role = ingest("auto")
    assert inbound(role, "How do I stop these texts?") == []
    (review,) = role._reviews
    assert (review.verdict, review.policy, review.status) == ("possible_opt_out", "auto", "open")


def test_review_queues_opt_outs_and_changes_nothing_on_the_list() -> None:
    role = ingest("review")
    assert inbound(role, "Please stop texting me!!") == []
    (review,) = role._reviews
    assert review.verdict == "opt_out" and review.status == "open"
    assert (review.account, review.contact, review.channel, review.sender) == (
        "acme", PHONE, "SMS", "acme"
    )  # fmt: skip
    assert review.text == "Please stop texting me!!" and review.phrase == "stop texting"
    assert review.review_id.startswith("rv-") and review.policy == "review"


def test_off_changes_nothing_and_queues_nothing() -> None:
    role = ingest("off")
    assert inbound(role, "Please stop texting me!!") == [] and role._reviews == []


@pytest.mark.parametrize("policy", ["off", "review", "auto"])
def test_keywords_are_the_same_in_every_mode(policy: str) -> None:
    role = ingest(policy)
    (stop,) = inbound(role, "STOP")
    assert stop.origin["kind"] == "inbound_message"
    assert stop.ops[0].key == EntryKey("acme", PHONE, "SMS", "acme")
    (stop_all,) = inbound(role, "stop all")
    assert stop_all.ops[0].key.sender is None
    (start,) = inbound(role, "START")
    assert {op.op for op in start.ops} == {"remove_if_source"}


def test_policy_per_account() -> None:
    role = ingest("off", acme="auto")
    assert len(inbound(role, "Please stop texting me", account="acme")) == 1
    assert inbound(role, "Please stop texting me", account="acme-eu") == []


def test_an_opt_out_from_an_impossible_number_is_a_dead_letter_unless_off() -> None:
    bad = record("Please stop texting me", sender="12ab")
    assert ingest("off")._inbound(bad, 1000) == []
    assert ingest("auto")._inbound(record("Hello", sender="12ab"), 1000) == []
    for policy in ("review", "auto"):
        with pytest.raises(PoisonRecord, match="from"):
            ingest(policy)._inbound(bad, 1000)


def scoped(scope: str, policy: str = "auto", **accounts: str) -> Ingest:
    keywords = Keywords(stop_scope=scope, stop_scope_accounts=accounts)  # type: ignore[arg-type]
    return Ingest(Settings(keywords=keywords, intent=IntentSettings(policy=policy)))  # type: ignore[arg-type]


def test_stop_scope_all_senders_makes_stop_block_every_sender_of_the_channel() -> None:
    role = scoped("all_senders")
    for text in ("STOP", "Please stop texting me"):
        (cmd,) = inbound(role, text)
        assert cmd.ops[0].key == EntryKey("acme", PHONE, "SMS", None), text
    (start,) = inbound(role, "START")  # START still undoes it
    assert EntryKey("acme", PHONE, "SMS", None) in {op.key for op in start.ops}


def test_stop_scope_per_account() -> None:
    role = scoped("sender", acme="all_senders")
    assert inbound(role, "STOP")[0].ops[0].key.sender is None
    assert inbound(role, "STOP", account="acme-eu")[0].ops[0].key.sender == "acme"
