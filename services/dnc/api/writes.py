"""Writes from the API: list commands built from requests, and answers once effective.

The API never writes Redis or the changelog: it submits commands to ``dnc.commands`` and
waits. ``apply`` waits in two steps, both bounded by ``api.effective_timeout_s``:

1. the list writer has processed the commands (``cmd:<p>`` in the index meta passed their
   offsets): the change is effective at the gate;
2. the list view has consumed the changelog up to the index's ``chg:<p>`` of those
   partitions, read right after step 1: the list shows the change too.

If step 1 runs out of time the caller answers 202 with a follow-up URL; if only step 2
does, the answer is still "effective" (the gate is what the promise is about).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from dnc.api.auth import Principal
from dnc.api.commands import Positions, format_positions, merge
from dnc.api.contactforms import ContactForms, shown
from dnc.api.context import ApiContext
from dnc.api.observe import new_request_id
from dnc.domain.channels import Channel, check_channel_for_contact, parse_channel
from dnc.domain.contacts import ContactKind, normalise_sender
from dnc.domain.entries import Command, Entry, EntryKey, Op, Source, sender_as_entered

SUBMIT_CHUNK = 10_000  # commands per produce round, so a big remove does not pile up
MIN_VIEW_WAIT_S = 0.5


@dataclass(slots=True)
class Outcome:
    request_id: str
    positions: Positions
    effective: bool  # the gate sees it
    visible: bool  # the list view shows it

    def pending(self) -> dict[str, Any]:
        """The 202 body: how to learn when the write is effective."""
        return {
            "status": "pending",
            "request_id": self.request_id,
            "follow_up": follow_up_url(self.positions),
        }


def follow_up_url(positions: Positions) -> str:
    return f"/v1/writes/{format_positions(positions) or '-'}"


def request_id(request: Request) -> str:
    """The id the request logs carry (set by ``dnc.api.observe``), or a new one."""
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else new_request_id()


def origin(who: Principal, rid: str) -> dict[str, Any]:
    return {"kind": "api", "key": who.name, "request_id": rid}


def account_ref(rid: str, i: int) -> str:
    """Progress counters are per ref; one ref per account tells which account was added."""
    return f"{rid}.{i}"


def manual_key(
    account: str,
    contact: object,
    channel: object,
    sender: object,
    *,
    adding: bool,
    forms: ContactForms,
) -> EntryKey:
    """A key typed by a person, as the list stores it: the contract's rules for adding by
    hand (no WHATSAPP), or, for removing, only the rules that make a key possible at all.
    A contact id (``h1:…``) is taken as it is; what kind of contact it stands for is
    unknown, so only the rules that do not depend on it apply."""
    canonical, kind = forms.parse(contact, "contact")
    parsed = parse_channel(channel)
    if kind is not None:
        check_channel_for_contact(kind, parsed, by_hand=adding)
    elif adding and parsed is Channel.WHATSAPP:
        check_channel_for_contact(ContactKind.PHONE, parsed, by_hand=True)  # refuses it
    return EntryKey(
        account,
        forms.stored(canonical),
        parsed.value if parsed else None,
        normalise_sender(sender),
    )


def add_commands(
    keys: Sequence[EntryKey],
    who: Principal,
    rid: str,
    at: int,
    expires_at: int | None = None,
    *,
    sender: object = None,
) -> list[Command]:
    """One command per account (each account's entry lives in its own partition);
    ``sender`` as typed, so the list can show it as entered."""
    cause = origin(who, rid)
    if keys:
        cause |= sender_as_entered(sender, keys[0].sender)
    return [
        Command([Op("add", k, Source.MANUAL, expires_at)], at, cause, account_ref(rid, i))
        for i, k in enumerate(keys)
    ]


def remove_commands(keys: Iterable[EntryKey], who: Principal, rid: str, at: int) -> list[Command]:
    """One command per (account, contact): its ops share a partition."""
    grouped: dict[tuple[str, str], list[Op]] = {}
    for k in dict.fromkeys(keys):
        grouped.setdefault((k.account, k.contact), []).append(Op("remove", k))
    cause = origin(who, rid)
    return [Command(ops, at, cause, rid) for ops in grouped.values()]


async def apply(ctx: ApiContext, commands: Sequence[Command], rid: str) -> Outcome:
    """Submit commands and wait until they are effective (and visible in the list and its
    history)."""
    timeout = ctx.settings.api.effective_timeout_s
    deadline = time.monotonic() + timeout
    positions: Positions = {}
    for start in range(0, len(commands), SUBMIT_CHUNK):
        positions = merge(
            positions, await ctx.writer.submit(commands[start : start + SUBMIT_CHUNK])
        )
    if not positions:
        return Outcome(rid, positions, True, True)
    effective = await ctx.writer.wait_effective(positions, max(0.0, deadline - time.monotonic()))
    if not effective:
        return Outcome(rid, positions, False, False)
    meta = await ctx.index.meta()
    target = {p: meta.changes[p] for p in positions if p in meta.changes}
    remaining = max(MIN_VIEW_WAIT_S, deadline - time.monotonic())
    visible = await ctx.view.wait_for(target, remaining)
    # The change and its history records commit in one transaction, but the view reads the
    # two topics at their own pace: an export or a history page right after the write must
    # show the write's history as well as its entry.
    remaining = max(MIN_VIEW_WAIT_S, deadline - time.monotonic())
    visible = visible and await ctx.view.wait_for_history(sorted(positions), remaining)
    return Outcome(rid, positions, True, visible)


async def add_results(
    ctx: ApiContext, keys: Sequence[EntryKey], outcome: Outcome
) -> list[dict[str, Any]]:
    """Per account: added or already present, and the entry as it now is (the first
    ``added_at`` and source stay when it was already there)."""
    entries: dict[EntryKey, Entry] = await ctx.view.get(keys) if outcome.visible else {}
    results = []
    for i, k in enumerate(keys):
        entry = entries.get(k)
        if entry is None:  # the view lags: the index has the entry, without its origin
            entry = next(
                (e for e in await ctx.index.entries_of(k.account, k.contact) if e.key == k), None
            )
        counts = await ctx.index.progress(account_ref(outcome.request_id, i))
        if counts:
            added = counts.get("added", 0) > 0
        else:  # counters are gone (expired, or an index rebuilt from the changelog)
            added = (
                entry is not None and (entry.origin or {}).get("request_id") == outcome.request_id
            )
        # "extended": it was there with an earlier expiry, which this add pushed back.
        extended = not added and counts.get("extended", 0) > 0
        results.append(
            {
                "account": k.account,
                "outcome": "added" if added else "extended" if extended else "already_present",
                "entry": shown(entry.to_dict()) if entry is not None else None,
            }
        )
    return results


async def remove_counts(ctx: ApiContext, rid: str) -> dict[str, int]:
    counts = await ctx.index.progress(rid)
    return {"removed": counts.get("removed", 0), "absent": counts.get("absent", 0)}
