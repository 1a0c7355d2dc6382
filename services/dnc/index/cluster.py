"""The index on a Redis Cluster (``DNC_INDEX__CLUSTER=true``; ``DNC_REDIS_URL`` = any node).

The bucket keys are hash-tagged per bucket, so they spread over the cluster's slots. Each
operation is split by node (``dnc.index.topology``) and runs one script per node, all in
parallel, with the node's buckets and the node's own meta, additions stream and expiry
index (keys tagged for a slot of that node): data and offsets change together *per node*.
The index's offset of a partition is the minimum over the nodes, so:

- a node that lost its data (restarted empty: no meta) or its last writes (offsets went
  back) makes the index incomplete or behind: gates wait, list writers catch up from the
  minimum, and nodes already past a replayed batch skip it (see apply.lua);
- the gate reads every node's meta in each batch's round trip, so a loss is noticed in
  the next batch.

Slots that move (resharding) make a script fail before it writes (a key that is not on
the node); the call is redone, whole, with a fresh slot map. A node that *gained* slots
holds data written under another node's offsets: ``init`` gives it a new epoch without
offsets and the list writers rebuild it from the changelog (see init.lua).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from array import array
from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from dnc.domain.contactids import ContactIds
from dnc.errors import IndexUnavailable
from dnc.index import scripts
from dnc.index.base import Index
from dnc.index.layout import as_bytes, expiry_arg
from dnc.index.meta import (
    ContactUpdate,
    IndexMeta,
    LookupResult,
    format_versions,
    parse_versions,
)
from dnc.index.topology import META_AGE_S, Node, Router, Topologies, Topology
from dnc.settings import IndexSettings


class ClusterIndex(Router, Index):
    def __init__(
        self, settings: IndexSettings, redis_url: str, ids: ContactIds | None = None
    ) -> None:
        Index.__init__(self, settings, redis_url, ids)
        topologies = Topologies(redis_url, self.prefix, settings.buckets, settings.redis_timeout_s)
        Router.__init__(self, topologies, {})
        self._client: RedisCluster | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        timeout = self.settings.redis_timeout_s
        self._client = RedisCluster.from_url(
            self.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        # Called per master (``Router._script``); registered here for the scripts' digests.
        self.scripts = scripts.register(self._client)
        # Discover the cluster here, on the caller's event loop: redis-py's cluster
        # transactions (``Index.redis``, import jobs) run each queued command on a loop of
        # their own, and a client first initialised there keeps connections to a closed
        # loop. If Redis is down now, plain commands initialise it later.
        with contextlib.suppress(RedisError, RedisClusterException, OSError, TimeoutError):
            await asyncio.wait_for(self._client.initialize(), timeout)

    async def stop(self) -> None:
        if self._client is None:
            return
        client, self._client = self._client, None
        await self.topologies.close()
        await client.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("Index is not started")
        return cast(aioredis.Redis, self._client)

    def _key_node(self, topology: Topology, changelog_key: bytes) -> int:
        account, contact = orjson.loads(changelog_key)[:2]
        return topology.node_of(self.locate(str(account), str(contact))[0])

    # --- reads --------------------------------------------------------------------------

    async def meta(self) -> IndexMeta:
        async def op(topology: Topology) -> IndexMeta:
            raw = await self._each(
                [self._command(n, n.client.hgetall(n.meta_key)) for n in topology.nodes]
            )
            metas = {
                n.tag: IndexMeta.from_flat([as_bytes(x) for kv in r.items() for x in kv])
                for n, r in zip(topology.nodes, raw, strict=True)
            }
            return topology.combine(metas, self.layout)

        return await self._routed(op, META_AGE_S)

    async def load(
        self, fields: Sequence[tuple[int, bytes]]
    ) -> tuple[IndexMeta, list[bytes | None]]:
        async def op(topology: Topology) -> tuple[IndexMeta, list[bytes | None]]:
            args: list[list[Any]] = [[self.prefix] for _ in topology.nodes]
            where: list[list[int]] = [[] for _ in topology.nodes]
            for i, (bucket, f) in enumerate(fields):
                k = topology.node_of(bucket)
                args[k] += (bucket, f)
                where[k].append(i)
            replies = await self._each(
                [
                    self._script("load", n, [n.meta_key], a)
                    for n, a in zip(topology.nodes, args, strict=True)
                ]
            )
            values: list[bytes | None] = [None] * len(fields)
            metas = {}
            for n, (flat, found), positions in zip(topology.nodes, replies, where, strict=True):
                metas[n.tag] = IndexMeta.from_flat(flat)
                for i, v in zip(positions, found, strict=True):
                    values[i] = v or None
            return topology.combine(metas, self.layout), values

        return await self._routed(op)

    async def lookup(
        self,
        buckets: array[int],
        members: array[int],
        lengths: array[int],
        fields: bytes,
        adds_after: bytes | None,
    ) -> LookupResult:
        versions = parse_versions(adds_after) if adds_after is not None else None

        async def op(topology: Topology) -> LookupResult:
            nodes = topology.nodes
            per: list[tuple[array[int], array[int], array[int], bytearray, list[int]]] = [
                (array("I"), array("i"), array("H"), bytearray(), []) for _ in nodes
            ]
            pos = 0
            for i, (b, m, n) in enumerate(zip(buckets, members, lengths, strict=True)):
                bb, mm, ll, ff, where = per[topology.node_of(b)]
                bb.append(b)
                mm.append(m)
                ll.append(n)
                ff += fields[pos : pos + n]
                where.append(i)
                pos += n
            calls = []
            for node, (bb, mm, ll, ff, _w) in zip(nodes, per, strict=True):
                after = versions.get(node.tag, b"") if versions is not None else b""
                args = [self.prefix, bb.tobytes(), mm.tobytes(), ll.tobytes(), bytes(ff), after]
                calls.append(self._script("lookup", node, [node.meta_key, node.adds_key], args))
            replies = await self._each(calls)
            metas, hits = {}, {}
            adds: list[tuple[bytes, bytes]] = []
            seen: dict[str, bytes] = {}
            for node, (meta_flat, hits_flat, node_adds), p in zip(nodes, replies, per, strict=True):
                metas[node.tag] = IndexMeta.from_flat(meta_flat)
                where = p[4]
                for j in range(0, len(hits_flat), 2):
                    hits[where[int(hits_flat[j])]] = hits_flat[j + 1]
                if versions is not None and node.tag in versions:
                    got = [(eid, kv[1]) for eid, kv in node_adds]
                    adds += got
                    seen[node.tag] = got[-1][0] if got else versions[node.tag]
            meta = topology.combine(metas, self.layout)
            if versions is None:
                return LookupResult(meta, hits, None, None)
            # A node the position does not name (new since the filter was built) is left
            # out of it, which makes the filter unusable (IndexMeta.adds_trimmed).
            return LookupResult(meta, hits, adds, format_versions(seen))

        return await self._routed(op)

    async def last_add_id(self) -> bytes:
        async def op(topology: Topology) -> bytes:
            lasts = await self._each(
                [self._command(n, n.client.xrevrange(n.adds_key, count=1)) for n in topology.nodes]
            )
            return format_versions(
                {
                    n.tag: as_bytes(last[0][0] or b"0-0") if last else b"0-0"
                    for n, last in zip(topology.nodes, lasts, strict=True)
                }
            )

        return await self._routed(op)

    async def expiring(self, partition: int, now: int, limit: int = 500) -> list[bytes]:
        async def op(topology: Topology) -> list[bytes]:
            nodes = topology.nodes
            found = await self._each(
                [
                    self._command(
                        n,
                        n.client.zrangebyscore(
                            n.x_key(self.prefix, partition), "-inf", now, start=0, num=limit
                        ),
                    )
                    for n in nodes
                ]
            )
            out: dict[bytes, None] = {}
            for k, (node, keys) in enumerate(zip(nodes, found, strict=True)):
                foreign = []
                for raw in keys:
                    key = raw if isinstance(raw, bytes) else str(raw).encode()
                    if self._key_node(topology, key) == k:
                        out[key] = None
                    else:
                        foreign.append(key)
                if foreign:
                    # Left behind by a slot that moved to another node (which has its own
                    # record of it): not this node's to sweep.
                    xkey = node.x_key(self.prefix, partition)
                    await self._command(node, node.client.zrem(xkey, *foreign))
            return list(out)[:limit]

        return await self._routed(op)

    async def _packed_entries(self, bucket: int, field: bytes) -> bytes | None:
        try:
            raw = await self.redis.hget(f"{self.prefix}:m:{{{bucket}}}", field)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise IndexUnavailable(f"redis cluster: {exc}") from exc
        return as_bytes(raw) if raw else None

    async def progress(self, ref: str) -> dict[str, int]:
        try:
            raw = await self.redis.hgetall(f"{self.prefix}:ref:{{{ref}}}")
        except (RedisError, RedisClusterException, OSError) as exc:
            raise IndexUnavailable(f"redis cluster: {exc}") from exc
        return {as_bytes(k).decode(): int(v) for k, v in raw.items()}

    async def _members(self, command: str, start: int, stop: int) -> list[Any]:
        """One pipeline per master, in parallel."""

        async def pipelined(node: Node, buckets: list[int]) -> list[Any]:
            pipe = node.client.pipeline(transaction=False)
            for b in buckets:
                pipe.execute_command(command, f"{self.prefix}:g:{{{b}}}")
            return await pipe.execute()

        async def op(topology: Topology) -> list[Any]:
            groups: list[list[int]] = [[] for _ in topology.nodes]
            for b in range(start, stop):
                groups[topology.node_of(b)].append(b)
            replies = await self._each(
                [
                    self._command(n, pipelined(n, g))
                    for n, g in zip(topology.nodes, groups, strict=True)
                ]
            )
            out: list[Any] = [None] * (stop - start)
            for group, reply in zip(groups, replies, strict=True):
                for b, value in zip(group, reply, strict=True):
                    out[b - start] = value
            return out

        return await self._routed(op)

    # --- writes -------------------------------------------------------------------------

    async def init(self, parts: int) -> str:
        async def op(topology: Topology) -> str:
            epochs = await self._each(
                [
                    self._script(
                        "init",
                        n,
                        [n.meta_key, n.slots_key],
                        [secrets.token_hex(8), self.layout, parts, n.fp, n.ranges],
                    )
                    for n in topology.nodes
                ]
            )
            return ",".join(
                sorted(
                    f"{n.tag}={bytes(e).decode()}"
                    for n, e in zip(topology.nodes, epochs, strict=True)
                )
            )

        # A reconciliation must not follow an old map: read it first.
        await self.topologies.get(force=True)
        return await self._routed(op)

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
        async def op(topology: Topology) -> None:
            epochs = topology.epochs(epoch)
            nodes = topology.nodes
            contacts: list[list[Any]] = [[] for _ in nodes]
            blobs = [bytearray() for _ in nodes]
            for u in updates:
                k = topology.node_of(u.bucket)
                contacts[k] += (u.bucket, u.member, u.field, u.value)
                if u.value:
                    blobs[k] += struct.pack("<Ii", u.bucket, u.member)
            expiries: list[list[tuple[bytes, int | None]]] = [[] for _ in nodes]
            for key, ms in expiry:
                expiries[self._key_node(topology, key)].append((key, ms))
            progress = topology.split_counters(self.prefix, counters)
            calls = []
            for k, n in enumerate(nodes):
                args: list[Any] = [
                    self.prefix,
                    epochs[n.tag],
                    partition,
                    "" if expected is None else expected,
                    new_offset,
                    "" if new_command_offset is None else new_command_offset,
                    now,
                    bytes(blobs[k]),
                    progress[k],
                    expiry_arg(expiries[k]),
                    n.fp,
                    *contacts[k],
                ]
                keys = [n.meta_key, n.adds_key, n.x_key(self.prefix, partition)]
                calls.append(self._script("apply", n, keys, args))
            await self._each(calls)

        await self._routed(op)

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
        async def op(topology: Topology) -> None:
            epochs = topology.epochs(epoch)
            nodes = topology.nodes
            per: list[list[Any]] = [[] for _ in nodes]
            expiries: list[list[tuple[bytes, int | None]]] = [[] for _ in nodes]
            # The catch-up gives one expiry change per record, in order: the record's
            # bucket says where it goes. Otherwise each key is located on its own.
            aligned = len(expiry) * 5 == len(records)
            for i in range(0, len(records), 5):
                k = topology.node_of(records[i])
                per[k] += records[i : i + 5]
                if aligned:
                    expiries[k].append(expiry[i // 5])
            if not aligned:
                for key, ms in expiry:
                    expiries[self._key_node(topology, key)].append((key, ms))
            progress = topology.split_counters(self.prefix, counters)
            calls = []
            for k, n in enumerate(nodes):
                args: list[Any] = [
                    self.prefix,
                    epochs[n.tag],
                    partition,
                    "" if expected is None else expected,
                    new_offset,
                    now,
                    progress[k],
                    expiry_arg(expiries[k]),
                    n.fp,
                    *per[k],
                ]
                keys = [n.meta_key, n.adds_key, n.x_key(self.prefix, partition)]
                calls.append(self._script("replay", n, keys, args))
            await self._each(calls)

        await self._routed(op)
