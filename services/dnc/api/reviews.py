"""Deciding reviews (contract addition): confirming one adds the opt-out it asked for,
with the scope the reviewer chose; dismissing one adds nothing. Either way the review's
record in ``dnc.reviews`` is written again with the decision, when and by which key; a
confirmation's entry carries the same in its history cause (kind ``review``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.writes import Outcome, apply
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.events import ReviewItem, ReviewScope
from dnc.domain.reviews import review_partition
from dnc.domain.timestamps import format_ms, now_ms
from dnc.errors import InvalidValue


class ReviewNotFound(LookupError):
    """No such review among the key's accounts (a review of another account is not
    revealed either)."""


class AlreadyDecided(Exception):
    def __init__(self, item: ReviewItem) -> None:
        super().__init__(f"review {item.review_id} is already {item.status}")
        self.item = item


@dataclass(slots=True)
class Decision:
    review: ReviewItem
    outcome: Outcome | None  # of the confirmation's entry; None for a dismissal
    key: EntryKey | None


def find(ctx: ApiContext, who: Principal, review_id: str) -> ReviewItem:
    item = ctx.reviews.get(review_id)
    if item is None or item.account not in who.accounts:
        raise ReviewNotFound(review_id)
    return item


def scoped_key(item: ReviewItem, scope: ReviewScope) -> EntryKey:
    return EntryKey(
        item.account,
        item.contact,
        item.channel.value if scope.channels == "this" else None,
        item.sender if scope.senders == "this" else None,
    )


def cause(item: ReviewItem, who: Principal, rid: str, scope: ReviewScope) -> dict[str, Any]:
    return {
        "kind": "review",
        "review_id": item.review_id,
        "decision": "confirmed",
        "key": who.name,
        "request_id": rid,
        "message_id": item.message_id,
        "text": item.text,
        "verdict": item.verdict,
        "phrase": item.phrase,
        "language": item.language,
        "scope": scope.model_dump(),
    }


async def confirm(
    ctx: ApiContext, who: Principal, rid: str, review_id: str, scope: ReviewScope
) -> Decision:
    item = _open(ctx, who, review_id)
    key = scoped_key(item, scope)
    at = now_ms()
    command = Command(
        [Op("add", key, Source.END_USER_MESSAGE)], at, cause(item, who, rid, scope), rid
    )
    outcome = await apply(ctx, [command], rid)
    decided = await _record(ctx, item, "confirmed", who=who, rid=rid, at=at, scope=scope)
    return Decision(decided, outcome, key)


async def dismiss(ctx: ApiContext, who: Principal, rid: str, review_id: str) -> Decision:
    item = _open(ctx, who, review_id)
    decided = await _record(ctx, item, "dismissed", who=who, rid=rid, at=now_ms(), scope=None)
    return Decision(decided, None, None)


def _open(ctx: ApiContext, who: Principal, review_id: str) -> ReviewItem:
    item = find(ctx, who, review_id)
    if item.status != "open":
        raise AlreadyDecided(item)
    return item


async def _record(
    ctx: ApiContext,
    item: ReviewItem,
    status: Literal["confirmed", "dismissed"],
    *,
    who: Principal,
    rid: str,
    at: int,
    scope: ReviewScope | None,
) -> ReviewItem:
    decided = item.model_copy(
        update={
            "status": status,
            "decided_at": format_ms(at),
            "decided_by": who.name,
            "request_id": rid,
            "scope": scope,
        }
    )
    board = ctx.reviews
    if not board.partitions:
        raise InvalidValue("review", item.review_id, "cannot be decided: dnc.reviews is not read")
    await ctx.writer.send(
        board.topic,
        item.review_id.encode(),
        decided.model_dump_json().encode(),
        review_partition(item.review_id, board.partitions),
    )
    # This instance shows the decision before it answers (others follow within moments).
    await board.wait_until(
        lambda: (got := board.get(item.review_id)) is not None and got.status == status,
        ctx.settings.api.effective_timeout_s,
    )
    return decided
