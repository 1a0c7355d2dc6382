"""``dnc ingest``: opt-out events in, list commands out.

Consumes ``dnc.inbound-messages``, ``dnc.url-unsubscribes``, ``dnc.journey-actions`` and
``dnc.delivery-reports``, and turns each record into commands on ``dnc.commands`` (keyed
and partitioned by account and contact), into nothing (a message that is not a keyword),
or into a dead-letter record that says which field is wrong and why. Each input partition
commits its outputs and its offset in one transaction (``dnc.kafka.pipeline``).

Ingest holds no state: whether a command changes the list is decided by the list writer
that owns the contact's partition (``dnc.listwriter``), which is what makes "adding an
existing entry changes nothing" and "START removes only the entries the person's own
messages created" exact even when several sources race.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.domain.channels import Channel, check_channel_for_contact, parse_channel
from dnc.domain.contacts import normalise_contact, normalise_sender
from dnc.domain.entries import Command, EntryKey, Op, Source, sender_as_entered
from dnc.domain.events import (
    InboundMessage,
    JourneyAction,
    ReviewItem,
    UrlUnsubscribe,
    parse_record,
)
from dnc.domain.intent import Intent, IntentMatcher, Verdict, load_languages
from dnc.domain.keywords import KeywordAction, KeywordMatcher, fold_keyword
from dnc.domain.reviews import review_id, review_partition
from dnc.domain.timestamps import format_ms, now_ms
from dnc.domain.unsubscribe import TokenSigner
from dnc.errors import ConfigurationError, InvalidValue, PoisonRecord
from dnc.index.layout import Layout, list_partition
from dnc.ingest.signals import SignalMapper
from dnc.kafka import clients as kafka
from dnc.kafka.batches import BatchWriter
from dnc.kafka.deadletter import DeadLetters, error_kind
from dnc.kafka.pipeline import TransactionalPipeline
from dnc.kafka.role import PipelineRole
from dnc.metrics import RoleMetrics
from dnc.settings import Settings

log = logging.getLogger(__name__)

Parser = Callable[[ConsumerRecord[bytes, bytes], int], list[Command]]


class Ingest(PipelineRole):
    """The ingest role: a transactional pipeline whose handler is this object."""

    name = "ingest"

    def __init__(self, settings: Settings) -> None:
        super().__init__(RoleMetrics(self.name, enabled=settings.metrics_enabled))
        self.settings = settings
        t = settings.topics
        kw = settings.keywords
        self.matcher = KeywordMatcher(kw.opt_out, kw.opt_out_all, kw.opt_in)
        self.intent = IntentMatcher(load_languages(settings.intent.languages or None))
        self.layout = Layout.from_settings(settings)
        self._languages = {
            fold_keyword(word, homoglyphs=True): lang
            for word, lang in settings.confirmation.languages.items()
        }
        self.tokens = TokenSigner([k.get_secret_value() for k in settings.api.unsubscribe_keys])
        self.signals = SignalMapper.from_settings(settings)
        self.parsers: dict[str, Parser] = {
            t.inbound_messages: self._inbound,
            t.url_unsubscribes: self._url,
            t.journey_actions: self._journey,
            t.delivery_reports: self.signals.commands,
        }
        self.pipeline = TransactionalPipeline(
            settings, self.name, list(self.parsers), self, metrics=self.metrics
        )
        self.dead_letters = DeadLetters(t.dead_letter)
        self.command_partitions = 0
        self.review_partitions = 0
        # Reviews made by the record being parsed: written to dnc.reviews in the same
        # transaction as its commands (the parsers' return value is the commands).
        self._reviews: list[ReviewItem] = []
        self.counts = {
            "commands": 0, "no_change": 0, "dead_letter": 0, "intent_opt_outs": 0, "reviews": 0
        }  # fmt: skip

    async def _open(self, exits: AsyncExitStack) -> None:
        t = self.settings.topics
        counts = await kafka.topic_partitions(self.settings, t.commands, t.dead_letter, t.reviews)
        self.command_partitions = counts[t.commands]
        self.review_partitions = counts[t.reviews]
        self.dead_letters.partitions = counts[t.dead_letter]
        if not self.command_partitions:
            raise ConfigurationError("dnc.commands has no partitions")
        await self.pipeline.start()
        exits.push_async_callback(self.pipeline.stop)

    # --- Handler ------------------------------------------------------------------------

    async def handle(
        self,
        batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        writers: Mapping[TopicPartition, BatchWriter],
    ) -> None:
        t = self.settings.topics
        now = now_ms()
        counts = self.counts
        for tp, records in batch.items():
            out = writers[tp]
            parse = self.parsers[tp.topic]
            ignored = 0
            for record in records:
                self._reviews.clear()
                try:
                    commands = self._for_storage(self._with_expiry(parse(record, now)))
                except PoisonRecord as exc:
                    counts["dead_letter"] += 1
                    self.dead_letters.append(out, record, str(exc), error_kind(exc))
                    continue
                for review in self._reviews:
                    self.counts["reviews"] += 1
                    out.append(
                        t.reviews,
                        review_partition(review.review_id, self.review_partitions),
                        review.review_id.encode(),
                        review.model_dump_json().encode(),
                    )
                if not commands:
                    ignored += 1
                for cmd in commands:
                    k = cmd.ops[0].key
                    field = self.layout.field(k.account, k.contact)
                    counts["commands"] += 1
                    out.append(
                        t.commands,
                        list_partition(field, self.command_partitions),
                        field,
                        cmd.to_json(),
                    )
            counts["no_change"] += ignored
            out.tally["no_command"] = ignored
            out.tally["command"] = len(records) - ignored - out.tally.get("dead_lettered", 0)

    # --- parsers: one input record → commands ------------------------------------------

    def _inbound(self, record: ConsumerRecord[bytes, bytes], now: int) -> list[Command]:
        msg = parse_record(InboundMessage, record.value)
        channel = parse_channel(msg.channel, allow_all=False)
        action = self.matcher.classify(msg.text)
        assert channel is not None
        if action is None:
            return self._intent(msg, channel, record, now)
        contact, kind = normalise_contact(msg.from_, "from")
        check_channel_for_contact(kind, channel, by_hand=False)
        sender = normalise_sender(msg.to, "to")
        origin = {
            "kind": "inbound_message",
            "message_id": msg.message_id,
            "text": msg.text[:160],
            "received_at": msg.received_at,
            **_position(record),
            **sender_as_entered(msg.to, sender),
        }
        this_sender = EntryKey(msg.account, contact, channel.value, sender)
        all_senders = this_sender._replace(sender=None)
        if action is KeywordAction.OPT_OUT and self._revokes_all(msg.account):
            action = KeywordAction.OPT_OUT_ALL  # the account's STOP scope is every sender
        if action is KeywordAction.OPT_OUT:
            ops = [
                Op(
                    "add",
                    this_sender,
                    Source.END_USER_MESSAGE,
                    confirm=self._confirmation(msg, channel.value),
                )
            ]
        elif action is KeywordAction.OPT_OUT_ALL:
            ops = [
                Op(
                    "add",
                    all_senders,
                    Source.END_USER_MESSAGE,
                    confirm=self._confirmation(msg, channel.value),
                )
            ]
        else:
            ops = [
                Op("remove_if_source", this_sender, Source.END_USER_MESSAGE),
                Op("remove_if_source", all_senders, Source.END_USER_MESSAGE),
            ]
        return [Command(ops, now, origin, None)]

    def _intent(
        self, msg: InboundMessage, channel: Channel, record: ConsumerRecord[bytes, bytes], now: int
    ) -> list[Command]:
        """Not a keyword. With policy ``auto`` an opt-out in the person's own words ("please
        stop texting me") blocks this sender like STOP; what may be one, and with policy
        ``review`` every verdict, goes to the review queue (dnc.reviews) instead; with
        ``off`` and ``review`` the message changes nothing on the list (contract rule 5)."""
        policy = self.settings.intent.policy_for(msg.account)
        if policy == "off":
            return []
        intent = self.intent.classify(msg.text)
        if intent.verdict is Verdict.NONE:
            return []
        contact, kind = normalise_contact(msg.from_, "from")
        check_channel_for_contact(kind, channel, by_hand=False)
        sender = normalise_sender(msg.to, "to")
        if policy == "review" or intent.verdict is not Verdict.OPT_OUT:
            stored = self.layout.ids.token(contact) if self.settings.privacy.enabled else contact
            review = _review(msg, channel, contact=stored, sender=sender, intent=intent, now=now)
            self._reviews.append(review.model_copy(update={"policy": policy}))
            return []
        self.counts["intent_opt_outs"] += 1
        key = EntryKey(
            msg.account, contact, channel.value, None if self._revokes_all(msg.account) else sender
        )
        confirm = self._confirmation(msg, channel.value, intent.language)
        return [
            Command(
                [Op("add", key, Source.END_USER_MESSAGE, confirm=confirm)],
                now,
                {**_intent_origin(msg, intent, record), **sender_as_entered(msg.to, key.sender)},
                None,
            )
        ]

    def _revokes_all(self, account: str) -> bool:
        return self.settings.keywords.stop_scope_for(account) == "all_senders"

    def _confirmation(
        self, msg: InboundMessage, channel: str, language: str | None = None
    ) -> dict[str, Any] | None:
        """The message that confirms an opt-out, addressed as the STOP came in (from the
        sender that received it, to the number that sent it). The list writer sends it if,
        and only if, this STOP creates the entry."""
        conf = self.settings.confirmation
        if not conf.enabled:
            return None
        language = language or self._languages.get(fold_keyword(msg.text, homoglyphs=True), "en")
        text = conf.texts.get(language) or conf.texts.get("en")
        if not text:
            return None
        digest = hashlib.sha256(f"{msg.account}\x1f{msg.message_id}".encode()).hexdigest()
        return {
            "message_id": f"dnc-confirm-{digest[:24]}",
            "account": msg.account,
            "channel": channel,
            "sender": msg.to,
            "destination": msg.from_,
            "text": text,
            "type": "opt_out_confirmation",
            "in_reply_to": msg.message_id,
            "language": language,
        }

    def _with_expiry(self, commands: list[Command]) -> list[Command]:
        """Entries of sources with a configured lifetime get their expiry here, once."""
        ttl = self.settings.expiry.ttl_days
        if not ttl:
            return commands
        for cmd in commands:
            for op in cmd.ops:
                days = ttl.get(op.source.value) if op.op == "add" and op.source else None
                if days is not None and op.expires_at is None:
                    op.expires_at = cmd.at + int(days * 86_400_000)
        return commands

    def _for_storage(self, commands: list[Command]) -> list[Command]:
        """Privacy mode: contacts leave ingest only as their stored ids (the confirmation
        keeps the number it must reach; it travels in dnc.commands, never in the list)."""
        if not self.settings.privacy.enabled:
            return commands
        token = self.layout.ids.token
        for cmd in commands:
            for op in cmd.ops:
                op.key = op.key._replace(contact=token(op.key.contact))
        return commands

    def _url(self, record: ConsumerRecord[bytes, bytes], now: int) -> list[Command]:
        event = parse_record(UrlUnsubscribe, record.value)
        if event.token is not None:
            if not self.tokens.enabled:
                raise InvalidValue(
                    "token", "…", "cannot be verified: no unsubscribe keys are configured"
                )
            claims = self.tokens.verify(event.token)
            account, raw_contact = claims.account, claims.contact
            raw_channel, raw_sender, campaign = claims.channel, claims.sender, claims.campaign_id
        else:
            assert event.account is not None
            assert event.contact is not None
            account, raw_contact = event.account, event.contact
            raw_channel, raw_sender, campaign = event.channel, event.sender, event.campaign_id
        contact, kind = normalise_contact(raw_contact, "contact")
        channel = parse_channel(raw_channel)
        check_channel_for_contact(kind, channel, by_hand=False)
        key = EntryKey(
            account, contact, channel.value if channel else None, normalise_sender(raw_sender)
        )
        origin = {
            "kind": "url_unsubscribe",
            "event_id": event.event_id,
            "campaign_id": campaign,
            "token": event.token is not None,
            **_position(record),
            **sender_as_entered(raw_sender, key.sender),
        }
        return [Command([Op("add", key, Source.URL_OPT_OUT)], now, origin, None)]

    def _journey(self, record: ConsumerRecord[bytes, bytes], now: int) -> list[Command]:
        event = parse_record(JourneyAction, record.value)
        contact, kind = normalise_contact(event.contact, "contact")
        channel = parse_channel(event.channel)
        check_channel_for_contact(kind, channel, by_hand=False)
        sender = normalise_sender(event.sender)
        origin = {
            "kind": "journey",
            "event_id": event.event_id,
            "journey_id": event.journey_id,
            **_position(record),
            **sender_as_entered(event.sender, sender),
        }
        commands = []
        for account in dict.fromkeys(event.accounts):  # one entry per account, no repeats
            key = EntryKey(account, contact, channel.value if channel else None, sender)
            op = (
                Op("add", key, Source.CAMPAIGN_ACTION)
                if event.action == "add"
                else Op("remove", key)
            )
            commands.append(Command([op], now, origin, None))
        return commands


def _review(
    msg: InboundMessage,
    channel: Channel,
    *,
    contact: str,
    sender: str | None,
    intent: Intent,
    now: int,
) -> ReviewItem:
    return ReviewItem(
        review_id=review_id(msg.account, msg.message_id),
        status="open",
        account=msg.account,
        channel=channel,
        contact=contact,
        sender=sender,
        message_id=msg.message_id,
        text=msg.text[:160],
        received_at=msg.received_at,
        verdict=intent.verdict.value,
        phrase=intent.phrase,
        rule=intent.rule,
        language=intent.language,
        policy="review",
        created_at=format_ms(now),
    )


def _intent_origin(
    msg: InboundMessage, intent: Intent, record: ConsumerRecord[bytes, bytes]
) -> dict[str, Any]:
    """The history cause of an opt-out read from the person's own words (contract
    addition): the message, what matched and in which phrase list, so a person can see
    why the service decided as it did."""
    return {
        "kind": "inbound_intent",
        "message_id": msg.message_id,
        "text": msg.text[:160],
        "received_at": msg.received_at,
        "verdict": intent.verdict.value,
        "phrase": intent.phrase,
        "rule": intent.rule,
        "language": intent.language,
        "policy": "auto",
        **_position(record),
    }


def _position(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
