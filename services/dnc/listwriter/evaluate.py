"""The list writer's evaluation of a batch of commands for one partition.

Given the current entries of the contacts the commands touch (from the index), apply each
command in order (``dnc.domain.entries.apply_op``; erasure here) and append what follows to the
partition's transaction: changelog records, history records, opt-out confirmations. What
Redis must become (each changed contact's packed entries, the expiry index) is collected
for ``Index.apply`` after the transaction commits.

History records have unique keys (``[account, contact, channel, sender, "<p>-<offset>-<i>"]``)
in a compacted topic: nothing is ever compacted away except what an erasure tombstones.

This runs once per op of every import (a 15 MB file is half a million ops), so the
records are spliced from parts rendered once per command (time, cause, headers) instead
of being built as dicts per op; the bytes are exactly what ``orjson.dumps`` of the
documented shapes gives (``tests/unit/test_listwriter.py`` holds the reference).
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from dnc.domain.changelog import entry_dict, format_time
from dnc.domain.contactids import is_token
from dnc.domain.entries import (
    Change,
    Command,
    ContactState,
    Entry,
    EntryKey,
    Op,
    Outcome,
    Source,
    apply_op,
)
from dnc.index import Index
from dnc.index.layout import pack_entries, unpack_entries
from dnc.index.meta import ContactUpdate, IndexMeta
from dnc.kafka.batches import BatchWriter, Record
from dnc.settings import Settings

Expiry = tuple[bytes, int | None]  # changelog key, expiry ms (None: not in the expiry index)

_ACTION = {
    action: b'{"action":"' + action.encode() + b'","entry":'
    for action in ("add", "extend", "remove", "expire", "erase")
}


@dataclass(slots=True)
class Evaluated:
    """What a batch leaves to do once its transaction has committed."""

    updates: list[ContactUpdate] = field(default_factory=list)
    expiry: list[Expiry] = field(default_factory=list)
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)


class Contact(ContactState):
    """A contact's entries and where the index keeps them. Two forms of one contact (its
    number and its stored id) share one, as they share one index field."""

    __slots__ = ("bucket", "changed", "field", "member")

    def __init__(self, bucket: int, member: int, field_: bytes) -> None:
        super().__init__()
        self.bucket, self.member, self.field, self.changed = bucket, member, field_, False


Contacts = dict[tuple[str, str], Contact]


class _Rendered:
    """The parts every record of one command shares, rendered once."""

    __slots__ = ("_tails", "at", "headers", "hid", "history_tail", "origin")

    def __init__(self, cmd: Command, p: int, offset: int) -> None:
        self.headers: list[tuple[str, bytes]] = [("dnc-ref", cmd.ref.encode())] if cmd.ref else []
        self.at = format_time(cmd.at)
        self.origin = orjson.dumps(cmd.origin)
        self.hid = f',"{p}-{offset}-'
        self.history_tail = b',"at":"' + self.at.encode() + b'","cause":' + self.origin + b"}"
        self._tails: dict[tuple[Source, int | None], bytes] = {}

    def added_tail(self, source: Source, expires: int | None) -> bytes:
        """What follows ``"sender":…`` in the changelog value of an entry this command
        creates (``entry_dict`` order: source, added_at, origin, expires_at)."""
        tail = self._tails.get((source, expires))
        if tail is None:
            tail = b',"source":"%s","added_at":"%s","origin":%s%s}' % (
                source.value.encode(),
                self.at.encode(),
                self.origin,
                b"" if expires is None else b',"expires_at":"%s"' % format_time(expires).encode(),
            )
            self._tails[(source, expires)] = tail
        return tail


class Evaluator:
    def __init__(
        self, settings: Settings, index: Index, allowed_partitions: dict[str, int]
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.index = index
        self.allowed_partitions = allowed_partitions

    async def load(self, commands: Sequence[tuple[int, Command]]) -> tuple[IndexMeta, Contacts]:
        """(index meta, the current entries of each contact the commands touch)."""
        locate = self.index.locate
        contacts: Contacts = {}
        by_field: dict[bytes, Contact] = {}
        names: dict[bytes, tuple[str, str]] = {}  # the form entries are read back under
        for _offset, cmd in commands:
            for op in cmd.ops:
                k = op.key
                ac = (k.account, k.contact)
                if ac in contacts:
                    continue
                bucket, member, f = locate(*ac)
                c = by_field.get(f)
                if c is None:
                    c = by_field[f] = Contact(bucket, member, f)
                    names[f] = ac
                elif not is_token(ac[1]):
                    # Entries stored under the contact itself name it; its id cannot.
                    names[f] = ac
                contacts[ac] = c
        found = list(by_field.values())
        meta, values = await self.index.load([(c.bucket, c.field) for c in found])
        for c, raw in zip(found, values, strict=True):
            if raw:
                account, contact = names[c.field]
                entries = unpack_entries(account, contact, raw)
                if any(e.stored_as_id for e in entries):
                    token = self.index.ids.token(contact)
                    entries = unpack_entries(account, contact, raw, token)
                for e in entries:
                    c.entries[(e.key.channel, e.key.sender)] = e
        return meta, contacts

    def evaluate(
        self,
        p: int,
        commands: Sequence[tuple[int, Command]],
        contacts: Contacts,
        out: BatchWriter,
    ) -> Evaluated:
        done = Evaluated()
        changes: list[Record] = []
        history: list[Record] = []
        changed: list[Contact] = []
        expiry = done.expiry
        changing = 0  # commands that changed the list (a metric's outcome)
        for offset, cmd in commands:
            before = len(changes)
            r = _Rendered(cmd, p, offset)
            headers, hid, history_tail = r.headers, r.hid, r.history_tail
            at, origin = cmd.at, cmd.origin
            outcomes: dict[Outcome, int] = {}
            for i, op in enumerate(cmd.ops):
                k = op.key
                c = contacts[k.account, k.contact]
                slot = (k.channel, k.sender)
                source = op.source
                if op.op == "add" and source is not None and slot not in c.entries:
                    # apply_op's "added", inline: the path of every imported row.
                    expires = op.expires_at
                    c.entries[slot] = Entry(k, source, at, origin, expires, is_token(k.contact))
                    key = orjson.dumps([*k])
                    value = orjson.dumps(
                        {"account": k[0], "contact": k[1], "channel": k[2], "sender": k[3]}
                    )[:-1] + r.added_tail(source, expires)
                    changes.append((key, value, headers))
                    history.append(
                        (
                            b'%b%b%d"]' % (key[:-1], hid.encode(), i),
                            b"%b%b%b" % (_ACTION["add"], value, history_tail),
                            headers,
                        )
                    )
                    if expires is not None:
                        expiry.append((key, expires))
                    if op.confirm is not None:
                        self._confirm(out, op.confirm)
                    outcome: Outcome = "added"
                elif op.op == "erase":
                    outcome = self._erase(
                        changes, history, expiry, c, op=op, cmd=cmd, hid=f"{p}-{offset}-{i}"
                    )
                else:
                    outcome, change = apply_op(c, op, cmd)
                    if change is None:
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
                        continue
                    self._emit(changes, history, expiry, out, r=r, change=change, i=i)
                if not c.changed:
                    c.changed = True
                    changed.append(c)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if cmd.ref:
                for outcome, n in outcomes.items():
                    done.counters[(cmd.ref, outcome)] += n
            if len(changes) > before:
                changing += 1
        out.tally["changed"] = changing
        out.tally["unchanged"] = len(commands) - changing
        out.extend(self.topics.changes, p, changes)
        out.extend(self.topics.history, p, history)
        done.updates = [
            ContactUpdate(c.bucket, c.member, c.field, pack_entries(c.entries.values()))
            for c in changed
        ]
        return done

    def _emit(
        self,
        changes: list[Record],
        history: list[Record],
        expiry: list[Expiry],
        out: BatchWriter,
        *,
        r: _Rendered,
        change: Change,
        i: int,
    ) -> None:
        # change.ref and change.cause are the command's (apply_op): r holds their
        # rendering.
        headers = r.headers
        shown = change.entry or change.previous
        assert shown is not None
        entry = orjson.dumps(entry_dict(shown))
        key = change.key.to_json()
        changes.append((key, entry if change.entry else None, headers))
        history.append(
            (
                key[:-1] + r.hid.encode() + b'%d"]' % i,
                _ACTION[change.action] + entry + r.history_tail,
                headers,
            )
        )
        expires = change.entry.expires_at if change.entry is not None else None
        if expires is not None or (change.previous is not None and change.previous.expires_at):
            expiry.append((key, expires))
        if change.confirm is not None:
            self._confirm(out, change.confirm)

    def _confirm(self, out: BatchWriter, message: dict[str, Any]) -> None:
        """The opt-out confirmation goes straight to the allowed topic: it must reach the
        person after the opt-out, and it is the only message that bypasses the list."""
        t = self.topics
        template = t.allowed_template
        topic = template.format(channel=str(message["channel"]).lower()) if template else t.allowed
        n = self.allowed_partitions[topic]
        destination = str(message["destination"]).encode()
        out.append(
            topic,
            xxhash.xxh3_64_intdigest(destination) % n,
            str(message["message_id"]).encode(),
            orjson.dumps(message),
            [("dnc-confirmation", b"1")],
        )

    def _erase(
        self,
        changes: list[Record],
        history: list[Record],
        expiry: list[Expiry],
        state: ContactState,
        *,
        op: Op,
        cmd: Command,
        hid: str,
    ) -> Outcome:
        """Remove a person's clear-text data and history, keep the suppression: entries
        stored under the contact move under its id (same source, time and expiry; the
        origin, which may name them, is dropped), the listed history records are deleted,
        and one record says an erasure happened."""
        no_headers: list[tuple[str, bytes]] = []
        account, contact = op.key.account, op.key.contact
        token = self.index.ids.token(contact)
        allowed = {contact, token}
        for hk in op.history_keys or ():
            # Only this person's records in this account: a command cannot erase others.
            if isinstance(hk, list) and len(hk) == 5 and hk[0] == account and hk[1] in allowed:
                history.append((orjson.dumps(hk), None, no_headers))
        for slot, e in list(state.entries.items()):
            if e.stored_as_id:
                continue
            moved = Entry(
                e.key._replace(contact=token), e.source, e.added_at, None, e.expires_at, True
            )
            state.entries[slot] = moved
            changes.append((e.key.to_json(), None, no_headers))
            changes.append((moved.key.to_json(), orjson.dumps(entry_dict(moved)), no_headers))
            if e.expires_at is not None:
                expiry.extend([(e.key.to_json(), None), (moved.key.to_json(), e.expires_at)])
        record = {
            "action": "erase",
            "entry": {"account": account, "contact": token, "channel": None, "sender": None},
            "at": format_time(cmd.at),
            "cause": cmd.origin,
        }
        erased = EntryKey(account, token, None, None)
        history.append((_history_key(erased, hid), orjson.dumps(record), no_headers))
        return "erased"


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cycle collection while a batch is evaluated. A batch keeps a few tracked objects
    per op alive until it ends (ops, keys, entries; none in a cycle, so reference
    counting frees them all), and each ~700 of them set off a collection that walks them
    again: a third of the list writer's CPU on an import. Collections resume after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _history_key(key: EntryKey, hid: str) -> bytes:
    return orjson.dumps([key.account, key.contact, key.channel, key.sender, hid])


__all__ = ["Contact", "Contacts", "Evaluated", "Evaluator", "paused_gc"]
