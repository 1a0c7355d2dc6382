"""``dnc entries history | erase | dry-run``: one person's history, erasing a person, and
an audience dry run, as clients of the HTTP API (see ``dnc.client.app``)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from dnc.client.http import Client
from dnc.client.options import DEFAULT_API, Accounts, Api, Json, Key, Yes
from dnc.client.terminal import OK, USAGE, confirm, err, fail, out, print_json, show_table
from dnc.client.words import NEVER, action_words, cause_words, entry_cells, option_words
from dnc.domain.spreadsheets import neutralise

ALL_AT_ONCE = 1_000_000  # the API's largest suppressed list

commands = typer.Typer()


def _cause(cause: dict[str, Any] | None) -> tuple[str, str]:
    rest = dict(cause or {})
    kind = str(rest.pop("kind", ""))
    return kind, ", ".join(f"{k}={v}" for k, v in rest.items() if v not in (None, ""))


@commands.command()
def history(
    contact: Annotated[str, typer.Argument(help="phone, e-mail, or a contact id (h1:…)")],
    *,
    account: Accounts = None,
    all_pages: Annotated[bool, typer.Option("--all", help="every page")] = False,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Every change of CONTACT's entries, newest first: added, extended, removed, expired,
    erased, with when and why (API key, import, journey, message, link, channel)."""
    client = Client(api, key)
    params: list[tuple[str, str]] = [("contact", contact), *(("account", a) for a in account or ())]
    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.call(
            "GET", "/v1/history", params=[*params, *([("cursor", cursor)] if cursor else [])]
        )
        records += page["history"]
        cursor = page["next_cursor"]
        if not all_pages or not cursor:
            break
    if json:
        print_json({**page, "history": records})
        return
    rows = []
    for r in records:
        e = r["entry"]
        kind, details = _cause(r["cause"])
        sender, channel, source = entry_cells(e)
        rows.append(
            (
                r["at"],
                action_words(r["action"]),
                r["account"],
                channel if r["action"] != "erase" else "",
                sender if r["action"] != "erase" else "",
                source,
                cause_words(kind),
                details,
            )
        )
    header = ("At", "Action", "Account", "Channel", "Sender", "Source", "Cause", "Details")
    show_table(header, rows)
    more = "; more: --all" if cursor else ""
    err.print(f"{len(records)} history records of {page['contact']}{more}", markup=False)


@commands.command()
def erase(
    contact: Annotated[str, typer.Argument(help="phone, e-mail, or a contact id (h1:…)")],
    *,
    account: Accounts = None,
    yes: Yes = False,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Erase CONTACT's data and history in each --account (default: all of yours). The
    suppression stays: the entries keep blocking, kept under a contact id."""
    scope = ", ".join(account) if account else "all your accounts"
    if not yes:
        confirm(
            f"erase the data and history of {contact} in {scope}? "
            "(the suppression stays; this cannot be undone)"
        )
    body: dict[str, Any] = {"contact": contact}
    if account:
        body["accounts"] = account
    result = Client(api, key).call("POST", "/v1/erasures", ok=(201, 202), json=body)
    if json:
        print_json(result)
    elif result.get("status") == "pending":
        err.print(f"accepted, not yet effective; follow up at {result['follow_up']}")
    else:
        for r in result["results"]:
            out.print(
                f"{r['account']}: erased {r['history_records_erased']} history records; "
                f"{r['entries_kept']} entries keep blocking as {result['contact']}",
                markup=False,
            )


@commands.command("dry-run")
def dry_run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    *,
    account: Annotated[str, typer.Option("--account", "-a")],
    channel: Annotated[str, typer.Option(help="the send's channel, e.g. SMS")],
    sender: Annotated[str | None, typer.Option(help="the send's sender (default any)")] = None,
    skip_rows: Annotated[int, typer.Option(min=0, help="rows before the data (e.g. 1)")] = 0,
    mapping: Annotated[
        str | None, typer.Option("--map", help="the contact column, e.g. 2=contact")
    ] = None,
    default_country: Annotated[
        str | None, typer.Option(help="ISO code for national numbers, e.g. US")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the suppressed contacts (CSV)")
    ] = None,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """How much of the audience in FILE (.txt, .csv, .xlsx or .zip, read like an import)
    the list suppresses for a send on --channel from --sender, and why. Nothing is
    written to the list."""
    limit = ALL_AT_ONCE if output is not None or json else 20
    with file.open("rb") as fh:
        result = Client(api, key).call(
            "POST",
            "/v1/audience/dry-run",
            params={"suppressed_limit": limit},
            files={"file": (file.name, fh)},
            data={
                "account": account,
                "channel": channel,
                "sender": sender,
                "skip_rows": skip_rows,
                "mapping": mapping,
                "default_country": default_country,
            },
        )
    if output is not None:
        _write_suppressed(output, result["suppressed"])
        err.print(f"wrote {len(result['suppressed'])} suppressed contacts to {output}")
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        raise typer.Exit(OK)
    c = result["counts"]
    out.print(
        f"rows {c['rows']}: valid {c['valid']}, duplicate {c['duplicate']}, invalid "
        f"{c['invalid']}; suppressed {c['suppressed']}, deliverable {c['deliverable']}",
        markup=False,
    )
    for row in result["invalid"][:20]:
        err.print(
            f"  row {row['row']}: {row['value']!r} {option_words(row['reason'])}", markup=False
        )
    if output is None and result["suppressed"]:
        rows = [_suppressed_row(s) for s in result["suppressed"]]
        show_table(("Row", "Contact", "Channel", "Sender", "Source", "Added", "Expires"), rows)
        if c["suppressed"] > len(rows):
            err.print(f"… and {c['suppressed'] - len(rows)} more (--out FILE writes them all)")


def _suppressed_row(s: dict[str, Any]) -> tuple[str, ...]:
    """A suppressed contact and the entry that blocks it, in the words of the page and
    the exports (the CSV of --out too): "Email", "Added manually", not EMAIL, MANUAL."""
    e = s["entry"]
    sender, channel, source = entry_cells(e)
    return (
        str(s["row"]),
        s["contact"],
        channel,
        sender,
        source,
        e["added_at"],
        e.get("expires_at") or NEVER,
    )


def _write_suppressed(path: Path, suppressed: list[dict[str, Any]]) -> None:
    if path.suffix.lower() not in ("", ".csv", ".txt"):
        fail(f"--out writes CSV; {path.name!r} does not look like a .csv file", USAGE)
    partial = path.with_name(path.name + ".part")
    with partial.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(("Row", "Contact", "Channel", "Sender", "Source", "Added", "Expires"))
        w.writerows(tuple(neutralise(v) for v in _suppressed_row(s)) for s in suppressed)
    partial.replace(path)
