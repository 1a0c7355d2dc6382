"""Pydantic models of every event on the wire: the single definition of the contract.

``schemas/`` holds the JSON Schemas generated from these models (``dnc schemas write``); a
unit test fails when they drift. Input models are strict (a number where a string belongs
is an error, not a conversion) and ignore unknown fields, as the contract says. Values are
checked for shape here; normalisation (phones, e-mails, senders) happens in the consumer,
with ``dnc.domain.contacts``, because it depends on what the record is used for.

The gate does not build a model per message (see ``dnc.gate.reader``); a unit test holds its
fast checks to the same rules as ``OutboundMessage``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.functional_validators import AfterValidator, BeforeValidator

from dnc.domain.channels import Channel
from dnc.domain.entries import Source
from dnc.domain.timestamps import parse_ts
from dnc.errors import InvalidValue, MissingField, NotJson, PoisonRecord

M = TypeVar("M", bound=BaseModel)


def _account(value: str) -> str:
    if not account_ok(value):
        raise ValueError(
            "must be 1-128 printable characters without spaces (an account id like 'acme-prod')"
        )
    return value


def account_ok(value: str) -> bool:
    return 0 < len(value) <= 128 and value.isprintable() and " " not in value


def _event_time(value: object) -> object:
    """An event's own time is information, not a condition: a STOP whose received_at is
    malformed (or 500 KB long) is still an opt-out. Anything that is not an RFC 3339
    timestamp with a zone becomes null instead of failing the record."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parse_ts(value, "time")
    except InvalidValue:
        return None
    return value


Account = Annotated[str, AfterValidator(_account)]
Text = Annotated[str, Field(min_length=1, max_length=256)]
Timestamp = Annotated[
    str, Field(description="RFC 3339 UTC with milliseconds, e.g. 2026-11-26T05:31:27.123Z")
]
EventTime = Annotated[
    str | None,
    BeforeValidator(_event_time),
    Field(description="RFC 3339 with a zone; a value that is not one is ignored (null)"),
]


class _Input(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class InboundMessage(_Input):
    """``dnc.inbound-messages``: every inbound (mobile-originated) message."""

    message_id: Text
    account: Account
    channel: str
    from_: str = Field(alias="from", min_length=1, max_length=320)
    to: str = Field(min_length=1, max_length=320)
    text: str = Field(max_length=4096)
    received_at: EventTime = None


class UrlUnsubscribe(_Input):
    """``dnc.url-unsubscribes``: explicit fields, or a ``token`` from our own links."""

    event_id: Text
    account: Account | None = None
    contact: str | None = Field(default=None, max_length=320)
    channel: str | None = None
    sender: str | None = Field(default=None, max_length=320)
    campaign_id: str | None = Field(default=None, max_length=256)
    occurred_at: EventTime = None
    token: str | None = Field(default=None, max_length=2048)

    @model_validator(mode="after")
    def _token_or_fields(self) -> UrlUnsubscribe:
        if self.token is None and (self.account is None or self.contact is None):
            raise ValueError("needs either a token, or account and contact")
        return self


class JourneyAction(_Input):
    """``dnc.journey-actions``: the journey engine's Add/Remove elements."""

    event_id: Text
    action: Literal["add", "remove"]
    accounts: list[Account] = Field(min_length=1, max_length=100)
    contact: str = Field(min_length=1, max_length=320)
    channel: str | None = None
    sender: str | None = Field(default=None, max_length=320)
    journey_id: str | None = Field(default=None, max_length=256)
    occurred_at: EventTime = None


class DeliveryReport(_Input):
    """``dnc.delivery-reports`` (contract addition): a channel sender's delivery report."""

    report_id: Text
    account: Account
    channel: str
    sender: str | None = Field(default=None, max_length=320)
    destination: str = Field(min_length=1, max_length=320)
    provider: str = Field(min_length=1, max_length=64)
    error_code: str | int | None = None
    occurred_at: EventTime = None


class OutboundMessage(BaseModel):
    """``messages.outbound``: a message on its way to a channel sender. Other fields are
    passed through untouched."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    message_id: Text
    account: Account
    channel: str
    sender: str = Field(min_length=1, max_length=320)
    destination: str = Field(min_length=1, max_length=320)


class EntryModel(BaseModel):
    """An entry of the list: the value of ``dnc.changes`` records, and ``entry`` in blocked
    messages (which leave ``origin`` out)."""

    account: str
    contact: str
    channel: Channel | None = Field(description="null = all channels")
    sender: str | None = Field(description="null = all senders")
    source: Source
    added_at: Timestamp
    origin: dict[str, Any] | None = Field(
        default=None, description="what created the entry: {kind, ...ids}"
    )
    expires_at: Timestamp | None = Field(default=None, description="contract addition")


class ChangeKey(BaseModel):
    """The key of ``dnc.changes`` records, serialised as the JSON array
    ``[account, contact, channel or null, sender or null]``."""

    account: str
    contact: str
    channel: Channel | None
    sender: str | None


class BlockedMessage(BaseModel):
    """``messages.outbound.blocked``."""

    message: dict[str, Any] = Field(description="the original message object, byte for byte")
    reason: Literal["DO_NOT_CONTACT"]
    entry: EntryModel
    checked_at: Timestamp


class DeadLetter(BaseModel):
    """``dnc.dead-letter``: an input record that could not be processed."""

    topic: str
    partition: int
    offset: int
    error: str
    value: str | None
    value_encoding: Literal["utf-8", "base64"] | None = None
    key: str | None = None
    key_encoding: Literal["utf-8", "base64"] | None = None
    value_omitted: str | None = Field(
        default=None, description="set instead of value when the original is too large to copy"
    )
    value_sha256: str | None = None


class ImportCompleted(BaseModel):
    """``dnc.notifications``: an import finished."""

    type: Literal["import.completed"]
    import_id: str
    accounts: list[str]
    added: int
    already_present: int
    rejected: int
    finished_at: Timestamp


class HistoryRecord(BaseModel):
    """``dnc.history`` (contract addition): one change of the list and what caused it.
    Key: ``[account, contact, channel, sender, "<partition>-<offset>-<op>"]`` (unique; the
    topic is compacted so that an erasure's tombstones delete records)."""

    action: Literal["add", "extend", "remove", "expire", "erase"]
    entry: EntryModel | ErasedEntry = Field(
        description="the entry as it was added, extended or removed; for an erasure only "
        "the account and the person's contact id"
    )
    at: Timestamp
    cause: dict[str, Any] | None = Field(
        description="what caused it: {kind: api|import|journey|inbound_message|"
        "inbound_intent|url_unsubscribe|channel_signal|expiry|erasure, …ids}"
    )


class ReviewScope(BaseModel):
    """What a confirmed review blocks: this sender or all senders, this channel or all."""

    model_config = ConfigDict(extra="forbid")

    senders: Literal["this", "all"] = "this"
    channels: Literal["this", "all"] = "this"


class ReviewItem(BaseModel):
    """``dnc.reviews`` (contract addition; compacted, key = ``review_id``): an inbound
    message that may be an opt-out in the person's own words, for a person to decide, and
    the decision. Ingest writes it ``open``; the API writes it again ``confirmed`` (with
    the scope, and the entry it created) or ``dismissed``, with who decided."""

    review_id: str = Field(description="stable per (account, message_id)")
    status: Literal["open", "confirmed", "dismissed"]
    account: str
    channel: Channel
    contact: str = Field(description="the person (a contact id in privacy mode)")
    sender: str | None = Field(description="the sender the message was sent to, normalised")
    message_id: str
    text: str = Field(description="the message, up to 160 characters")
    received_at: str | None = None
    verdict: Literal["opt_out", "possible_opt_out"]
    phrase: str | None = Field(None, description="the words that matched, normalised")
    rule: str | None = Field(None, description="the phrase list rule that matched")
    language: str | None = None
    policy: Literal["review", "auto"]
    created_at: Timestamp
    decided_at: Timestamp | None = None
    decided_by: str | None = Field(None, description="the API key that decided")
    request_id: str | None = None
    scope: ReviewScope | None = Field(None, description="of a confirmation")


class ErasedEntry(BaseModel):
    account: str
    contact: str = Field(description="the contact id (h<n>:…), never the contact")
    channel: None = None
    sender: None = None


CONTRACT_MODELS: dict[str, type[BaseModel]] = {
    "inbound-message": InboundMessage,
    "url-unsubscribe": UrlUnsubscribe,
    "journey-action": JourneyAction,
    "delivery-report": DeliveryReport,
    "outbound-message": OutboundMessage,
    "entry": EntryModel,
    "change-key": ChangeKey,
    "blocked-message": BlockedMessage,
    "dead-letter": DeadLetter,
    "import-completed": ImportCompleted,
    "history-record": HistoryRecord,
    "review": ReviewItem,
}


def parse_record(model: type[M], raw: bytes | None) -> M:
    """Parse a record value into ``model`` or raise a ``PoisonRecord`` naming the field."""
    if raw is None:
        raise NotJson("value: is empty (null record)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotJson(f"value: is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(data, dict):
        raise NotJson(f"value: must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_to_poison(exc) from None


def validation_to_poison(exc: ValidationError) -> PoisonRecord:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "value"
    if loc == "from_":
        loc = "from"
    ctx = err.get("ctx") or {}
    original = ctx.get("error")
    if isinstance(original, InvalidValue):
        return original
    if err["type"] == "missing":
        return MissingField(loc)
    reason = err["msg"]
    if reason.startswith("Value error, "):
        reason = reason[len("Value error, ") :]
    return InvalidValue(loc, err.get("input"), reason[:1].lower() + reason[1:])
