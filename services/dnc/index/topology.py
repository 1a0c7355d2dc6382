"""Which Redis Cluster node serves what: the slot map (``CLUSTER SLOTS``), a client per
master, the hash tag of each master's own keys, and the calls that reach them.

Every master gets a tag whose slot it serves: the smallest ``n<i>`` that hashes into its
slots. Its meta, additions stream, expiry indexes and slot record carry that tag, so one
script on the node can change them with the node's buckets. The tag follows from the slot
map alone: every process that reads the same map names the same keys.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from array import array
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
import xxhash
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from dnc.errors import ConfigurationError, IndexDiverged, IndexUnavailable
from dnc.index.connections import connection_options
from dnc.index.layout import progress_arg
from dnc.index.meta import IndexMeta, script_error

SLOTS = 16384
NO_NODE = 255
# The slot map is read again at least this often, so a reshard is noticed even by a
# process whose calls never touch a moved slot; the list writers' meta reads (every
# quarter second when idle) use ``META_AGE_S``: they are the ones that reconcile a master
# whose slots changed, and the gates wait for them meanwhile.
MAX_AGE_S = 30.0
META_AGE_S = 1.0
# A node meta written for other slots than the map says: re-read the map first if it is
# older than this (the map may be the stale one).
FRESH_S = 1.0


@dataclass(slots=True, eq=False)
class Node:
    """A master: its address, client, tag, and the slots it serves ("lo-hi,..." and a
    fingerprint of that text, which its meta records)."""

    addr: str
    client: aioredis.Redis
    tag: str
    ranges: str
    fp: str
    meta_key: str
    adds_key: str
    slots_key: str

    def x_key(self, prefix: str, partition: int) -> str:
        return f"{prefix}:x:{partition}:{{{self.tag}}}"


@dataclass(slots=True)
class Topology:
    nodes: list[Node]
    slot_node: bytes  # slot → index into nodes (NO_NODE: not served)
    bucket_node: bytes  # bucket → index into nodes
    read_at: float

    @property
    def fresh(self) -> bool:
        return time.monotonic() - self.read_at < FRESH_S

    @property
    def slots(self) -> dict[str, str]:
        return {n.tag: n.fp for n in self.nodes}

    def node_of(self, bucket: int) -> int:
        k = self.bucket_node[bucket]
        if k == NO_NODE:
            raise IndexUnavailable(f"redis cluster: no node serves bucket {bucket}")
        return k

    def node_of_slot(self, slot: int) -> int:
        k = self.slot_node[slot]
        if k == NO_NODE:
            raise IndexUnavailable(f"redis cluster: no node serves slot {slot}")
        return k

    def combine(self, metas: dict[str, IndexMeta], layout: str) -> IndexMeta:
        """The index's meta from each node's (by tag), read on this map."""
        stale = any(
            metas[n.tag].epoch is not None and metas[n.tag].slots != n.fp for n in self.nodes
        )
        if stale and not self.fresh:
            raise Moved("a node's meta was written for other slots")
        return IndexMeta.combine(metas, self.slots, layout)

    def epochs(self, epoch: str) -> dict[str, str]:
        """Each node's epoch in the index's (``tag=epoch,...``): the nodes must be ours."""
        epochs = dict(part.split("=", 1) for part in epoch.split(",") if "=" in part)
        if set(epochs) != {n.tag for n in self.nodes}:
            raise IndexDiverged("DIVERGED the cluster's masters changed")
        return epochs

    def split_counters(
        self, prefix: str, counters: Mapping[tuple[str, str], int] | None
    ) -> list[str]:
        """Progress counters per node (a ref's hash lives in the slot of its own tag)."""
        per: list[dict[tuple[str, str], int]] = [{} for _ in self.nodes]
        for (ref, name), n in (counters or {}).items():
            per[self.node_of_slot(key_slot(f"{prefix}:ref:{{{ref}}}".encode()))][(ref, name)] = n
        return [progress_arg(c) for c in per]


class Topologies:
    """The current topology of one cluster, re-read when asked (after a redirect or a
    connection failure) or when older than ``MAX_AGE_S``."""

    def __init__(self, url: str, prefix: str, buckets: int, timeout: float) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.bucket_slot = array(
            "H", (key_slot(f"{prefix}:g:{{{b}}}".encode()) for b in range(buckets))
        )
        self._clients: dict[str, aioredis.Redis] = {}
        self._current: Topology | None = None
        self._owned: dict[str, list[tuple[int, int]]] = {}
        self._lock = asyncio.Lock()
        self.stale = False

    async def get(self, force: bool = False, max_age: float = MAX_AGE_S) -> Topology:
        current = self._current
        if (
            current is not None
            and not force
            and not self.stale
            and time.monotonic() - current.read_at < max_age
        ):
            return current
        async with self._lock:
            if self._current is not None and self._current is not current:
                return self._current  # another task re-read it meanwhile
            self._current = await self._read()
            self.stale = False
            return self._current

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        self._current = None
        for client in clients.values():
            await client.aclose()

    def client(self, addr: str) -> aioredis.Redis:
        client = self._clients.get(addr)
        if client is None:
            host, _, port = addr.rpartition(":")
            parts = urlsplit(self.url)
            auth = parts.netloc.rpartition("@")[0]
            netloc = f"{auth}@{host}:{port}" if auth else f"{host}:{port}"
            node_url = urlunsplit(parts._replace(netloc=netloc, path="/0"))
            client = self._clients[addr] = aioredis.Redis.from_url(
                node_url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                health_check_interval=10,
                **connection_options(node_url),
            )
        return client

    async def _read(self) -> Topology:
        seed = urlsplit(self.url)
        seed_addr = f"{seed.hostname or '127.0.0.1'}:{seed.port or 6379}"
        errors = []
        # Ask the nodes we know first (the seed may be the one that left), then the seed.
        for addr in [*self._clients, seed_addr]:
            try:
                reply = await self.client(addr).execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER", "SLOTS"
                )
                break
            except (RedisError, OSError) as exc:
                errors.append(f"{addr}: {exc}")
        else:
            raise IndexUnavailable(f"redis cluster: no node answers ({'; '.join(errors)})")
        owned: dict[str, list[tuple[int, int]]] = {}
        for entry in reply:
            lo, hi, master = int(entry[0]), int(entry[1]), entry[2]
            host = _text(master[0]) or (seed.hostname or "127.0.0.1")
            owned.setdefault(f"{host}:{int(master[1])}", []).append((lo, hi))
        current = self._current
        if current is not None and owned == self._owned:
            # Unchanged: keep the topology (and the work of building it), now fresh.
            return Topology(current.nodes, current.slot_node, current.bucket_node, time.monotonic())
        self._owned = owned
        return self._build(owned)

    def _build(self, owned: dict[str, list[tuple[int, int]]]) -> Topology:
        slot_node = bytearray([NO_NODE]) * SLOTS
        order = sorted(owned, key=lambda a: min(owned[a]))
        ranges = {}
        for k, addr in enumerate(order):
            merged = _merge(owned[addr])
            ranges[addr] = ",".join(f"{lo}-{hi}" for lo, hi in merged)
            for lo, hi in merged:
                slot_node[lo : hi + 1] = bytes([k]) * (hi - lo + 1)
        tags: dict[int, str] = {}
        for i in itertools.count():
            if len(tags) == len(order) or i > 50 * SLOTS:
                break
            k = slot_node[key_slot(f"n{i}".encode())]
            if k != NO_NODE and k not in tags:
                tags[k] = f"n{i}"
        p = self.prefix
        nodes = [
            Node(
                addr,
                self.client(addr),
                tags[k],
                ranges[addr],
                xxhash.xxh3_64_hexdigest(ranges[addr].encode()),
                f"{p}:meta:{{{tags[k]}}}",
                f"{p}:adds:{{{tags[k]}}}",
                f"{p}:slots:{{{tags[k]}}}",
            )
            for k, addr in enumerate(order)
        ]
        bucket_node = bytes(slot_node[s] for s in self.bucket_slot)
        return Topology(nodes, bytes(slot_node), bucket_node, time.monotonic())


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


T = TypeVar("T")
ATTEMPTS = 4


class Moved(Exception):
    """The slot map changed under a call: read it again and redo the call."""


class Router:
    """Calls to the masters: a script or command per node, the calls of one operation in
    parallel, redone on a fresh slot map when a slot moved under them."""

    def __init__(self, topologies: Topologies, scripts: Mapping[str, AsyncScript]) -> None:
        self.topologies = topologies
        self.scripts = scripts

    async def _routed(
        self, op: Callable[[Topology], Awaitable[T]], max_age: float = MAX_AGE_S
    ) -> T:
        """Run ``op`` on the current topology; after a redirect, again on a fresh one."""
        last: Moved | None = None
        for attempt in range(ATTEMPTS):
            topology = await self.topologies.get(force=attempt > 0, max_age=max_age)
            try:
                return await op(topology)
            except Moved as exc:
                last = exc
                await asyncio.sleep(0.02 * attempt)
        raise IndexUnavailable(f"redis cluster: slots keep moving ({last})")

    async def _script(self, name: str, node: Node, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.scripts[name](keys=keys, args=args, client=node.client)
        except (AskError, TryAgainError, ReadOnlyError) as exc:  # MovedError is an AskError
            raise Moved(f"{node.addr}: {exc}") from None
        except ClusterDownError as exc:
            self.topologies.stale = True
            raise IndexUnavailable(f"redis cluster: {exc}") from exc
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("TOPOLOGY") or "non local key" in text:
                raise Moved(f"{node.addr}: {text}") from None
            raise script_error(exc) from None
        except (RedisError, OSError) as exc:
            # A node that does not answer may have failed over: read the map again next.
            self.topologies.stale = True
            raise IndexUnavailable(f"redis {node.addr}: {exc}") from exc

    async def _command(self, node: Node, call: Awaitable[T]) -> T:
        """``call``: a command on ``node.client``."""
        try:
            return await call
        except (AskError, TryAgainError) as exc:
            raise Moved(f"{node.addr}: {exc}") from None
        except (RedisError, OSError) as exc:
            self.topologies.stale = True
            raise IndexUnavailable(f"redis {node.addr}: {exc}") from exc

    async def _each(self, calls: Sequence[Awaitable[T]]) -> list[T]:
        """Run per-node calls in parallel; every call finishes (each is atomic on its own
        node) before the most telling error is raised."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for kind in (ConfigurationError, IndexDiverged, Moved, IndexUnavailable):
            for e in errors:
                if isinstance(e, kind):
                    raise e
        if errors:
            raise errors[0]
        return cast(list[T], results)
