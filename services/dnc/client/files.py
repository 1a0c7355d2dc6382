"""``dnc entries import | export``: files in and out of the list, as clients of the HTTP
API (see ``dnc.client.app``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from dnc.client.http import Client
from dnc.client.options import (
    DEFAULT_API,
    POLL_S,
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
    filter_params,
)
from dnc.client.terminal import USAGE, confirm, err, fail, out, print_json
from dnc.client.words import option_words

commands = typer.Typer()


def _summary(a: dict[str, Any]) -> None:
    f = a["file"]
    used = f" (used {f['used']}; ignored: {', '.join(f['ignored']) or 'none'})" if f["used"] else ""
    how = f", {f['encoding']}, delimiter {f['delimiter']!r}" if f["encoding"] else ""
    err.print(f"{f['name']}{used}: {f['format']}{how}", markup=False)
    err.print(
        f"rows {a['rows']}: valid {a['valid']}, duplicate {a['duplicate']}, "
        f"invalid {a['invalid']} (skipped {a['skipped']}, blank {a['blank']})",
        markup=False,
    )
    for row in a["invalid_rows"][:20]:
        err.print(f"  row {row['row']}: {option_words(row['error'])}", markup=False)
    if a["invalid"] > 20:
        err.print(f"  … and {a['invalid'] - 20} more invalid rows", markup=False)
    for hint in a["hints"]:
        err.print(f"hint: {option_words(hint)}", markup=False)


@commands.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    *,
    account: Accounts = None,
    skip_rows: Annotated[int, typer.Option(min=0, help="rows before the data (e.g. 1)")] = 0,
    mapping: Annotated[
        str | None, typer.Option("--map", help="e.g. 0=contact,1=sender,2=channel")
    ] = None,
    default_country: Annotated[
        str | None, typer.Option(help="ISO code for national numbers, e.g. US")
    ] = None,
    expires_at: ExpiresAt = None,
    ttl_days: TtlDays = None,
    analyze_only: Annotated[bool, typer.Option(help="analyze; import nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="import despite invalid rows")] = False,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Import a .txt, .csv, .xlsx or .zip file (at most 15 MB) into one or more accounts:
    analyze it, then import it with a progress bar. Invalid rows are listed; importing
    the valid ones anyway needs --yes (or a yes at the prompt)."""
    if not analyze_only and not account:
        fail("--account is required (repeat it for several accounts)", USAGE)
    client = Client(api, key)
    with file.open("rb") as fh:
        analysis = client.call(
            "POST",
            "/v1/imports/analyze",
            files={"file": (file.name, fh)},
            # Form fields: the API reads the --map spelling itself and names what is wrong.
            data={
                "skip_rows": skip_rows,
                "mapping": mapping,
                "default_country": default_country,
                "expires_at": expires_at,
                "ttl_days": ttl_days,
            },
        )
    _summary(analysis)
    if analyze_only:
        if json:
            print_json(analysis)
        return
    if analysis["valid"] == 0:
        fail("no valid row to import")
    if analysis["invalid"] and not yes:
        confirm(f"import the {analysis['valid']} valid rows and skip {analysis['invalid']}?")
    started = client.call(
        "POST",
        "/v1/imports",
        ok=(202,),
        json={"upload_id": analysis["upload_id"], "accounts": account},
    )
    status = _follow(client, started["status_url"])
    if json:
        print_json(status)
    else:
        out.print(
            f"{status['import_id']} {status['state']}: added {status['added']}, "
            f"already present {status['already_present']}, rejected rows {status['rejected']}"
        )
    if status["state"] != "finished":
        fail(status["error"] or "the import did not finish")


def _follow(client: Client, url: str) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("reading", total=None)
        while True:
            status: dict[str, Any] = client.call("GET", url)
            bar.update(
                task,
                description=status["phase"],
                total=status["entries_expected"],
                completed=status["entries_done"],
            )
            if status["state"] != "running":
                return status
            time.sleep(POLL_S)


@commands.command()
def export(
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write; - = stdout")],
    format: Annotated[
        str | None, typer.Option("--format", help="csv or xlsx (default: from --output)")
    ] = None,
    account: Accounts = None,
    contact: Contacts = None,
    channel: Channels = None,
    sender: Senders = None,
    source: Sources = None,
    added_from: From = None,
    added_to: To = None,
    history: Annotated[
        bool, typer.Option(help="with the history of the exported people (csv: a .zip)")
    ] = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Export everything the filters match (all your accounts by default) as CSV or XLSX,
    with --history also the history of those people (a History sheet; for CSV a .zip of
    entries.csv and history.csv). The file appears only once it is complete."""
    chosen = format or ("xlsx" if output.suffix.lower() == ".xlsx" else "csv")
    if chosen not in ("csv", "xlsx"):
        fail(f"--format must be csv or xlsx, not {chosen!r}", USAGE)
    client = Client(api, key)
    params = [*filter_params(locals()), ("format", chosen)]
    if history:
        params.append(("history", "true"))
    to_stdout = str(output) == "-"
    partial = output.with_name(output.name + ".part")
    with client.stream("GET", "/v1/entries/export", params=params) as r:
        sink = sys.stdout.buffer if to_stdout else partial.open("wb")
        try:
            for chunk in r.iter_bytes():
                sink.write(chunk)
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            fail(f"the export was interrupted ({exc}); nothing was written to {output}")
        finally:
            if not to_stdout:
                sink.close()
    if not to_stdout:
        partial.replace(output)
        err.print(f"wrote {output}", markup=False)
