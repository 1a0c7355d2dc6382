"""``/v1/history`` (every change of a person's entries, and its cause) and
``/v1/erasures`` (erase a person's data and history, keep the suppression)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dnc.api import erasures, writes
from dnc.api.auth import Principal
from dnc.api.contactforms import shown
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, principal
from dnc.api.view.history import HistoryItem
from dnc.domain.contactids import masked

router = APIRouter(prefix="/v1", tags=["history"])

Ctx = Annotated[ApiContext, Depends(api_context)]
Who = Annotated[Principal, Depends(principal)]


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: str = Field(description="phone number, e-mail address, or a contact id (h1:…)")
    accounts: list[str] | None = Field(
        None, min_length=1, max_length=100, description="omitted = every account of the key"
    )


def item(h: HistoryItem) -> dict[str, Any]:
    d = h.to_dict()
    d["entry"] = shown(d["entry"])
    return d


@router.get("/history", summary="Every change of a person's entries, newest first")
async def history(
    c: Ctx,
    who: Who,
    *,
    contact: Annotated[str, Query(description="phone, e-mail or contact id")],
    account: Annotated[
        list[str] | None, Query(description="repeat for several; omitted = all of the key's")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Adds, re-adds, expiry extensions, removals, expiries and erasures, each with its
    time and cause (API key and request, import, journey, inbound message and its text,
    unsubscribe campaign, channel signal). After an erasure only the erasure's record
    is left."""
    accounts = who.scope(account)
    value, _kind = c.contacts.parse(contact)
    page = await c.view.history(accounts, c.contacts.forms(value), limit=limit, cursor=cursor)
    token = c.contacts.ids.token(value)
    return {
        "contact": masked(value),
        "contact_id": token,
        "accounts": accounts,
        "history": [item(h) for h in page.items],
        "next_cursor": page.next_cursor,
    }


@router.post(
    "/erasures",
    status_code=status.HTTP_201_CREATED,
    summary="Erase a person's data and history; the suppression stays",
    responses={202: {"description": "accepted; not yet effective (see follow_up)"}},
)
async def erase(c: Ctx, who: Who, request: Request, body: EraseRequest) -> JSONResponse:
    """For each account (default: every account of the key): the person's entries stay
    on the list and keep blocking, but are kept under the contact's id (shown masked,
    without their origin); their history records are deleted, and one record says that
    an erasure happened, when, and on whose request."""
    accounts = who.scope(body.accounts)
    rid = writes.request_id(request)
    done = await erasures.erase(c, who, rid, body.contact, accounts)
    if not done.outcome.effective:
        return JSONResponse(
            done.outcome.pending(),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Location": writes.follow_up_url(done.outcome.positions)},
        )
    return JSONResponse(
        {
            "status": "effective",
            "request_id": rid,
            "contact": masked(done.stored),
            "contact_id": done.stored,
            "results": await erasures.results(c, done, accounts),
        },
        status_code=status.HTTP_201_CREATED,
    )
