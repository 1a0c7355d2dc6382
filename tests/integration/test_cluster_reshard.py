"""Resharding a live Redis Cluster (``redis-cli --cluster reshard``) while opt-outs and
messages flow: calls that meet a moving slot are redone on the new slot map, the master
that gains slots is rebuilt from the changelog (its data came with other offsets), and
nothing leaks, is lost or is sent twice. On a cluster of the test's own."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from dnc.index import make_index
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


def reshard(cluster: PrivateCluster, slots: int) -> str:
    """Move ``slots`` slots from the first master to the second."""

    def node_id(port: int) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "myid"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout.strip()

    source, target = cluster.ports[0], cluster.ports[1]
    options = {
        "from": node_id(source),
        "to": node_id(target),
        "slots": str(slots),
    }
    out = subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "reshard",
            f"127.0.0.1:{source}",
            *(x for k, v in options.items() for x in (f"--cluster-{k}", v)),
            "--cluster-yes",
        ],
        capture_output=True,
        check=False,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


async def test_resharding_under_traffic_loses_and_leaks_nothing(
    make_settings: Any, tmp_path: Path
) -> None:
    with private_cluster(tmp_path / "cluster") as cluster:
        settings: Settings = await make_settings(
            redis_url=cluster.url,
            index=IndexSettings(prefix="c", buckets=1024, cluster=True, redis_timeout_s=0.5),
        )
        t = settings.topics
        stopped = [f"44722{i:07d}" for i in range(30)]
        free = [f"44733{i:07d}" for i in range(30)]
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
            moving = asyncio.create_task(asyncio.to_thread(reshard, cluster, 2000))
            round_ = 0
            while not moving.done() or round_ < 4:
                batch = [outbound(f"m{round_}-{c}", c) for c in stopped[::3] + free[::3]]
                sent += [m["message_id"] for m in batch]
                await produce(settings, t.outbound, *batch)
                round_ += 1
                await asyncio.sleep(0.2)
            await moving
            total = len(sent) + len(stopped)  # and the confirmations

            async def all_out() -> bool:
                for r in (allowed, blocked, dlq):
                    await r.poll(0.1)
                return len(allowed.records) + len(blocked.records) + len(dlq.records) >= total

            await eventually(all_out, 120, f"{total} outputs")
            for r in (allowed, blocked, dlq):
                await r.settle(1.0)
            assert (await index.meta()).complete()
            assert all([await index.entries_of("acme", c) for c in stopped])
            assert not any([await index.entries_of("acme", c) for c in free])

    messages = [r for r in allowed.records if not is_confirmation(r)]
    assert dlq.records == []
    ids = [orjson.loads(r.value)["message_id"] for r in messages]
    seen = Counter(ids + [orjson.loads(r.value)["message"]["message_id"] for r in blocked.records])
    assert sorted(seen) == sorted(sent) and max(seen.values()) == 1  # none lost, none twice
    assert [m for m in ids if m.split("-", 1)[1] in stopped] == []  # none leaked
    confirmations = Counter(
        orjson.loads(r.value)["in_reply_to"] for r in allowed.records if is_confirmation(r)
    )
    assert confirmations == Counter({f"mo-{c}": 1 for c in stopped})
