"""``/v1/entries``: list, add, remove (by key or by filter), and write follow-ups.

Every write answers once it is effective at the gate (``dnc.api.writes``), or 202 with a
follow-up URL when ``api.effective_timeout_s`` passes first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dnc.api import writes
from dnc.api.auth import Principal
from dnc.api.commands import parse_positions
from dnc.api.contactforms import shown
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, entry_query, principal
from dnc.api.view.query import EntryQuery
from dnc.domain.timestamps import now_ms
from dnc.errors import InvalidValue
from dnc.files.imports import MAX_TTL_DAYS, resolve_expiry

router = APIRouter(prefix="/v1", tags=["entries"])

Ctx = Annotated[ApiContext, Depends(api_context)]
Who = Annotated[Principal, Depends(principal)]
Filter = Annotated[EntryQuery, Depends(entry_query)]

MAX_KEYS = 10_000


class AddEntries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: str = Field(description="phone number (international format) or e-mail address")
    channel: str | None = Field(None, description="null or omitted = all channels")
    sender: str | None = Field(None, description="null or omitted = all senders")
    accounts: list[str] = Field(min_length=1, max_length=100, description="one entry each")
    expires_at: str | None = Field(
        None,
        max_length=40,
        description="RFC 3339, in the future: the entry stops blocking then and leaves the "
        "list (omitted = never; not with ttl_days)",
    )
    ttl_days: float | None = Field(
        None, gt=0, le=MAX_TTL_DAYS, description="expire this many days from now"
    )


class EntryKeyIn(BaseModel):
    """An entry's key. Other fields (as listed: source, added_at…) are ignored, so listed
    entries can be sent back as they are (an entry kept under a contact id is listed with
    a masked ``contact`` and the full id in ``contact_id``, which is then used)."""

    model_config = ConfigDict(extra="ignore")

    account: str
    contact: str
    channel: str | None = None
    sender: str | None = None
    contact_id: str | None = Field(
        None, description="as listed for an entry kept under a contact id: used instead of contact"
    )

    @property
    def stored(self) -> str:
        return self.contact_id or self.contact


class RemoveMatching(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(False, description="only count what the filters match")
    expected_count: int | None = Field(
        None, ge=0, description="required unless dry_run: the count the caller saw"
    )


def _written(body: dict[str, Any], code: int = status.HTTP_200_OK) -> JSONResponse:
    return JSONResponse(body, status_code=code)


def _pending(outcome: writes.Outcome) -> JSONResponse:
    return JSONResponse(
        outcome.pending(),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": writes.follow_up_url(outcome.positions)},
    )


@router.get("/entries", summary="List entries, newest first (or sorted)")
async def list_entries(
    c: Ctx,
    q: Filter,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    sort: Annotated[
        str,
        Query(
            description="contract addition: added, contact, sender or source; a leading - "
            "for descending; -added (newest first) by default"
        ),
    ] = "-added",
) -> dict[str, Any]:
    page = await c.view.query(q, limit=limit, cursor=cursor, sort=sort)
    return {
        "entries": [shown(e.to_dict()) for e in page.entries],
        "total": page.total,
        "total_is_lower_bound": page.total_is_lower_bound,
        "next_cursor": page.next_cursor,
        "limit": limit,
    }


@router.post(
    "/entries",
    status_code=status.HTTP_201_CREATED,
    summary="Add a contact to the list in one or more accounts",
    responses={202: {"description": "accepted; not yet effective (see follow_up)"}},
)
async def add_entries(c: Ctx, who: Who, request: Request, body: AddEntries) -> JSONResponse:
    accounts = list(dict.fromkeys(body.accounts))
    who.authorize(accounts)
    keys = [
        writes.manual_key(a, body.contact, body.channel, body.sender, adding=True, forms=c.contacts)
        for a in accounts
    ]
    now = now_ms()
    expires = resolve_expiry(body.expires_at, body.ttl_days, now)
    rid = writes.request_id(request)
    commands = writes.add_commands(keys, who, rid, now, expires, sender=body.sender)
    outcome = await writes.apply(c, commands, rid)
    if not outcome.effective:
        return _pending(outcome)
    results = await writes.add_results(c, keys, outcome)
    body_out = {"status": "effective", "request_id": rid, "results": results}
    return _written(body_out, status.HTTP_201_CREATED)


@router.delete("/entries", summary="Remove entries by key (one or many)")
async def remove_entries(
    c: Ctx,
    who: Who,
    request: Request,
    keys: Annotated[list[EntryKeyIn], Body(min_length=1, max_length=MAX_KEYS)],
) -> JSONResponse:
    who.authorize(dict.fromkeys(k.account for k in keys))
    parsed = [
        writes.manual_key(k.account, k.stored, k.channel, k.sender, adding=False, forms=c.contacts)
        for k in keys
    ]
    rid = writes.request_id(request)
    outcome = await writes.apply(c, writes.remove_commands(parsed, who, rid, now_ms()), rid)
    if not outcome.effective:
        return _pending(outcome)
    counts = await writes.remove_counts(c, rid)
    return _written({"status": "effective", "request_id": rid, "requested": len(keys), **counts})


@router.post(
    "/entries/remove-matching",
    summary="Remove everything the filters match (dry run first)",
    responses={409: {"description": "expected_count differs from the current count"}},
)
async def remove_matching(
    c: Ctx, who: Who, request: Request, q: Filter, body: RemoveMatching
) -> JSONResponse:
    if body.dry_run:
        return _written({"dry_run": True, "count": await c.view.count(q)})
    if body.expected_count is None:
        raise InvalidValue("expected_count", None, "is required unless dry_run is true")
    keys = await c.view.keys(q)
    if len(keys) != body.expected_count:
        return _written(
            {
                "error": "the filters now match a different number of entries than expected; "
                "count again (dry_run) and confirm that count",
                "count": len(keys),
                "expected_count": body.expected_count,
            },
            status.HTTP_409_CONFLICT,
        )
    rid = writes.request_id(request)
    outcome = await writes.apply(c, writes.remove_commands(keys, who, rid, now_ms()), rid)
    if not outcome.effective:
        return _pending(outcome)
    counts = await writes.remove_counts(c, rid)
    return _written({"status": "effective", "request_id": rid, "matched": len(keys), **counts})


@router.get("/writes/{positions}", summary="Whether an accepted write is effective yet")
async def write_status(c: Ctx, who: Who, positions: str) -> dict[str, Any]:
    try:
        parsed = parse_positions("" if positions == "-" else positions)
    except ValueError:
        raise InvalidValue("positions", positions, "is not a follow-up from this API") from None
    effective = await c.writer.processed(parsed)
    return {"status": "effective" if effective else "pending", "positions": positions}
