"""The Do Not Contact list from the shell (dnc entries), as a client of the HTTP API.

The API is found at --api / DNC_API_URL (default http://127.0.0.1:8080) and called with
the key in --key / DNC_API_KEY.

Exit codes: 0 ok; 1 error (API unreachable, key refused, forbidden account, failed
import…); 2 usage or invalid input (also a value the API refused as invalid);
3 not found — for `check`: the contact is NOT blocked (0 means blocked, like grep).
Errors go to stderr; results to stdout.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table


def _unwrap(doc: str | None) -> str:
    """A docstring as help text: the terminal wraps paragraphs, the source's line breaks
    would only break them up."""
    return re.sub(r"(?<!\n)\n(?!\n)", " ", inspect.cleandoc(doc or ""))


entries_app = typer.Typer(no_args_is_help=True, help=_unwrap(__doc__), add_completion=False)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

OK, ERROR, USAGE, NOT_FOUND = 0, 1, 2, 3
POLL_S = 0.5

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


def fail(message: str, code: int = ERROR) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


class Client:
    """httpx with the API's error answers turned into messages and exit codes."""

    def __init__(self, api: str, key: str | None) -> None:
        if not key:
            fail("an API key is required: --key or DNC_API_KEY", USAGE)
        self.api = api.rstrip("/")
        self.http = httpx.Client(
            base_url=self.api, headers={"Authorization": f"Bearer {key}"}, timeout=300
        )

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw: Any) -> Any:
        with self._errors():
            r = self.http.request(method, path, **kw)
        self.check(r, ok)
        return r.json()

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        with self._errors(), self.http.stream(method, path, **kw) as r:
            if r.status_code != 200:
                r.read()
                self.check(r, (200,))
            yield r

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            fail(f"cannot reach the API at {self.api} ({exc or type(exc).__name__})")

    def check(self, r: httpx.Response, ok: tuple[int, ...]) -> None:
        if r.status_code not in ok:
            text, code = _ANSWERS.get(r.status_code, (f"the API answered {r.status_code}: {{}}", 1))
            fail(text.format(_message(r)), code)


_ANSWERS = {
    401: ("the API key was refused: {} (set --key or DNC_API_KEY)", ERROR),
    403: ("forbidden: {}", ERROR),
    404: ("{}", NOT_FOUND),
    413: ("too large: {}", ERROR),
    422: ("invalid input: {}", USAGE),
}


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:500] or r.reason_phrase
    if isinstance(body, dict):
        detail = body.get("error") or body.get("detail")
        if isinstance(detail, list):  # request validation: field paths and messages
            return "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
            )
        if detail:
            return str(detail)
    return str(body)[:500]


FILTERS = ("account", "contact", "channel", "sender", "source", "added_from", "added_to")


def _filters(given: dict[str, Any]) -> list[tuple[str, str]]:
    """The listing's query parameters from a command's arguments (``locals()``)."""
    params: list[tuple[str, str]] = []
    for name in FILTERS:
        value = given.get(name)
        params += [(name, v) for v in value] if isinstance(value, list) else []
        params += [(name, value)] if isinstance(value, str) else []
    return params


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _show(entries: list[dict[str, Any]]) -> None:
    """A table on a terminal; tab-separated lines (header first) for pipes and files,
    where a table's truncated cells would lose data."""
    header = ("Contact", "Sender", "Source", "Channel", "Account", "Added", "Expires")
    rows = [
        (
            e["contact"],
            e["sender"] or "All senders",
            e["source"],
            e["channel"] or "All channels",
            e["account"],
            e["added_at"],
            e.get("expires_at") or "never",
        )
        for e in entries
    ]
    show_table(header, rows)


def show_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if not out.is_terminal:
        sys.stdout.write("".join("\t".join(r) + "\n" for r in [header, *rows]))
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    out.print(table)


@entries_app.command("list")
def list_entries(
    *,
    account: Accounts = None,
    contact: Contacts = None,
    channel: Channels = None,
    sender: Senders = None,
    source: Sources = None,
    added_from: From = None,
    added_to: To = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="entries per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="every page")] = False,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """List entries, newest first. Filters repeat: OR within one, AND across them."""
    client = Client(api, key)
    params = _filters(locals())
    entries: list[dict[str, Any]] = []
    while True:
        page_params = [*params, ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        page = client.call("GET", "/v1/entries", params=page_params)
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not all_pages or not cursor:
            break
    if json:
        _print_json(entries if all_pages else page)
        return
    _show(entries)
    more = f"; next page: --cursor {cursor}" if cursor else ""
    err.print(f"{len(entries)} of {page['total']} entries{more}", markup=False)


@entries_app.command()
def add(
    contact: Annotated[str, typer.Argument(help="phone (international format) or e-mail")],
    *,
    account: Annotated[list[str], typer.Option("--account", "-a", help="repeatable")],
    channel: Annotated[str | None, typer.Option(help="default: all channels")] = None,
    sender: Annotated[str | None, typer.Option(help="default: all senders")] = None,
    expires_at: ExpiresAt = None,
    ttl_days: TtlDays = None,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Add a contact to the list, in one or more accounts (for good, or until
    --expires-at / for --ttl-days)."""
    body = {
        "contact": contact,
        "channel": channel,
        "sender": sender,
        "accounts": account,
        "expires_at": expires_at,
        "ttl_days": ttl_days,
    }
    result = Client(api, key).call("POST", "/v1/entries", ok=(201, 202), json=body)
    if json:
        _print_json(result)
    elif result.get("status") == "pending":
        err.print(f"accepted, not yet effective; follow up at {result['follow_up']}")
    else:
        for r in result["results"]:
            e = r["entry"] or {}
            out.print(f"{r['account']}: {r['outcome'].replace('_', ' ')} {e.get('contact', '')}")


@entries_app.command()
def remove(
    contacts: Annotated[list[str] | None, typer.Argument(help="contacts to remove")] = None,
    *,
    account: Accounts = None,
    channel: Channels = None,
    sender: Senders = None,
    matching: Annotated[bool, typer.Option(help="remove everything the filters match")] = False,
    contact: Contacts = None,
    source: Sources = None,
    added_from: From = None,
    added_to: To = None,
    dry_run: Annotated[bool, typer.Option(help="with --matching: only count")] = False,
    yes: Yes = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Remove entries: CONTACTS in each --account (the entry for --channel / --sender,
    default all channels / all senders), or with --matching everything the filters match
    (counted first, then confirmed)."""
    client = Client(api, key)
    if matching:
        if contacts:
            fail("give either CONTACTS or --matching with filters, not both", USAGE)
        params = _filters(locals())
        if not params:
            fail("--matching needs at least one filter", USAGE)
        count = client.call(
            "POST", "/v1/entries/remove-matching", params=params, json={"dry_run": True}
        )["count"]
        out.print(f"{count} entries match")
        if dry_run or count == 0:
            return
        if not yes:
            _confirm(f"remove these {count} entries?")
        result = client.call(
            "POST",
            "/v1/entries/remove-matching",
            ok=(200, 202),
            params=params,
            json={"expected_count": count},
        )
    else:
        if not contacts or not account:
            fail("give CONTACTS and --account (or --matching with filters)", USAGE)
        keys = [
            {"account": a, "contact": c, "channel": ch, "sender": s}
            for a in account
            for c in contacts
            for ch in _or_all(channel)
            for s in _or_all(sender)
        ]
        result = client.call("DELETE", "/v1/entries", ok=(200, 202), json=keys)
    if result.get("status") == "pending":
        err.print(f"accepted, not yet effective; follow up at {result['follow_up']}")
    else:
        out.print(f"removed {result['removed']}, not on the list {result['absent']}")


def _or_all(values: list[str] | None) -> list[str | None]:
    """The values given, or [None]: the entry for all channels / all senders."""
    return list(values) if values else [None]


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        fail(f"{question} (not a terminal: pass --yes to confirm)")
    if not typer.confirm(question, default=False):
        raise typer.Exit(ERROR)


@entries_app.command()
def check(
    contact: str,
    *,
    account: Annotated[str, typer.Option("--account", "-a")],
    channel: Annotated[str | None, typer.Option(help="the message's channel (default any)")] = None,
    sender: Annotated[str | None, typer.Option(help="the message's sender (default any)")] = None,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Is CONTACT blocked, and by which entries. Exit 0 = blocked, 3 = not blocked."""
    params = {"account": account, "contact": contact, "channel": channel, "sender": sender}
    result = Client(api, key).call(
        "GET", "/v1/check", params={k: v for k, v in params.items() if v is not None}
    )
    if json:
        _print_json(result)
    else:
        verdict = "BLOCKED" if result["blocked"] else "not blocked"
        out.print(f"{result['contact']} in {account}: {verdict}")
        if result["entries"]:
            _show(result["entries"])
    raise typer.Exit(OK if result["blocked"] else NOT_FOUND)


# Register the commands of the other modules on entries_app (modules of their own for size).
from dnc.client import files as client_cli_files  # noqa: E402, F401
from dnc.client import people as client_cli_people  # noqa: E402, F401

for _command in entries_app.registered_commands:
    _command.help = _unwrap(_command.callback.__doc__ if _command.callback else None)
