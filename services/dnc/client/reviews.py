"""The review queue from the shell: opt-outs in people's own words waiting for a person
(``dnc entries reviews``, ``confirm-review``, ``dismiss-review``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dnc.client.http import Client
from dnc.client.options import DEFAULT_API, Accounts, Api, Json, Key
from dnc.client.terminal import err, out, print_json, show_table

commands = typer.Typer()

Review = Annotated[str, typer.Argument(help="the review id (rv-…), from `dnc entries reviews`")]


@commands.command()
def reviews(
    *,
    account: Accounts = None,
    status: Annotated[str, typer.Option(help="open, confirmed, dismissed or all")] = "open",
    verdict: Annotated[str | None, typer.Option(help="opt_out or possible_opt_out")] = None,
    channel: Annotated[str | None, typer.Option(help="SMS, WHATSAPP…")] = None,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Inbound messages that may be opt-outs in the person's own words, oldest first, with
    the verdict and the words that matched; decide with confirm-review or dismiss-review."""
    params: list[tuple[str, str]] = [("status", status), *(("account", a) for a in account or ())]
    params += [("verdict", verdict)] if verdict else []
    params += [("channel", channel)] if channel else []
    page: dict[str, Any] = Client(api, key).call("GET", "/v1/reviews", params=params)
    if json:
        print_json(page)
        return
    rows = [
        (
            r["review_id"],
            r["created_at"],
            r["account"],
            r["contact"],
            r["channel"],
            r["sender"] or "",
            r["verdict"],
            r["text"],
            r["status"] if r["status"] == "open" else f"{r['status']} by {r['decided_by']}",
        )
        for r in page["reviews"]
    ]
    header = (
        "Review", "Received", "Account", "Contact", "Channel", "Sender", "Verdict", "Text",
        "Status",
    )  # fmt: skip
    show_table(header, rows)
    age = page["oldest_open_age_s"]
    oldest = "" if age is None else f"; oldest open item {age / 86400:.1f} days old"
    err.print(f"{page['count']} reviews ({page['open']} open{oldest})", markup=False)


@commands.command("confirm-review")
def confirm_review(
    review: Review,
    *,
    all_senders: Annotated[
        bool | None,
        typer.Option(
            "--all-senders/--this-sender",
            help="block every sender, or only the one the message went to "
            "(default: the account's STOP scope)",
            show_default=False,
        ),
    ] = None,
    all_channels: Annotated[
        bool, typer.Option("--all-channels", help="block every channel")
    ] = False,
    json: Json = False,
    api: Api = DEFAULT_API,
    key: Key = None,
) -> None:
    """Confirm REVIEW: it is an opt-out. Blocks the person for the channel the message came
    in on (or all) and the sender it went to (or all; default the account's STOP scope),
    recorded in the history with your key."""
    body = {"channels": "all" if all_channels else "this"}
    if all_senders is not None:
        body["senders"] = "all" if all_senders else "this"
    result = Client(api, key).call(
        "POST", f"/v1/reviews/{review}/confirm", ok=(200, 202), json=body
    )
    if json:
        print_json(result)
        return
    e = result["entry"]
    scope = f"{e['channel'] or 'all channels'}, {e['sender'] or 'all senders'}"
    if result["status"] == "pending":
        err.print(f"confirmed; not yet effective, follow up at {result['follow_up']}")
    else:
        out.print(f"confirmed {review}: {e['contact']} is blocked ({scope})", markup=False)


@commands.command("dismiss-review")
def dismiss_review(
    review: Review, *, json: Json = False, api: Api = DEFAULT_API, key: Key = None
) -> None:
    """Dismiss REVIEW: it is not an opt-out; nothing is blocked."""
    result = Client(api, key).call("POST", f"/v1/reviews/{review}/dismiss", json={})
    if json:
        print_json(result)
    else:
        out.print(f"dismissed {review}", markup=False)
