"""A Redis Cluster master restarted without its data (SIGKILL, no persistence; it keeps its
identity and slots): the gates wait, the list writers rebuild that master's share of the
index from the changelog, and then everything is checked again — nothing forwarded
unchecked, nothing lost or sent twice, one confirmation per opt-out. On a cluster of the
test's own."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from dnc.index import ClusterIndex, make_index
from dnc.settings import IndexSettings, Settings
from tests.clusterkit import PrivateCluster, private_cluster
from tests.kit import (
    cluster_only,
    eventually,
    inbound,
    is_confirmation,
    outbound,
    produce,
    reading,
    running,
)

pytestmark = [
    pytest.mark.integration,
    cluster_only(),
]


async def _split(settings: Settings, cluster: PrivateCluster) -> tuple[int, list[str], list[str]]:
    """(port of the master to restart, contacts it holds, contacts other masters hold)."""
    async with make_index(settings) as index:
        assert isinstance(index, ClusterIndex)
        topology = await index.topologies.get()
        victim = topology.nodes[1]
        mine, others = [], []
        for i in range(2000):
            c = f"44711{i:07d}"
            k = topology.node_of(index.locate("acme", c)[0])
            (mine if topology.nodes[k] is victim else others).append(c)
        return int(victim.addr.rsplit(":", 1)[1]), mine[:6], others[:6]


def _ids(records: list[Any], wrapped: bool = False) -> list[str]:
    out = []
    for r in records:
        value = orjson.loads(r.value)
        out.append(value["message"]["message_id"] if wrapped else value["message_id"])
    return out


async def test_a_master_restarted_empty_gates_wait_then_its_share_is_rebuilt(
    make_settings: Any, tmp_path: Path
) -> None:
    with private_cluster(tmp_path / "cluster") as cluster:
        settings: Settings = await make_settings(
            redis_url=cluster.url,
            index=IndexSettings(prefix="c", buckets=256, cluster=True, redis_timeout_s=0.5),
        )
        t = settings.topics
        port, mine, others = await _split(settings, cluster)
        stopped = mine[:4] + others[:4]
        free = mine[4:] + others[4:]
        async with (
            running(settings, "ingest", "gate"),
            reading(settings, t.allowed, t.blocked) as (allowed, blocked),
        ):
            async with make_index(settings) as index, running(settings, "listwriter"):
                await produce(
                    settings,
                    t.inbound_messages,
                    *[inbound(f"mo-{c}", c, "STOP") for c in stopped],
                )

                async def effective() -> bool:
                    return all([await index.entries_of("acme", c) for c in stopped])

                await eventually(effective, 30, "the STOPs to be effective")
                await produce(
                    settings, t.outbound, *[outbound(f"before-{c}", c) for c in mine + others]
                )
                await blocked.wait_for(len(stopped), timeout=30)
                await allowed.wait_for(len(free) + len(stopped), timeout=30)  # + confirmations

            # The list writers are down: nothing can rebuild the master's share.
            cluster.restart_empty(port)
            await produce(
                settings, t.outbound, *[outbound(f"during-{c}", c) for c in mine + others]
            )
            await asyncio.sleep(3)
            await allowed.poll()
            await blocked.poll()
            assert len(blocked.records) == len(stopped), "checked against an incomplete index"
            assert len(allowed.records) == len(free) + len(stopped), "forwarded unchecked"

            async with make_index(settings) as index:
                meta = await index.meta()
                assert not meta.complete(), "a master without its meta leaves the index incomplete"
                async with running(settings, "listwriter"):
                    await blocked.wait_for(2 * len(stopped), timeout=60)
                    await allowed.wait_for(2 * len(free) + len(stopped), timeout=60)
                    await allowed.settle(1.0)
                    await blocked.settle(0.5)
                    meta = await index.meta()
                    assert meta.complete()
                    assert all([await index.entries_of("acme", c) for c in stopped])

    messages = [r for r in allowed.records if not is_confirmation(r)]
    confirmations = Counter(
        orjson.loads(r.value)["in_reply_to"] for r in allowed.records if is_confirmation(r)
    )
    assert confirmations == Counter({f"mo-{c}": 1 for c in stopped})
    assert sorted(_ids(blocked.records, wrapped=True)) == sorted(
        f"{when}-{c}" for when in ("before", "during") for c in stopped
    )
    assert sorted(_ids(messages)) == sorted(
        f"{when}-{c}" for when in ("before", "during") for c in free
    )


async def test_a_master_lost_while_everything_runs_leaks_and_loses_nothing(
    make_settings: Any, tmp_path: Path
) -> None:
    with private_cluster(tmp_path / "cluster") as cluster:
        settings: Settings = await make_settings(
            redis_url=cluster.url,
            index=IndexSettings(prefix="c", buckets=256, cluster=True, redis_timeout_s=0.5),
        )
        t = settings.topics
        port, mine, others = await _split(settings, cluster)
        stopped = mine[:3] + others[:3]
        free = mine[3:] + others[3:]
        sent: list[str] = []
        async with (
            running(settings, "ingest", "listwriter", "gate"),
            reading(settings, t.allowed, t.blocked, t.dead_letter) as (allowed, blocked, dlq),
            make_index(settings) as index,
        ):
            await produce(
                settings, t.inbound_messages, *[inbound(f"mo-{c}", c, "STOP") for c in stopped]
            )

            async def effective() -> bool:
                return all([await index.entries_of("acme", c) for c in stopped])

            await eventually(effective, 30, "the STOPs to be effective")
            for round_ in range(6):
                batch = [outbound(f"m{round_}-{c}", c) for c in stopped + free]
                sent += [m["message_id"] for m in batch]
                await produce(settings, t.outbound, *batch)
                if round_ == 2:
                    cluster.restart_empty(port)
                await asyncio.sleep(0.3)
            total = len(sent) + len(stopped)  # and the confirmations

            async def all_out() -> bool:
                for r in (allowed, blocked, dlq):
                    await r.poll(0.1)
                return len(allowed.records) + len(blocked.records) + len(dlq.records) >= total

            await eventually(all_out, 90, f"{total} outputs")
            for r in (allowed, blocked, dlq):
                await r.settle(1.0)
            assert (await index.meta()).complete()

    messages = [r for r in allowed.records if not is_confirmation(r)]
    assert dlq.records == []
    seen = Counter(_ids(messages) + _ids(blocked.records, wrapped=True))
    assert sorted(seen) == sorted(sent) and max(seen.values()) == 1  # none lost, none twice
    leaked = [m for m in _ids(messages) if m.split("-", 1)[1] in stopped]
    assert leaked == []
    confirmations = Counter(
        orjson.loads(r.value)["in_reply_to"] for r in allowed.records if is_confirmation(r)
    )
    assert confirmations == Counter({f"mo-{c}": 1 for c in stopped})
