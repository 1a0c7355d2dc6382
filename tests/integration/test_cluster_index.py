"""The index on a Redis Cluster, operation by operation: every master keeps its own offsets
with its data, the index's offset is the minimum, a batch that reached only some masters
is finished without ever showing an older state, and a master that lost its data makes
the index incomplete until it alone is replayed. (Roles and killed masters:
test_cluster_node_loss.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dnc.domain.timestamps import now_ms
from dnc.errors import IndexUnavailable
from dnc.index import ClusterIndex, Index, make_index
from dnc.index.layout import entry_slot
from dnc.index.topology import Node
from dnc.settings import Settings
from tests.kit import cluster_only, redis_nodes

pytestmark = [
    pytest.mark.integration,
    cluster_only(),
]

SLOT = entry_slot("SMS", None)
ADDED = 1795671087123


def contact(i: int) -> str:
    return f"4479{i:08d}"


def record(index: Index, i: int, present: bool = True) -> list[Any]:
    """One replay record (see Index.replay): contact i's SMS entry added or removed."""
    bucket, member, field = index.locate("acme", contact(i))
    packed = f"{SLOT}M\x1f{ADDED + i}\x1f" if present else ""
    return [bucket, member, field, SLOT, packed]


def batch(index: Index, *items: tuple[int, bool]) -> list[Any]:
    out: list[Any] = []
    for i, present in items:
        out += record(index, i, present)
    return out


async def present(index: Index, n: int) -> set[int]:
    return {i for i in range(n) if await index.entries_of("acme", contact(i))}


def _client_of(clients: list[Any], node: Node) -> Any:
    port = int(node.addr.rsplit(":", 1)[1])
    return next(c for c in clients if c.connection_pool.connection_kwargs["port"] == port)


def failing_on(cluster: ClusterIndex, victim: Node) -> Callable[..., Awaitable[Any]]:
    """A stand-in for ``Router._script`` that fails the writes of one master, as a
    master that stops answering mid-batch would."""
    real = cluster._script

    async def script(name: str, node: Node, keys: list[str], args: list[Any]) -> Any:
        if name in ("apply", "replay") and node.tag == victim.tag:
            raise IndexUnavailable(f"redis {node.addr}: gone (test)")
        return await real(name, node, keys, args)

    return script


async def test_every_master_keeps_its_own_offsets_and_the_index_has_the_minimum(
    settings: Settings,
) -> None:
    async with make_index(settings) as index:
        assert isinstance(index, ClusterIndex)
        cluster = index
        topology = await cluster.topologies.get()
        assert len(topology.nodes) >= 3
        epoch = await index.init(settings.topic_layout.list_partitions)
        assert epoch.count("=") == len(topology.nodes)
        records = batch(index, *((i, True) for i in range(60)))
        nodes = {topology.node_of(records[k]) for k in range(0, len(records), 5)}
        assert len(nodes) == len(topology.nodes), "the contacts span every master"
        await index.replay(
            epoch=epoch, partition=0, expected=None, new_offset=60, records=records, now=now_ms()
        )
        meta = await index.meta()
        assert set(meta.nodes) == {n.tag for n in topology.nodes}
        assert all(m.changes == {0: 60} for m in meta.nodes.values())
        assert meta.changes == {0: 60} and not meta.complete()  # partitions 1, 2 not yet
        async with redis_nodes(settings) as clients:
            for node in topology.nodes:
                assert await _client_of(clients, node).exists(node.meta_key, node.adds_key) == 2
        assert await present(index, 60) == set(range(60))


async def test_a_batch_that_reached_some_masters_is_finished_without_going_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_index(settings) as index:
        assert isinstance(index, ClusterIndex)
        cluster = index
        topology = await cluster.topologies.get()
        epoch = await index.init(settings.topic_layout.list_partitions)

        async def replay(expected: int | None, new: int, records: list[Any]) -> None:
            await index.replay(
                epoch=epoch,
                partition=0,
                expected=expected,
                new_offset=new,
                records=records,
                now=now_ms(),
            )

        await replay(None, 40, batch(index, *((i, True) for i in range(40))))
        victim = topology.nodes[1]
        # Removed and added again within one batch, on every master: a master that took
        # only part of it would not have them in between.
        second = batch(index, *((i, False) for i in range(10)), *((i, True) for i in range(10)))
        second += batch(index, *((i, False) for i in range(10, 20)), (40, True))
        with monkeypatch.context() as m:
            m.setattr(cluster, "_script", failing_on(cluster, victim))
            with pytest.raises(IndexUnavailable):
                await replay(40, 80, second)
        meta = await index.meta()
        assert meta.changes[0] == 40, "the index offset is the minimum over the masters"
        assert {t: n.changes[0] for t, n in meta.nodes.items()} == {
            n.tag: 40 if n is victim else 80 for n in topology.nodes
        }
        # The list writer catches up from the minimum: the masters that hold the batch
        # skip it, the one that missed it takes it.
        await replay(40, 80, second)
        meta = await index.meta()
        assert all(n.changes[0] == 80 for n in meta.nodes.values())
        assert await present(index, 41) == set(range(10)) | set(range(20, 41))

        # Ahead in part: the catch-up's batch starts before what some masters hold.
        third = batch(index, *((i, False) for i in range(20, 25)))
        fourth = batch(index, *((i, True) for i in range(20, 23)), (41, True))
        with monkeypatch.context() as m:
            m.setattr(cluster, "_script", failing_on(cluster, victim))
            with pytest.raises(IndexUnavailable):
                await replay(80, 90, third)
        await replay(80, 100, third + fourth)
        meta = await index.meta()
        assert all(n.changes[0] == 100 for n in meta.nodes.values())
        expected = set(range(10)) | set(range(20, 23)) | set(range(25, 42))
        assert await present(index, 42) == expected


async def test_a_master_that_lost_its_data_leaves_the_index_incomplete_until_replayed(
    settings: Settings,
) -> None:
    parts = settings.topic_layout.list_partitions
    async with make_index(settings) as index:
        assert isinstance(index, ClusterIndex)
        cluster = index
        topology = await cluster.topologies.get()
        epoch = await index.init(parts)
        history = batch(index, *((i, True) for i in range(60)))
        for p in range(parts):
            await index.replay(
                epoch=epoch,
                partition=p,
                expected=None,
                new_offset=60 if p == 0 else 0,
                records=history if p == 0 else [],
                now=now_ms(),
            )
        assert (await index.meta()).complete()

        victim = topology.nodes[2]
        async with redis_nodes(settings) as clients:
            client = _client_of(clients, victim)
            async for key in client.scan_iter(match=f"{settings.index.prefix}:*"):
                await client.unlink(key)  # as if the master restarted without its data
        meta = await index.meta()
        assert not meta.complete() and meta.epoch is None
        assert meta.nodes[victim.tag].epoch is None

        again = await index.init(parts)
        before = dict(part.split("=") for part in epoch.split(","))
        after = dict(part.split("=") for part in again.split(","))
        assert {t for t in after if after[t] != before[t]} == {victim.tag}
        # The catch-up replays every partition from the minimum (nothing, for the lost
        # master): the others hold it all and skip.
        for p in range(parts):
            await index.replay(
                epoch=again,
                partition=p,
                expected=None,
                new_offset=60 if p == 0 else 0,
                records=history if p == 0 else [],
                now=now_ms(),
            )
        meta = await index.meta()
        assert meta.complete() and meta.epoch == again and meta.changes[0] == 60
        assert await present(index, 60) == set(range(60))
