"""The web page: the Do Not Contact list at ``/``.

A server-rendered shell (``templates/index.html``, Jinja2 with autoescape) and a few
hand-written ES modules and a stylesheet (``static/``), served from the package so the
wheel carries them. The page talks to the JSON API with the key the user signs in with;
it holds no data of its own. Every page response carries a strict Content Security Policy
(scripts, styles and requests only from this origin; no inline script or style).
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Annotated

import jinja2
import markupsafe
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import HTMLResponse

from dnc.domain.channels import Channel
from dnc.domain.labels import ACTION_LABELS, CAUSE_LABELS, CHANNEL_LABELS, SOURCE_LABELS

router = APIRouter(include_in_schema=False)

_PACKAGE = "dnc.api"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The seed: WhatsApp cannot be chosen by hand (only by a journey, or "all channels").
BY_HAND = [c.value for c in Channel if c is not Channel.WHATSAPP]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def icon(name: str) -> markupsafe.Markup:
    """An icon of the sprite (``templates/icons.html``): decoration beside a button's words,
    so hidden from assistive technology."""
    return markupsafe.Markup(
        '<svg class="i" aria-hidden="true" focusable="false"><use href="#i-{}"/></svg>'
    ).format(name)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["icon"] = icon
    return env


@functools.cache
def render_page(max_file_bytes: int) -> str:
    template = _environment().get_template("index.html")
    return template.render(
        max_file_bytes=max_file_bytes,
        sources=SOURCE_LABELS,
        channels=CHANNEL_LABELS,
        by_hand=[(c, CHANNEL_LABELS[c]) for c in BY_HAND],
        labels={
            "sources": SOURCE_LABELS,
            "channels": CHANNEL_LABELS,
            "causes": CAUSE_LABELS,
            "actions": ACTION_LABELS,
        },
    )


@router.get("/", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    max_file_bytes = request.app.state.ctx.settings.api.import_max_bytes
    return HTMLResponse(render_page(max_file_bytes), headers=SECURITY_HEADERS)


def static_file(name: str) -> tuple[bytes, str] | None:
    """A file of ``static/`` by its plain name (no paths), with its content type."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in _TYPES or "/" in name or "\\" in name or name.startswith("."):
        return None
    found = resources.files(_PACKAGE).joinpath("static").joinpath(name)
    if not found.is_file():
        return None
    return found.read_bytes(), _TYPES[suffix]


@router.get("/favicon.ico")
async def favicon(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Browsers ask for it whatever the page links to: the same icon, not a 404."""
    return await static("favicon.svg", if_none_match)


@router.get("/static/{name}")
async def static(name: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    found = static_file(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    data, media_type = found
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {**SECURITY_HEADERS, "ETag": etag}
    if if_none_match == etag:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)
