"""Erasure of a person (contract addition): their clear-text data and history go, the
suppression stays.

The API knows the person's history records (the list view holds ``dnc.history``); the
list writer knows their entries. So for each account the API sends one ``erase`` command
carrying the keys of every history record the view holds for the person — under the
contact and under its id, since either may hold some — and the list writer moves the
entries under the contact's id, tombstones those records and writes one record saying
that an erasure happened.

Before collecting the keys the view reads the person's history partition up to its end,
so that records committed before the request are not left behind. An account where the
person has neither entries nor history gets no command (and so no erasure record).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dnc.api.auth import Principal
from dnc.api.context import ApiContext
from dnc.api.writes import Outcome, account_ref, apply
from dnc.domain.entries import Command, EntryKey, Op
from dnc.domain.timestamps import now_ms
from dnc.errors import IndexNotReady

# History keys per command: a command is one Kafka record and must stay well under a
# producer batch; a person with more records gets several commands.
KEYS_PER_COMMAND = 2000


@dataclass(slots=True)
class Erasure:
    outcome: Outcome
    stored: str  # the contact id the person's entries are kept under
    keys: dict[str, int]  # account → history records sent for deletion
    skipped: set[str]  # accounts where the person has neither entries nor history


async def erase(
    ctx: ApiContext, who: Principal, rid: str, contact: object, accounts: Sequence[str]
) -> Erasure:
    if not ctx.view.caught_up:
        # The view's history keys are the erasure's list of what to delete.
        raise IndexNotReady("the list view is still reading the history; try again shortly")
    forms = ctx.contacts
    value, _kind = forms.parse(contact)
    stored = forms.stored(value)
    every = forms.forms(value)
    origin = {"kind": "erasure", "key": who.name, "request_id": rid}
    partitions = {ctx.writer.partition_of(a, stored) for a in accounts}
    await ctx.view.wait_for_history(sorted(partitions), ctx.settings.api.effective_timeout_s)
    at = now_ms()
    commands: list[Command] = []
    counts: dict[str, int] = {}
    skipped: set[str] = set()
    for i, account in enumerate(accounts):
        keys = await ctx.view.history_keys(account, every)
        counts[account] = len(keys)
        if not keys and not await ctx.index.entries_of(account, stored):
            skipped.add(account)  # nothing to erase: no record that there was
            continue
        for start in range(0, max(len(keys), 1), KEYS_PER_COMMAND):
            op = Op(
                "erase",
                EntryKey(account, stored, None, None),
                history_keys=keys[start : start + KEYS_PER_COMMAND],
            )
            commands.append(Command([op], at, origin, account_ref(rid, i)))
    outcome = await apply(ctx, commands, rid)
    # A visible outcome has waited for these history partitions already (writes.apply);
    # one that is not gets the history's own wait, as before.
    if outcome.effective and not outcome.visible:
        await ctx.view.wait_for_history(
            sorted(outcome.positions), ctx.settings.api.effective_timeout_s
        )
    return Erasure(outcome, forms.ids.token(value), counts, skipped)


async def results(
    ctx: ApiContext, erasure: Erasure, accounts: Sequence[str]
) -> list[dict[str, Any]]:
    """Per account: the history records deleted and the entries kept (under the id)."""
    out = []
    for account in accounts:
        kept = await ctx.index.entries_of(account, erasure.stored)
        out.append(
            {
                "account": account,
                "outcome": "nothing_to_erase" if account in erasure.skipped else "erased",
                "history_records_erased": erasure.keys[account],
                "entries_kept": len(kept),
            }
        )
    return out
