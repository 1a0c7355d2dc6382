"""``/v1/overview`` (contract addition): the list at a glance, for the page's panel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, principal

router = APIRouter(prefix="/v1", tags=["overview"])


@router.get("/overview", summary="Totals by source and channel; changes per day")
async def overview(
    c: Annotated[ApiContext, Depends(api_context)],
    who: Annotated[Principal, Depends(principal)],
    account: Annotated[
        list[str] | None, Query(description="account id; repeat for several; all by default")
    ] = None,
    days: Annotated[int, Query(ge=1, le=366, description="UTC days, today included")] = 90,
) -> dict[str, Any]:
    """Entries by source and by channel (``ALL`` = all channels), and entries added and
    removed (or expired) per UTC day, oldest first, from the history."""
    return await c.view.overview(who.scope(account), days)
