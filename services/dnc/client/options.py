"""Options the commands share (API address and key, the list's filters), and the
listing's query parameters made from them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

Api = Annotated[str, typer.Option("--api", envvar="DNC_API_URL", help="API base URL")]
Key = Annotated[str | None, typer.Option("--key", envvar="DNC_API_KEY", help="API key")]
Accounts = Annotated[list[str] | None, typer.Option("--account", "-a", help="repeatable")]
Contacts = Annotated[list[str] | None, typer.Option("--contact", help="exact, or prefix*")]
Channels = Annotated[list[str] | None, typer.Option("--channel", help="SMS, EMAIL…, or ALL")]
Senders = Annotated[list[str] | None, typer.Option("--sender", help="a sender, or ALL")]
Sources = Annotated[list[str] | None, typer.Option("--source", help="IMPORT, MANUAL…")]
From = Annotated[str | None, typer.Option("--added-from", help="RFC 3339, inclusive")]
To = Annotated[str | None, typer.Option("--added-to", help="RFC 3339, exclusive")]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
ExpiresAt = Annotated[
    str | None, typer.Option(help="RFC 3339: the entry stops blocking then (default never)")
]
TtlDays = Annotated[float | None, typer.Option(help="the entry expires after this many days")]
DEFAULT_API = "http://127.0.0.1:8080"
POLL_S = 0.5  # how often a long-running request (an import) is asked how it is doing


FILTERS = ("account", "contact", "channel", "sender", "source", "added_from", "added_to")


def filter_params(given: dict[str, Any]) -> list[tuple[str, str]]:
    """The listing's query parameters from a command's arguments (``locals()``)."""
    params: list[tuple[str, str]] = []
    for name in FILTERS:
        value = given.get(name)
        params += [(name, v) for v in value] if isinstance(value, list) else []
        params += [(name, value)] if isinstance(value, str) else []
    return params
