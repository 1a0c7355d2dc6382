"""The list commands of an import: rows → ``add`` operations, grouped by partition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dnc.domain.entries import SENDERS, Command, EntryKey, Op, Source
from dnc.domain.timestamps import now_ms
from dnc.files.imports import Valid

MAX_OPS = 1000
# A command is one Kafka record; it must fit a producer batch (kafka.MAX_BATCH_BYTES).
MAX_COMMAND_BYTES = 256 * 1024


class CommandBuilder:
    """Rows → add commands, grouped by partition, at most MAX_OPS / MAX_COMMAND_BYTES
    each (a smaller record costs the list writer the same per op; more ops per record
    cost it fewer records)."""

    def __init__(
        self,
        accounts: list[str],
        ref: str,
        origin: dict[str, Any],
        partition_of: Callable[[str, str], int],
    ) -> None:
        self.accounts, self.ref, self.origin, self.partition_of = (
            accounts,
            ref,
            origin,
            partition_of,
        )
        # Privacy mode: contacts become contact ids before any command carries them.
        self.stored: Callable[[str], str] = str
        self.expires_at: int | None = None

    def __call__(self, rows: list[Valid], shown: dict[str, str] | None = None) -> list[Command]:
        """``shown``: senders as the file writes them (kept form → as written)."""
        at = now_ms()
        out: list[Command] = []
        groups: dict[int, tuple[list[Op], list[int]]] = {}
        shown = shown or {}
        partition_of, source, stored, expires = (
            self.partition_of,
            Source.IMPORT,
            self.stored,
            self.expires_at,
        )
        for raw_contact, channel, sender in rows:
            contact = stored(raw_contact)
            for account in self.accounts:
                p = partition_of(account, contact)
                group = groups.get(p)
                if group is None:
                    group = groups[p] = ([], [0])
                ops, size = group
                ops.append(Op("add", EntryKey(account, contact, channel, sender), source, expires))
                size[0] += 96 + len(account) + len(contact) + len(sender or "")
                if sender in shown:  # the origin names its written form (at most once)
                    size[0] += 8 + len(sender) + len(shown[sender])
                if len(ops) >= MAX_OPS or size[0] >= MAX_COMMAND_BYTES:
                    out.append(Command(ops, at, self._cause(ops, shown), self.ref))
                    del groups[p]
        cause = self._cause
        out.extend(Command(ops, at, cause(ops, shown), self.ref) for ops, _ in groups.values())
        return out

    def _cause(self, ops: list[Op], shown: dict[str, str]) -> dict[str, Any]:
        """The origin, with the written form of these ops' senders that have one."""
        if not shown:
            return self.origin
        written = {s: shown[s] for o in ops if (s := o.key.sender) is not None and s in shown}
        return {**self.origin, SENDERS: written} if written else self.origin
