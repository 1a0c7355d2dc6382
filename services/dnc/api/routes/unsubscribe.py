"""Unsubscribe links: create signed links (API key), and the end user's page and RFC 8058
one-click endpoint (no key: the signed token is the authority).

A ``GET`` only shows what will be unsubscribed: mail scanners fetch links, and a fetch
must not unsubscribe anyone. A ``POST`` (the page's button, or a mail client's
``List-Unsubscribe=One-Click``) produces a ``dnc.url-unsubscribes`` event carrying the
token, which ingest verifies again. Its ``event_id`` is derived from the token, and adding
an existing entry changes nothing (rule 1), so a repeated POST is harmless.
"""

from __future__ import annotations

import hashlib
import html
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.deps import api_context, principal
from dnc.domain.channels import check_channel_for_contact, parse_channel
from dnc.domain.contacts import normalise_contact, normalise_sender
from dnc.domain.timestamps import format_ms, now_ms
from dnc.domain.unsubscribe import UnsubscribeClaims
from dnc.errors import InvalidValue
from dnc.logs import mask

router = APIRouter(tags=["unsubscribe"])

Ctx = Annotated[ApiContext, Depends(api_context)]
Who = Annotated[Principal, Depends(principal)]

DAY_MS = 24 * 3600 * 1000
ONE_CLICK = "List-Unsubscribe=One-Click"


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str
    contact: str
    channel: str | None = Field(None, description="null = all channels")
    sender: str | None = Field(None, description="null = all senders")
    campaign_id: str | None = Field(None, max_length=256)


@router.post("/v1/unsubscribe-links", summary="Create a signed unsubscribe link")
async def create_link(c: Ctx, who: Who, body: LinkRequest) -> Any:
    who.authorize((body.account,))
    if not c.signer.enabled:
        return JSONResponse(
            {
                "error": "unsubscribe links are not configured: set DNC_API__UNSUBSCRIBE_KEYS "
                "(one or more secrets of at least 32 bytes, newest first)"
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    contact, kind = normalise_contact(body.contact)
    channel = parse_channel(body.channel)
    check_channel_for_contact(kind, channel, by_hand=False)
    expires = now_ms() + c.settings.api.unsubscribe_ttl_days * DAY_MS
    claims = UnsubscribeClaims(
        account=body.account,
        contact=contact,
        channel=channel.value if channel else None,
        sender=normalise_sender(body.sender),
        campaign_id=body.campaign_id,
        expires_at_ms=expires,
    )
    token = c.signer.sign(claims)
    url = f"{c.settings.api.public_base_url.rstrip('/')}/u/{token}"
    return {
        "url": url,
        "token": token,
        "expires_at": format_ms(expires),
        "list_unsubscribe": f"<{url}>",
        "list_unsubscribe_post": ONE_CLICK,
    }


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm_page(c: Ctx, token: str) -> HTMLResponse:
    try:
        claims = c.signer.verify(token)
    except InvalidValue as exc:
        return _refused(exc)
    what = html.escape(_describe(claims))
    return _page(
        "Unsubscribe",
        f"<p>Stop {what} to <strong>{html.escape(mask(claims.contact))}</strong>?</p>"
        f'<form method="post" action=""><input type="hidden" name="List-Unsubscribe" '
        f'value="One-Click"><button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", include_in_schema=False)
async def one_click(c: Ctx, request: Request, token: str) -> Response:
    """RFC 8058 one-click, and the page's button. The body is not needed: the token says
    everything, and RFC 8058 senders may use either form encoding."""
    try:
        claims = c.signer.verify(token)
    except InvalidValue as exc:
        if _wants_html(request):
            return _refused(exc)
        return JSONResponse({"error": str(exc), "reason": exc.reason}, status_code=400)
    event = {
        "event_id": "u-" + hashlib.sha256(token.encode()).hexdigest()[:32],
        "token": token,
        "occurred_at": format_ms(now_ms()),
    }
    key = c.index.field(claims.account, claims.contact)
    await c.writer.send(c.settings.topics.url_unsubscribes, key, orjson.dumps(event))
    if _wants_html(request):
        return _page("Unsubscribed", f"<p>Done: no more {html.escape(_describe(claims))}.</p>")
    return JSONResponse({"status": "recorded", "event_id": event["event_id"]})


def _describe(claims: UnsubscribeClaims) -> str:
    channel = f"{claims.channel} messages" if claims.channel else "messages on any channel"
    sender = f"from {claims.sender}" if claims.sender else "from any sender"
    return f"{channel} {sender}"


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _refused(exc: InvalidValue) -> HTMLResponse:
    # The reason, not the token: the page may be shown to someone other than its owner.
    reason = html.escape(exc.reason)
    return _page("Link not valid", f"<p>This unsubscribe link {reason}.</p>", status_code=400)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>",
        status_code=status_code,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
