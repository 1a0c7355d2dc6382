"""``/v1/reviews`` (contract addition): inbound messages that may be opt-outs in the
person's own words, for a person to confirm (which adds the opt-out) or dismiss."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from dnc.api import reviews, writes
from dnc.api.auth import Principal
from dnc.api.contactforms import shown
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, principal
from dnc.domain.events import ReviewItem, ReviewScope

router = APIRouter(prefix="/v1", tags=["reviews"])

Ctx = Annotated[ApiContext, Depends(api_context)]
Who = Annotated[Principal, Depends(principal)]


class ConfirmRequest(BaseModel):
    """What the opt-out blocks: ``senders`` this (the sender the message went to) or all
    (omitted: the account's STOP scope, ``DNC_KEYWORDS__STOP_SCOPE``); ``channels`` this
    (the message's channel, the default) or all."""

    model_config = ConfigDict(extra="forbid")

    senders: Literal["this", "all"] | None = None
    channels: Literal["this", "all"] = "this"


class DismissRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


def shown_review(item: ReviewItem) -> dict[str, Any]:
    return shown(item.model_dump(mode="json"))


@router.get("/reviews", summary="Inbound messages that may be opt-outs, oldest first")
async def list_reviews(
    c: Ctx,
    who: Who,
    *,
    account: Annotated[
        list[str] | None, Query(description="repeat for several; omitted = all of the key's")
    ] = None,
    status_: Annotated[
        Literal["open", "confirmed", "dismissed", "all"], Query(alias="status")
    ] = "open",
    verdict: Literal["opt_out", "possible_opt_out"] | None = None,
    channel: Annotated[str | None, Query(description="e.g. SMS")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The review queue: each item is a message, the verdict of the intent matcher, the
    words that matched and, once decided, who decided what. ``oldest_open_age_s`` is the
    age of the oldest unreviewed item of these accounts (the FCC gives ten business days
    to honour an opt-out)."""
    accounts = who.scope(account)
    items = c.reviews.select(
        accounts,
        status=None if status_ == "all" else status_,
        verdict=verdict,
        channel=channel.upper() if channel else None,
    )
    oldest = c.reviews.oldest_open_age_s(accounts)
    return {
        "accounts": accounts,
        "count": len(items),
        "open": len(c.reviews.select(accounts)),
        "oldest_open_age_s": None if oldest is None else round(oldest, 1),
        "reviews": [shown_review(i) for i in items[:limit]],
    }


def _found(c: ApiContext, who: Principal, review_id: str) -> None:
    try:
        reviews.find(c, who, review_id)
    except reviews.ReviewNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no review {review_id!r}") from None


def _default_senders(c: ApiContext, who: Principal, review_id: str) -> Literal["this", "all"]:
    account = reviews.find(c, who, review_id).account
    return "all" if c.settings.keywords.stop_scope_for(account) == "all_senders" else "this"


def _decided(exc: reviews.AlreadyDecided) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT,
        f"review {exc.item.review_id} is already {exc.item.status} "
        f"(by {exc.item.decided_by} at {exc.item.decided_at})",
    )


@router.post(
    "/reviews/{review_id}/confirm",
    summary="Confirm a review: add the opt-out, for this or all senders and channels",
    responses={202: {"description": "accepted; not yet effective (see follow_up)"}},
)
async def confirm(
    c: Ctx, who: Who, request: Request, review_id: str, body: ConfirmRequest | None = None
) -> JSONResponse:
    _found(c, who, review_id)
    rid = writes.request_id(request)
    asked = body or ConfirmRequest()
    senders = asked.senders or _default_senders(c, who, review_id)
    scope = ReviewScope(senders=senders, channels=asked.channels)
    try:
        done = await reviews.confirm(c, who, rid, review_id, scope)
    except reviews.AlreadyDecided as exc:
        raise _decided(exc) from None
    assert done.outcome is not None
    assert done.key is not None
    body_out = {
        "status": "effective" if done.outcome.effective else "pending",
        "request_id": rid,
        "review": shown_review(done.review),
        "entry": shown(done.key._asdict()),
    }
    if not done.outcome.effective:
        body_out["follow_up"] = writes.follow_up_url(done.outcome.positions)
        return JSONResponse(body_out, status_code=status.HTTP_202_ACCEPTED)
    return JSONResponse(body_out)


@router.post("/reviews/{review_id}/dismiss", summary="Dismiss a review: not an opt-out")
async def dismiss(
    c: Ctx, who: Who, request: Request, review_id: str, body: DismissRequest | None = None
) -> dict[str, Any]:
    _found(c, who, review_id)
    rid = writes.request_id(request)
    try:
        done = await reviews.dismiss(c, who, rid, review_id)
    except reviews.AlreadyDecided as exc:
        raise _decided(exc) from None
    return {"status": "dismissed", "request_id": rid, "review": shown_review(done.review)}
