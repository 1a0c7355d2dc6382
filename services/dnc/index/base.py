"""The index's interface: what every role asks of Redis, whatever Redis it is.

Two implementations, chosen once when the index is made (``dnc.index.make_index``):
``SingleIndex`` (``dnc.index.single``: one Redis, every operation one script or command)
and ``ClusterIndex`` (``dnc.index.cluster``: a Redis Cluster, every operation split by
master and run on all masters in parallel). Both run the same Lua scripts
(``dnc.index.scripts``) and pass the same tests.

Layout (``<p>`` = prefix, ``<b>`` = bucket; the braces are a Redis Cluster hash tag, so
everything one lookup touches lives in one slot):

- ``<p>:g:{<b>}`` SET of int32 members, intset-encoded (4 bytes per contact): which
  (account, contact) pairs of the bucket have at least one entry. The gate's lookup
  structure. The member is 32 bits of a 64-bit hash, so two contacts may share one;
  ``<p>:gc:{<b>}`` counts the extra holders so removing one never hides the other, and a
  hit is always confirmed against the exact field below.
- ``<p>:m:{<b>}`` HASH, listpack-encoded: field ``account␟<16-byte contact id>`` (see
  ``dnc.domain.contactids``; Redis never holds a contact) → the contact's entries packed
  as ``channel␟sender␟source␟added_at␟expires_at`` records separated by ␞
  (``dnc.index.layout``).
- ``<p>:meta`` HASH: ``epoch`` (new each time an empty index is initialised), ``layout``,
  ``parts``, and per changelog partition ``chg:<n>`` (next changelog offset to apply) and
  ``cmd:<n>`` (next command offset to process). Offsets change in the same script as data
  (``apply.lua`` for the list writer's commands, ``replay.lua`` for its catch-up).
- ``<p>:adds`` STREAM of contacts that gained their first entry (last 10 minutes), which
  keeps the gates' in-process filters exact without reading the changelog.
- ``<p>:x:<n>`` ZSET, the expiry index of partition n; ``<p>:ref:<ref>`` progress counters.

On a Redis Cluster each master has its own ``<p>:meta:{<tag>}``, ``<p>:adds:{<tag>}``,
``<p>:x:<n>:{<tag>}`` (and ``<p>:slots:{<tag>}``), tagged for one of its slots, and
counters are ``<p>:ref:{<ref>}``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from array import array
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from dnc.domain.contactids import ContactIds
from dnc.domain.entries import Entry
from dnc.index.layout import Layout, unpack_entries
from dnc.index.meta import ContactUpdate, IndexMeta, LookupResult
from dnc.settings import IndexSettings


class Index(Layout, ABC):
    """Async access to the index. One instance per process; ``start``/``stop`` idempotent.

    Every operation raises ``IndexUnavailable`` when Redis cannot be reached, and the
    errors of ``dnc.index.meta.script_error`` when a script refuses."""

    def __init__(
        self, settings: IndexSettings, redis_url: str, ids: ContactIds | None = None
    ) -> None:
        super().__init__(settings, ids)
        self.prefix = settings.prefix
        self.redis_url = redis_url

    # --- lifecycle ----------------------------------------------------------------------

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Index:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    @abstractmethod
    def redis(self) -> aioredis.Redis:
        """A client for keys of one slot each (import jobs, tests). On a cluster it is a
        ``RedisCluster``, which routes each command by its key; the commands callers use
        (hashes, strings, single-slot transactions, SCAN per node) exist on both."""

    # --- the list writer ----------------------------------------------------------------

    @abstractmethod
    async def init(self, parts: int) -> str:
        """Initialise an empty index (or accept an existing one); return its epoch."""

    @abstractmethod
    async def meta(self) -> IndexMeta: ...

    @abstractmethod
    async def load(
        self, fields: Sequence[tuple[int, bytes]]
    ) -> tuple[IndexMeta, list[bytes | None]]:
        """(meta, the packed entries of each (bucket, field), None where it has none)."""

    @abstractmethod
    async def apply(
        self,
        *,
        epoch: str,
        partition: int,
        expected: int | None,
        new_offset: int,
        new_command_offset: int | None,
        updates: Sequence[ContactUpdate],
        now: int,
        counters: Mapping[tuple[str, str], int] | None = None,
        expiry: Sequence[tuple[bytes, int | None]] = (),
    ) -> None:
        """Write a batch's contacts with chg:partition = new_offset (``apply.lua``): a
        compare-and-set on ``expected`` and on the epoch."""

    @abstractmethod
    async def replay(
        self,
        *,
        epoch: str,
        partition: int,
        expected: int | None,
        new_offset: int,
        records: list[Any],
        now: int,
        counters: Mapping[tuple[str, str], int] | None = None,
        expiry: Sequence[tuple[bytes, int | None]] = (),
    ) -> None:
        """Merge changelog records into the index (``replay.lua``), with chg:partition =
        new_offset. ``records``: 5 items per record, in changelog order: bucket, member,
        field, ``entry_slot(channel, sender)``, the packed entry or "" (removed)."""

    @abstractmethod
    async def expiring(self, partition: int, now: int, limit: int = 500) -> list[bytes]:
        """Changelog keys of partition's entries that have expired by ``now``."""

    # --- the gate -----------------------------------------------------------------------

    @abstractmethod
    async def lookup(
        self,
        buckets: array[int],
        members: array[int],
        lengths: array[int],
        fields: bytes,
        adds_after: bytes | None,
    ) -> LookupResult:
        """A batch of contacts in one round trip (one per master on a cluster), with the
        meta and the additions after ``adds_after`` (the filter's position)."""

    @abstractmethod
    async def last_add_id(self) -> bytes:
        """Where a filter built now starts reading additions (``LookupResult.version``)."""

    @abstractmethod
    async def _members(self, command: str, start: int, stop: int) -> list[Any]:
        """``SCARD`` or ``SMEMBERS`` of the lookup sets of buckets start..stop-1."""

    async def contact_count(self, chunk: int = 4096) -> int:
        """How many contacts the lookup sets hold (sizes a gate's filter)."""
        total = 0
        buckets = self.settings.buckets
        for start in range(0, buckets, chunk):
            total += sum(await self._members("SCARD", start, min(start + chunk, buckets)))
        return total

    async def filter_keys(self, chunk: int = 256) -> AsyncIterator[list[int]]:
        """Every contact of the index as filter keys, a few buckets at a time (a gate's
        filter is built from them without holding 10M Python ints at once)."""
        buckets = self.settings.buckets
        for start in range(0, buckets, chunk):
            stop = min(start + chunk, buckets)
            out: list[int] = []
            for bucket, members in enumerate(await self._members("SMEMBERS", start, stop), start):
                # filter_key(bucket, m), inlined: this runs once per contact of the list.
                out.extend(((int(m) + 0x80000000) << 32) | bucket for m in members)
            yield out

    # --- the API ------------------------------------------------------------------------

    @abstractmethod
    async def _packed_entries(self, bucket: int, field: bytes) -> bytes | None: ...

    async def entries_of(self, account: str, contact: str) -> list[Entry]:
        """All entries of one contact in one account (the check endpoint)."""
        bucket, _member, f = self.locate(account, contact)
        found = await self._packed_entries(bucket, f)
        return unpack_entries(account, contact, found) if found else []

    async def entries_of_many(
        self, account: str, contacts: Sequence[str], chunk: int = 5000
    ) -> list[list[Entry]]:
        """Entries of many contacts of one account (audience dry run, batch check): one
        round trip per ``chunk`` contacts, through the same script the list writer reads
        with. Contacts must be canonical (``dnc.domain.contacts``) or stored ids."""
        out: list[list[Entry]] = []
        for start in range(0, len(contacts), chunk):
            part = contacts[start : start + chunk]
            located = [self.locate(account, c) for c in part]
            _meta, values = await self.load([(b, f) for b, _m, f in located])
            out.extend(
                unpack_entries(account, c, raw) if raw else []
                for c, raw in zip(part, values, strict=True)
            )
        return out

    @abstractmethod
    async def progress(self, ref: str) -> dict[str, int]:
        """The counters the list writer keeps for a command ref (an import's progress)."""
