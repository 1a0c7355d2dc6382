"""``/v1/check``: is a contact blocked, and why. Reads the Redis index, the data the gate
uses, in one round trip (the lookup script returns the index meta with the entries, so an
index that is being rebuilt answers 503 rather than a wrong "not blocked").

A channel or sender left out matches any: ``blocked`` then says whether some message to
the contact would be blocked, and each entry's ``blocks`` whether it applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, principal
from dnc.domain.channels import parse_channel
from dnc.domain.contacts import normalise_sender
from dnc.domain.entries import Entry
from dnc.domain.timestamps import now_ms
from dnc.errors import IndexNotReady, InvalidValue
from dnc.index import Index
from dnc.index.layout import unpack_entries

router = APIRouter(prefix="/v1", tags=["check"])

Ctx = Annotated[ApiContext, Depends(api_context)]
Who = Annotated[Principal, Depends(principal)]

MAX_BATCH = 10_000
LOOKUP_CHUNK = 1000


class CheckBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str
    channel: str | None = Field(None, description="the message's channel; omitted = any")
    sender: str | None = Field(None, description="the message's sender; omitted = any")
    contacts: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


@router.get("/check", summary="Is this contact blocked, and by which entries")
async def check(
    c: Ctx,
    who: Who,
    *,
    account: Annotated[str, Query()],
    contact: Annotated[str, Query()],
    channel: Annotated[str | None, Query(description="omitted = any channel")] = None,
    sender: Annotated[str | None, Query(description="omitted = any sender")] = None,
) -> Response:
    who.authorize((account,))
    canonical = c.contacts.parse(contact)[0]  # a contact id (h1:…) is looked up as it is
    ch, se = _dimensions(channel, sender)
    (entries,) = await lookup(c.index, account, [canonical])
    return _json(
        {"account": account, "channel": ch, "sender": se, **verdict(canonical, entries, ch, se)}
    )


@router.post("/check", summary="Check many contacts of one account at once")
async def check_batch(c: Ctx, who: Who, body: CheckBatch) -> Response:
    who.authorize((body.account,))
    ch, se = _dimensions(body.channel, body.sender)
    canonical: list[str | None] = []
    errors: dict[int, dict[str, Any]] = {}
    for i, raw in enumerate(body.contacts):
        try:
            canonical.append(c.contacts.parse(raw)[0])
        except InvalidValue as exc:
            canonical.append(None)
            errors[i] = {"error": str(exc), "field": exc.field, "reason": exc.reason}
    valid = [x for x in canonical if x is not None]
    found = iter(await lookup(c.index, body.account, valid))
    results: list[dict[str, Any]] = []
    blocked = 0
    for i, (raw, contact) in enumerate(zip(body.contacts, canonical, strict=True)):
        if contact is None:
            results.append({"input": raw, **errors[i]})
            continue
        result = verdict(contact, next(found), ch, se)
        blocked += result["blocked"]
        results.append({"input": raw, **result})
    counts = {
        "checked": len(results),
        "blocked": blocked,
        "not_blocked": len(valid) - blocked,
        "invalid": len(errors),
    }
    return _json(
        {"account": body.account, "channel": ch, "sender": se, "counts": counts, "results": results}
    )


def _json(body: dict[str, Any]) -> Response:
    # orjson straight to bytes: the single check is on a latency budget.
    return Response(orjson.dumps(body), media_type="application/json")


def _dimensions(channel: str | None, sender: str | None) -> tuple[str | None, str | None]:
    parsed = parse_channel(channel)
    return (parsed.value if parsed else None), normalise_sender(sender)


async def lookup(index: Index, account: str, contacts: Sequence[str]) -> list[list[Entry]]:
    """The entries of each contact, from the index; 503 while the index is incomplete."""
    out: list[list[Entry]] = []
    for start in range(0, len(contacts), LOOKUP_CHUNK):
        chunk = contacts[start : start + LOOKUP_CHUNK]
        located = [index.locate(account, contact) for contact in chunk]
        meta, values = await index.load([(bucket, f) for bucket, _member, f in located])
        if not meta.complete():
            raise IndexNotReady("the index is being built; try again shortly")
        out += [
            unpack_entries(account, contact, raw) if raw else []
            for contact, raw in zip(chunk, values, strict=True)
        ]
    return out


def verdict(
    contact: str, entries: list[Entry], channel: str | None, sender: str | None
) -> dict[str, Any]:
    now = now_ms()
    shown = []
    first: dict[str, Any] | None = None
    for e in sorted(entries, key=Entry.sort_key):  # most specific first
        d = e.to_dict(origin=False)
        d["blocks"] = e.blocks_any(channel, sender, now)
        if d["blocks"] and first is None:
            first = e.to_dict(origin=False)
        shown.append(d)
    return {"contact": contact, "blocked": first is not None, "entry": first, "entries": shown}
