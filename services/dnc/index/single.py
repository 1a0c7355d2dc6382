"""The Redis index: key layout, entry packing, and the atomic scripts that read and write it.

Layout (``<p>`` = prefix, ``<b>`` = bucket; the braces are a Redis Cluster hash tag, so
everything one lookup touches lives in one slot):

- ``<p>:g:{<b>}`` SET of int32 members, intset-encoded (4 bytes per contact): which
  (account, contact) pairs of the bucket have at least one entry. The gate's lookup
  structure. The member is 32 bits of a 64-bit hash, so two contacts may share one;
  ``<p>:gc:{<b>}`` counts the extra holders so removing one never hides the other, and a
  hit is always confirmed against the exact field below.
- ``<p>:m:{<b>}`` HASH, listpack-encoded: field ``account␟<16-byte contact id>`` (see
  ``dnc.contactids``; Redis never holds a contact) → the contact's entries packed as
  ``channel␟sender␟source␟added_at␟expires_at`` records separated by ␞.
- ``<p>:meta`` HASH: ``epoch`` (new each time an empty index is initialised), ``layout``,
  ``parts``, and per changelog partition ``chg:<n>`` (next changelog offset to apply) and
  ``cmd:<n>`` (next command offset to process). Offsets change in the same script as data
  (``apply.lua`` for the list writer's commands, ``replay.lua`` for its catch-up).
- ``<p>:adds`` STREAM of contacts that gained their first entry (last 10 minutes), which
  keeps the gates' in-process filters exact without reading the changelog.
- ``<p>:x:<n>`` ZSET, the expiry index of partition n; ``<p>:ref:<ref>`` progress counters.

On a Redis Cluster (``dnc.index_cluster``) each master has its own ``<p>:meta:{<tag>}``,
``<p>:adds:{<tag>}``, ``<p>:x:<n>:{<tag>}`` (and ``<p>:slots:{<tag>}``), tagged for one of
its slots, and counters are ``<p>:ref:{<ref>}``.
"""

from __future__ import annotations

import secrets
import struct
from array import array
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib import resources
from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dnc.domain.contactids import ContactIds
from dnc.domain.entries import Entry
from dnc.errors import IndexUnavailable
from dnc.index.cluster import ClusterIndex
from dnc.index.connections import connection_options
from dnc.index.layout import (
    CHANNEL_CODE,
    CODE_CHANNEL,
    CODE_SOURCE,
    REC,
    SEP,
    SOURCE_CODE,
    Layout,
    account_prefix,
    as_bytes,
    contact_field,
    contact_ids,
    entry_slot,
    expiry_arg,
    filter_key,
    fingerprint,
    list_partition,
    pack_entries,
    progress_arg,
    unpack_entries,
)
from dnc.index.meta import ContactUpdate, IndexMeta, LookupResult, script_error
from dnc.settings import IndexSettings, Settings


class Index(Layout):
    """Async access to the index. One instance per process; ``start``/``stop`` idempotent.
    On a single Redis every operation is one script or command; with ``cluster`` set in
    the settings, ``ClusterIndex`` runs them per node."""

    def __init__(
        self, settings: IndexSettings, redis_url: str, ids: ContactIds | None = None
    ) -> None:
        super().__init__(settings, ids)
        self.prefix = settings.prefix
        self._redis_url = redis_url
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._cluster: ClusterIndex | None = None
        self.meta_key = f"{self.prefix}:meta"
        self.adds_key = f"{self.prefix}:adds"

    @classmethod
    def from_settings(cls, settings: Settings) -> Index:
        return cls(settings.index, settings.redis_url, contact_ids(settings))

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        timeout = self.settings.redis_timeout_s
        self._client = aioredis.Redis.from_url(
            self._redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
            **connection_options(self._redis_url),
        )
        for name in ("apply", "init", "load", "lookup", "replay"):
            self._scripts[name] = self._client.register_script(lua_script(name))
        if self.settings.cluster:
            self._cluster = ClusterIndex(self, self.prefix, self._redis_url, self._scripts)
            await self._cluster.start()

    async def stop(self) -> None:
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await cluster.stop()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> Index:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def redis(self) -> aioredis.Redis:
        """A client for keys of one slot each (import jobs, tests). On a cluster it is a
        ``RedisCluster``, which routes each command by its key; the commands callers use
        (hashes, strings, single-slot transactions, SCAN per node) exist on both."""
        if self._client is None:
            raise RuntimeError("Index is not started")
        if self._cluster is not None:
            return cast(aioredis.Redis, self._cluster.client)
        return self._client

    @property
    def cluster(self) -> ClusterIndex | None:
        return self._cluster

    # --- operations -----------------------------------------------------------------

    async def _call(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        except RedisError as exc:
            raise script_error(exc) from None

    async def init(self, parts: int) -> str:
        """Initialise an empty index (or accept an existing one); return its epoch."""
        if self._cluster is not None:
            return await self._cluster.init(parts)
        epoch = await self._call(
            "init", [self.meta_key], [secrets.token_hex(8), self.layout, parts]
        )
        return bytes(epoch).decode()

    async def meta(self) -> IndexMeta:
        if self._cluster is not None:
            return await self._cluster.meta()
        try:
            flat = await self.redis.hgetall(self.meta_key)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        return IndexMeta.from_flat([as_bytes(x) for kv in flat.items() for x in kv])

    async def load(
        self, fields: Sequence[tuple[int, bytes]]
    ) -> tuple[IndexMeta, list[bytes | None]]:
        if self._cluster is not None:
            return await self._cluster.load(fields)
        args: list[Any] = [self.prefix]
        for bucket, f in fields:
            args.append(bucket)
            args.append(f)
        flat, values = await self._call("load", [self.meta_key], args)
        return IndexMeta.from_flat(flat), [v or None for v in values]

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
        if self._cluster is not None:
            await self._cluster.apply(
                epoch=epoch,
                partition=partition,
                expected=expected,
                new_offset=new_offset,
                new_command_offset=new_command_offset,
                updates=updates,
                now=now,
                counters=counters,
                expiry=expiry,
            )
            return
        blob = bytearray()
        args: list[Any] = [
            self.prefix,
            epoch,
            partition,
            "" if expected is None else expected,
            new_offset,
            "" if new_command_offset is None else new_command_offset,
            now,
            b"",
            progress_arg(counters),
            expiry_arg(expiry),
            "",  # no slot fingerprint: a single Redis
        ]
        for u in updates:
            args += (u.bucket, u.member, u.field, u.value)
            if u.value:
                blob += struct.pack("<Ii", u.bucket, u.member)
        # Every contact that now has entries is announced (a superset of "new" ones is
        # harmless: the gates' filters only ever grow between rebuilds).
        args[7] = bytes(blob)
        await self._call("apply", self._write_keys(partition), args)

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
        if self._cluster is not None:
            await self._cluster.replay(
                epoch=epoch,
                partition=partition,
                expected=expected,
                new_offset=new_offset,
                records=records,
                now=now,
                counters=counters,
                expiry=expiry,
            )
            return
        args: list[Any] = [
            self.prefix,
            epoch,
            partition,
            "" if expected is None else expected,
            new_offset,
            now,
            progress_arg(counters),
            expiry_arg(expiry),
            "",  # no slot fingerprint: a single Redis
        ]
        args += records
        await self._call("replay", self._write_keys(partition), args)

    def _write_keys(self, partition: int) -> list[Any]:
        return [self.meta_key, self.adds_key, f"{self.prefix}:x:{partition}"]

    async def lookup(
        self,
        buckets: array[int],
        members: array[int],
        lengths: array[int],
        fields: bytes,
        adds_after: bytes | None,
    ) -> LookupResult:
        if self._cluster is not None:
            return await self._cluster.lookup(buckets, members, lengths, fields, adds_after)
        meta_flat, hits_flat, adds = await self._call(
            "lookup",
            [self.meta_key, self.adds_key],
            [
                self.prefix,
                buckets.tobytes(),
                members.tobytes(),
                lengths.tobytes(),
                fields,
                adds_after or b"",
            ],
        )
        hits = {int(hits_flat[i]): hits_flat[i + 1] for i in range(0, len(hits_flat), 2)}
        if adds_after is None:
            return LookupResult(IndexMeta.from_flat(meta_flat), hits, None, None)
        add_list = [(eid, kv[1]) for eid, kv in adds]
        version = add_list[-1][0] if add_list else adds_after
        return LookupResult(IndexMeta.from_flat(meta_flat), hits, add_list, version)

    async def entries_of(self, account: str, contact: str) -> list[Entry]:
        """All entries of one contact in one account (the check endpoint)."""
        bucket, _member, f = self.locate(account, contact)
        if self._cluster is not None:
            found = await self._cluster.entries_raw(bucket, f)
            return unpack_entries(account, contact, found) if found else []
        try:
            raw = await self.redis.hget(f"{self.prefix}:m:{{{bucket}}}", f)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        return unpack_entries(account, contact, as_bytes(raw)) if raw else []

    async def entries_of_many(
        self, account: str, contacts: Sequence[str], chunk: int = 5000
    ) -> list[list[Entry]]:
        """Entries of many contacts of one account (audience dry run, batch check): one
        round trip per ``chunk`` contacts, through the same script the list writer reads
        with. Contacts must be canonical (``dnc.contacts``) or stored ids."""
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

    async def expiring(self, partition: int, now: int, limit: int = 500) -> list[bytes]:
        """Changelog keys of partition's entries that have expired by ``now``."""
        if self._cluster is not None:
            return await self._cluster.expiring(partition, now, limit)
        try:
            keys = await self.redis.zrangebyscore(
                f"{self.prefix}:x:{partition}", "-inf", now, start=0, num=limit
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        return [k if isinstance(k, bytes) else str(k).encode() for k in keys]

    async def progress(self, ref: str) -> dict[str, int]:
        if self._cluster is not None:
            return await self._cluster.progress(ref)
        raw = await self.redis.hgetall(f"{self.prefix}:ref:{ref}")
        return {as_bytes(k).decode(): int(v) for k, v in raw.items()}

    async def last_add_id(self) -> bytes:
        """Where a filter built now starts reading additions (``LookupResult.version``)."""
        if self._cluster is not None:
            return await self._cluster.last_add_id()
        last = await self.redis.xrevrange(self.adds_key, count=1)
        return as_bytes(last[0][0] or b"0-0") if last else b"0-0"

    async def contact_count(self, chunk: int = 4096) -> int:
        """How many contacts the lookup sets hold (sizes a gate's filter)."""
        total = 0
        buckets = self.settings.buckets
        for start in range(0, buckets, chunk):
            stop = min(start + chunk, buckets)
            if self._cluster is not None:
                total += sum(await self._cluster.per_bucket("SCARD", start, stop))
                continue
            pipe = self.redis.pipeline(transaction=False)
            for b in range(start, stop):
                pipe.scard(f"{self.prefix}:g:{{{b}}}")
            total += sum(await pipe.execute())
        return total

    async def filter_keys(self, chunk: int = 256) -> AsyncIterator[list[int]]:
        """Every contact of the index as filter keys, a few buckets at a time (a gate's
        filter is built from them without holding 10M Python ints at once)."""
        buckets = self.settings.buckets
        if self._cluster is not None:
            async for keys in self._cluster.filter_keys(buckets, chunk):
                yield keys
            return
        for start in range(0, buckets, chunk):
            pipe = self.redis.pipeline(transaction=False)
            for b in range(start, min(start + chunk, buckets)):
                pipe.smembers(f"{self.prefix}:g:{{{b}}}")
            out: list[int] = []
            for bucket, members in enumerate(await pipe.execute(), start):
                # filter_key(bucket, m), inlined: this runs once per contact of the list.
                out.extend(((int(m) + 0x80000000) << 32) | bucket for m in members)
            yield out


INCLUDE = "-- #include "


def lua_script(name: str) -> str:
    """The text of ``lua/<name>.lua``, with each ``-- #include <file>`` line replaced by
    that file (the opening the writing scripts share: ``lua/writes.lua``)."""
    lua = resources.files("dnc.index").joinpath("lua")
    lines = lua.joinpath(f"{name}.lua").read_text().split("\n")
    return "\n".join(
        lua.joinpath(line.removeprefix(INCLUDE).strip()).read_text().rstrip("\n")
        if line.startswith(INCLUDE)
        else line
        for line in lines
    )


__all__ = [
    "CHANNEL_CODE",
    "CODE_CHANNEL",
    "CODE_SOURCE",
    "REC",
    "SEP",
    "SOURCE_CODE",
    "ContactUpdate",
    "Index",
    "IndexMeta",
    "Layout",
    "LookupResult",
    "account_prefix",
    "contact_field",
    "contact_ids",
    "entry_slot",
    "filter_key",
    "fingerprint",
    "list_partition",
    "pack_entries",
    "unpack_entries",
]
