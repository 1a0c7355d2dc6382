"""``dnc entries list | add | remove | check``: the list itself, as a client of the HTTP
API (see ``dnc.client.app``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnc.client.http import Client
from dnc.client.options import (
    DEFAULT_API,
    Accounts,
    Api,
    Channels,
    Contacts,
    ExpiresAt,
    From,
    Json,
    Key,
    Senders,
    Sources,
    To,
    TtlDays,
    Yes,
    filter_params,
)
from dnc.client.terminal import (
    NOT_FOUND,
    OK,
    USAGE,
    confirm,
    err,
    fail,
    out,
    print_json,
    show_table,
)
from dnc.client.words import NEVER, entry_cells

commands = typer.Typer()


def _show(entries: list[dict[str, Any]]) -> None:
    """A table on a terminal; tab-separated lines (header first) for pipes and files,
    where a table's truncated cells would lose data."""
    header = ("Contact", "Sender", "Source", "Channel", "Account", "Added", "Expires")
    rows = []
    for e in entries:
        sender, channel, source = entry_cells(e)
        rows.append(
            (
                e["contact"],
                sender,
                source,
                channel,
                e["account"],
                e["added_at"],
                e.get("expires_at") or NEVER,
            )
        )
    show_table(header, rows)


@commands.command("list")
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
    params = filter_params(locals())
    entries: list[dict[str, Any]] = []
    while True:
        page_params = [*params, ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        page = client.call("GET", "/v1/entries", params=page_params)
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not all_pages or not cursor:
            break
    if json:
        print_json(entries if all_pages else page)
        return
    _show(entries)
    more = f"; next page: --cursor {cursor}" if cursor else ""
    # A filtered total past the server's count bound is a lower bound (an API addition).
    total = f"more than {page['total']}" if page.get("total_is_lower_bound") else page["total"]
    err.print(f"{len(entries)} of {total} entries{more}", markup=False)


@commands.command()
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
        print_json(result)
    elif result.get("status") == "pending":
        err.print(f"accepted, not yet effective; follow up at {result['follow_up']}")
    else:
        for r in result["results"]:
            e = r["entry"] or {}
            out.print(f"{r['account']}: {r['outcome'].replace('_', ' ')} {e.get('contact', '')}")


@commands.command()
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
        params = filter_params(locals())
        if not params:
            fail("--matching needs at least one filter", USAGE)
        count = client.call(
            "POST", "/v1/entries/remove-matching", params=params, json={"dry_run": True}
        )["count"]
        out.print(f"{count} entries match")
        if dry_run or count == 0:
            return
        if not yes:
            confirm(f"remove these {count} entries?")
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


@commands.command()
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
        print_json(result)
    else:
        verdict = "BLOCKED" if result["blocked"] else "not blocked"
        out.print(f"{result['contact']} in {account}: {verdict}")
        if result["entries"]:
            _show(result["entries"])
    raise typer.Exit(OK if result["blocked"] else NOT_FOUND)
