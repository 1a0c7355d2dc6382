"""The list writer's evaluation of a batch of commands for one partition.

Given the current entries of the contacts the commands touch (from the index), apply each
command in order (``dnc.entries.apply_op``; erasure here) and append what follows to the
partition's transaction: changelog records, history records, opt-out confirmations. What
Redis must become (each changed contact's packed entries, the expiry index) is collected
for ``Index.apply`` after the transaction commits.

History records have unique keys (``[account, contact, channel, sender, "<p>-<offset>-<i>"]``)
in a compacted topic: nothing is ever compacted away except what an erasure tombstones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from dnc.changelog import entry_dict, format_time
from dnc.contactids import is_token
from dnc.entries import Change, Command, ContactState, Entry, EntryKey, Op, Outcome, apply_op
from dnc.index import ContactUpdate, Index, IndexMeta, pack_entries, unpack_entries
from dnc.kafka import BatchWriter
from dnc.settings import Settings

Expiry = tuple[bytes, int | None]  # changelog key, expiry ms (None: not in the expiry index)


@dataclass(slots=True)
class Evaluated:
    """What a batch leaves to do once its transaction has committed."""

    updates: list[ContactUpdate] = field(default_factory=list)
    expiry: list[Expiry] = field(default_factory=list)
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(slots=True)
class _Batch:
    out: BatchWriter
    p: int
    done: Evaluated


class ListWriter:
    def __init__(
        self, settings: Settings, index: Index, allowed_partitions: dict[str, int]
    ) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.index = index
        self.allowed_partitions = allowed_partitions
        self._field_of: dict[tuple[str, str], bytes] = {}
        self._slot_of: dict[bytes, tuple[int, int]] = {}

    async def load(
        self, acs: set[tuple[str, str]]
    ) -> tuple[IndexMeta, dict[tuple[str, str], ContactState]]:
        """(index meta, the current entries of each contact). Two forms of one contact (its
        number and its stored id) share one state, as they share one index field."""
        located = {ac: self.index.locate(*ac) for ac in acs}
        by_field = {f: (b, m, ac) for ac, (b, m, f) in located.items()}
        self._field_of = {ac: f for ac, (_b, _m, f) in located.items()}
        self._slot_of = {f: (b, m) for f, (b, m, _ac) in by_field.items()}
        fields = list(by_field)
        meta, values = await self.index.load([(by_field[f][0], f) for f in fields])
        shared: dict[bytes, ContactState] = {}
        for f, raw in zip(fields, values, strict=True):
            account, contact = by_field[f][2]
            state = ContactState()
            if raw:
                entries = unpack_entries(account, contact, raw)
                if any(e.stored_as_id for e in entries):
                    entries = unpack_entries(account, contact, raw, self.index.ids.token(contact))
                for e in entries:
                    state.entries[(e.key.channel, e.key.sender)] = e
            shared[f] = state
        return meta, {ac: shared[located[ac][2]] for ac in acs}

    def evaluate(
        self,
        p: int,
        commands: Sequence[tuple[int, Command]],
        states: dict[tuple[str, str], ContactState],
        out: BatchWriter,
    ) -> Evaluated:
        done = Evaluated()
        batch = _Batch(out, p, done)
        changed: dict[bytes, ContactState] = {}
        for offset, cmd in commands:
            for i, op in enumerate(cmd.ops):
                ac = (op.key.account, op.key.contact)
                state = states[ac]
                hid = f"{p}-{offset}-{i}"
                if op.op == "erase":
                    outcome: Outcome = self._erase(batch, state, op, cmd, hid)
                    changed[self._field_of[ac]] = state
                else:
                    outcome, change = apply_op(state, op, cmd)
                    if change is not None:
                        changed[self._field_of[ac]] = state
                        self._emit(batch, change, cmd.at, hid)
                if cmd.ref:
                    done.counters[(cmd.ref, outcome)] += 1
        for f, state in changed.items():
            bucket, member = self._slot_of[f]
            done.updates.append(
                ContactUpdate(bucket, member, f, pack_entries(state.entries.values()))
            )
        return done

    def _emit(self, b: _Batch, change: Change, at: int, hid: str) -> None:
        t, out, p, done = self.topics, b.out, b.p, b.done
        headers = [("dnc-ref", change.ref.encode())] if change.ref else []
        key = change.key.to_json()
        shown = change.entry or change.previous
        assert shown is not None
        # One rendering serves the changelog value and the history record, and times are
        # formatted once per command: formatting them dominated this loop.
        entry = entry_dict(shown)
        out.append(t.changes, p, key, orjson.dumps(entry) if change.entry else None, headers)
        history = {
            "action": change.action,
            "entry": entry,
            "at": format_time(at),
            "cause": change.cause,
        }
        out.append(t.history, p, _history_key(change.key, hid), orjson.dumps(history), headers)
        expires = change.entry.expires_at if change.entry is not None else None
        if expires is not None or (change.previous is not None and change.previous.expires_at):
            done.expiry.append((key, expires))
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

    def _erase(self, b: _Batch, state: ContactState, op: Op, cmd: Command, hid: str) -> Outcome:
        """Remove a person's clear-text data and history, keep the suppression: entries
        stored under the contact move under its id (same source, time and expiry; the
        origin, which may name them, is dropped), the listed history records are deleted,
        and one record says an erasure happened."""
        t, out, p, done = self.topics, b.out, b.p, b.done
        account, contact = op.key.account, op.key.contact
        token = self.index.ids.token(contact)
        allowed = {contact, token}
        for hk in op.history_keys or ():
            # Only this person's records in this account: a command cannot erase others.
            if isinstance(hk, list) and len(hk) == 5 and hk[0] == account and hk[1] in allowed:
                out.append(t.history, p, orjson.dumps(hk), None)
        for slot, e in list(state.entries.items()):
            if e.stored_as_id:
                continue
            moved = Entry(
                e.key._replace(contact=token), e.source, e.added_at, None, e.expires_at, True
            )
            state.entries[slot] = moved
            out.append(t.changes, p, e.key.to_json(), None)
            out.append(t.changes, p, moved.key.to_json(), orjson.dumps(entry_dict(moved)))
            if e.expires_at is not None:
                done.expiry += [(e.key.to_json(), None), (moved.key.to_json(), e.expires_at)]
        record = {
            "action": "erase",
            "entry": {"account": account, "contact": token, "channel": None, "sender": None},
            "at": format_time(cmd.at),
            "cause": cmd.origin,
        }
        erased = EntryKey(account, token, None, None)
        out.append(t.history, p, _history_key(erased, hid), orjson.dumps(record))
        return "erased"


def _history_key(key: EntryKey, hid: str) -> bytes:
    return orjson.dumps([key.account, key.contact, key.channel, key.sender, hid])


__all__ = ["Evaluated", "ListWriter", "is_token"]
