"""The list's domain: entry keys, entries, the blocking rule, and how commands change
the list.

Everything here is pure and synchronous; the list writer (``dnc.listwriter``) loads the
current entries of the contacts a batch of commands touches, calls ``apply_op`` for each
op of each command in order (``dnc.listwriter.evaluate``), and publishes the resulting
changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import orjson

from dnc.domain.contactids import is_token
from dnc.domain.timestamps import format_ms


class Source(StrEnum):
    END_USER_MESSAGE = "END_USER_MESSAGE"
    CAMPAIGN_ACTION = "CAMPAIGN_ACTION"
    URL_OPT_OUT = "URL_OPT_OUT"
    MANUAL = "MANUAL"
    IMPORT = "IMPORT"
    # Contract addition (v1, additive): a channel reported that the person opted out.
    CHANNEL_SIGNAL = "CHANNEL_SIGNAL"


# Decoding runs per op of every command: a dict lookup instead of the enum's constructor
# (which still reports an unknown value), tuple.__new__ instead of NamedTuple's __new__.
_SOURCES = {s.value: s for s in Source}
_new_key = tuple.__new__


class EntryKey(NamedTuple):
    """(account, contact, channel or None = all, sender or None = all); all canonical."""

    account: str
    contact: str
    channel: str | None
    sender: str | None

    def to_json(self) -> bytes:
        return orjson.dumps(list(self))


# An origin's field: {sender as the list keeps it: as a person wrote it}, for the senders
# whose kept form differs ("ACME" is kept as "acme": senders compare case-insensitively,
# but people must see them as entered).
SENDERS = "senders"


def sender_as_entered(raw: object, kept: str | None) -> dict[str, dict[str, str]]:
    """The origin field for one sender: empty when it is kept as written."""
    if kept is None or not isinstance(raw, str):
        return {}
    written = " ".join(raw.split())
    return {SENDERS: {kept: written}} if written and written != kept else {}


def shown_sender(sender: str | None, origin: dict[str, Any] | None) -> str | None:
    """A kept sender as the person who added the entry wrote it (the kept form if unknown)."""
    if sender is None or not isinstance(origin, dict):
        return sender
    written = origin.get(SENDERS)
    found = written.get(sender) if isinstance(written, dict) else None
    return found if isinstance(found, str) else sender


def specificity(channel: str | None, sender: str | None) -> int:
    """Rank for "most specific first": 0 = this channel and this sender, 1 = this channel
    from all senders, 2 = all channels from this sender, 3 = all channels, all senders.
    The channel is the list's primary dimension (the page shows "channel or All
    channels"), so a channel match ranks above a sender match."""
    return (0 if channel is not None else 2) + (0 if sender is not None else 1)


@dataclass(slots=True)
class Entry:
    key: EntryKey
    source: Source
    added_at: int  # epoch ms
    origin: dict[str, Any] | None = None
    expires_at: int | None = None  # epoch ms; None = never
    # Stored under the contact's id (dnc.domain.contactids) in the changelog: privacy mode, or
    # after an erasure; key.contact is then that id.
    stored_as_id: bool = False

    def blocks(self, channel: str, sender: str, now: int) -> bool:
        k = self.key
        return (
            (k.channel is None or k.channel == channel)
            and (k.sender is None or k.sender == sender)
            and (self.expires_at is None or self.expires_at > now)
        )

    def blocks_any(self, channel: str | None, sender: str | None, now: int) -> bool:
        """``blocks``, where a missing channel or sender stands for any (the check
        endpoint and the dry run may be asked without one)."""
        k = self.key
        return (
            (self.expires_at is None or self.expires_at > now)
            and (channel is None or k.channel is None or k.channel == channel)
            and (sender is None or k.sender is None or k.sender == sender)
        )

    def sort_key(self) -> tuple[int, int]:
        return specificity(self.key.channel, self.key.sender), self.added_at

    def to_dict(self, *, origin: bool = True) -> dict[str, Any]:
        k = self.key
        out: dict[str, Any] = {
            "account": k.account,
            "contact": k.contact,
            "channel": k.channel,
            "sender": k.sender,
            "source": self.source.value,
            "added_at": format_ms(self.added_at),
        }
        if origin:
            out["origin"] = self.origin
        if self.expires_at is not None:
            out["expires_at"] = format_ms(self.expires_at)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def blocking_entries(entries: Iterable[Entry], channel: str, sender: str, now: int) -> list[Entry]:
    """Every entry that blocks (channel, sender), most specific first (rule 2)."""
    return sorted((e for e in entries if e.blocks(channel, sender, now)), key=Entry.sort_key)


# --- commands -------------------------------------------------------------------------

OpName = Literal["add", "remove", "remove_if_source", "remove_if_expired", "erase"]


@dataclass(slots=True)
class Op:
    op: OpName
    key: EntryKey
    source: Source | None = None  # add: the entry's source; remove_if_source: the condition
    expires_at: int | None = None
    # add from an opt-out keyword: the confirmation message to send if the add creates the
    # entry (contract addition; at most one per opt-out).
    confirm: dict[str, Any] | None = None
    # erase: the keys of the person's history records to delete (from the list view).
    history_keys: list[list[Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        k = self.key
        d: dict[str, Any] = {
            "op": self.op,
            "account": k.account,
            "contact": k.contact,
            "channel": k.channel,
            "sender": k.sender,
        }
        if self.source is not None:
            d["source"] = self.source.value
        if self.expires_at is not None:
            d["expires_at"] = self.expires_at
        if self.confirm is not None:
            d["confirm"] = self.confirm
        if self.history_keys is not None:
            d["history_keys"] = self.history_keys
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Op:
        src = d.get("source")
        return cls(
            d["op"],
            _new_key(EntryKey, (d["account"], d["contact"], d.get("channel"), d.get("sender"))),
            None if src is None else _SOURCES.get(src) or Source(src),
            d.get("expires_at"),
            d.get("confirm"),
            d.get("history_keys"),
        )


@dataclass(slots=True)
class Command:
    """One record of ``dnc.commands``: operations that share a partition, their time and
    their cause. ``at`` becomes the ``added_at`` of entries it creates."""

    ops: list[Op]
    at: int
    origin: dict[str, Any] | None = None
    ref: str | None = None  # import id or request id, for progress tracking

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "at": self.at,
                "origin": self.origin,
                "ref": self.ref,
                "ops": [o.to_dict() for o in self.ops],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Command:
        d = orjson.loads(raw)
        from_dict = Op.from_dict
        return cls(
            ops=[from_dict(o) for o in d["ops"]],
            at=int(d["at"]),
            origin=d.get("origin"),
            ref=d.get("ref"),
        )


Outcome = Literal[
    "added", "already_present", "extended", "removed", "expired", "absent", "kept", "erased"
]
HistoryAction = Literal["add", "extend", "remove", "expire", "erase"]


@dataclass(slots=True)
class Change:
    """A change of the list: ``entry`` is the new entry, or None when ``key`` left it.
    ``previous`` is the removed entry (for the history)."""

    key: EntryKey
    entry: Entry | None
    previous: Entry | None = None
    cause: dict[str, Any] | None = None
    ref: str | None = None
    action: HistoryAction = "add"
    confirm: dict[str, Any] | None = None


@dataclass(slots=True)
class ContactState:
    """The entries of one (account, contact), keyed by (channel, sender)."""

    entries: dict[tuple[str | None, str | None], Entry] = field(default_factory=dict)


def apply_op(state: ContactState, op: Op, cmd: Command) -> tuple[Outcome, Change | None]:
    """Rule 1 (adding an existing key changes nothing; removing a missing key is fine),
    rule 5's opt-in (remove only entries of a given source), and expiry: an add never
    shortens an entry's life but lengthens it (a STOP on a temporary entry makes it
    permanent), keeping its source and first time."""
    slot = (op.key.channel, op.key.sender)
    current = state.entries.get(slot)
    if op.op == "add":
        if op.source is None:
            raise ValueError("add without a source")
        if current is not None:
            if current.expires_at is None or (
                op.expires_at is not None and op.expires_at <= current.expires_at
            ):
                return "already_present", None
            longer = Entry(
                current.key,
                current.source,
                current.added_at,
                current.origin,
                op.expires_at,
                current.stored_as_id,
            )
            state.entries[slot] = longer
            return "extended", Change(current.key, longer, current, cmd.origin, cmd.ref, "extend")
        entry = Entry(
            op.key, op.source, cmd.at, cmd.origin, op.expires_at, is_token(op.key.contact)
        )
        state.entries[slot] = entry
        return "added", Change(op.key, entry, None, cmd.origin, cmd.ref, "add", op.confirm)
    if current is None:
        return "absent", None
    if op.op == "remove_if_source" and current.source != op.source:
        return "kept", None
    # Removals address the entry as it is stored: after an erasure that is under the
    # contact's id, whatever form the command used.
    if op.op == "remove_if_expired":
        if current.expires_at is None or current.expires_at > cmd.at:
            return "kept", None
        del state.entries[slot]
        return "expired", Change(current.key, None, current, cmd.origin, cmd.ref, "expire")
    del state.entries[slot]
    return "removed", Change(current.key, None, current, cmd.origin, cmd.ref, "remove")
