"""FastAPI dependencies of the routes: the API context, the caller's key, list filters.

Dependencies are async on purpose: FastAPI runs a sync dependency on a thread pool,
which costs more than the whole check endpoint.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from dnc.api.auth import Principal, principal_from
from dnc.api.context import ApiContext
from dnc.api.view.query import EntryQuery, build_query


def ctx(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.ctx
    return context


async def api_context(request: Request) -> ApiContext:
    """``ctx`` as a dependency."""
    return ctx(request)


async def principal(request: Request) -> Principal:
    return principal_from(request, ctx(request).keys)


async def entry_query(
    who: Annotated[Principal, Depends(principal)],
    c: Annotated[ApiContext, Depends(api_context)],
    *,
    account: Annotated[
        list[str] | None, Query(description="account id; repeat for several")
    ] = None,
    contact: Annotated[
        list[str] | None, Query(description="exact contact, or a prefix ending in *")
    ] = None,
    channel: Annotated[list[str] | None, Query(description="SMS, EMAIL, …, or ALL")] = None,
    sender: Annotated[list[str] | None, Query(description="a sender, or ALL")] = None,
    source: Annotated[list[str] | None, Query(description="END_USER_MESSAGE, MANUAL, …")] = None,
    added_from: Annotated[str | None, Query(description="RFC 3339, inclusive")] = None,
    added_to: Annotated[str | None, Query(description="RFC 3339, exclusive")] = None,
) -> EntryQuery:
    """FastAPI dependency: the query string as an ``EntryQuery``."""
    return build_query(
        who, account, contact, channel, sender, source, added_from, added_to, forms=c.contacts
    )
