"""Failover on a production-shaped Kafka: a private three-node cluster (replication 3,
min.insync.replicas=2), traffic and opt-outs flowing, every message counted by id.

Each scenario injects its fault while the roles run (none is restarted by the test), then
measures, from the fault: when the gate first decided a message sent after it
(``resumed_s``), when every ``messages.outbound`` partition had done so
(``all_partitions_s``), the longest gap between two decisions (``longest_stall_s``), and
when no partition of any topic was under-replicated again (``in_sync_s``).

- the node leading most ``messages.outbound`` / ``dnc.commands`` partitions, SIGKILLed and
  restarted 10-20 s later;
- the node that coordinates most of the gate's and list writer's transactional ids
  (FindCoordinator), SIGKILLed mid-stream and restarted 10-20 s later;
- the gate's group coordinator paused (SIGSTOP) for 45 s, longer than the clients' request
  time-outs (30 s; aiokafka's consumer default, 40 s), the consumer session (10 s), the
  broker session (9 s) and the pipeline's step time-out (30 s), then SIGCONT: it comes
  back as a zombie that believes it still leads;
- a rolling restart: each node in turn SIGTERMed (controlled shutdown), started again, and
  the next only once no partition is under-replicated;
- the controller quorum losing a node: the nodes are combined broker + controller, so the
  active controller (the KRaft quorum leader, from the nodes' ``quorum-state``) is
  SIGKILLed, which takes a broker with it, and restarted 10-20 s later.

The cluster (``kafka_cluster.py``) is shared by the module's scenarios; each starts with all
three nodes up and in sync.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.client import CoordinationType

from tests.faults.harness import Report, Run, monotonic, scenario
from tests.faults.kafka_cluster import KafkaCluster, busiest_leader, coordinators
from tests.faults.stack import RedisServer
from tests.faults.test_faults import assert_clean
from tests.kit import eventually

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

# A round takes one to three minutes, so DNC_FAULT_ROUNDS (10 in make test-faults) does not
# apply here; DNC_FAULT_CLUSTER_ROUNDS sets it.
ROUNDS = int(os.environ.get("DNC_FAULT_CLUSTER_ROUNDS", "1"))
# Longer than every time-out a paused broker runs into (see the module docstring).
PAUSE_S = 45.0
RESUME_TIMEOUT_S = 180.0

# One round's fault: inject it (and undo it: restart, SIGCONT), return what to report.
Fault = Callable[[Run, KafkaCluster], Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
async def kafka_cluster() -> AsyncIterator[KafkaCluster]:
    cluster = KafkaCluster()
    await asyncio.to_thread(cluster.up)
    yield cluster
    await asyncio.to_thread(cluster.resume_all)
    if cluster.started_here and not os.environ.get("DNC_FAULTS_KEEP_STACK"):
        await asyncio.to_thread(cluster.down)


async def under_faults(
    cluster: KafkaCluster, workdir: Path, name: str, n: int, fault: Fault
) -> Report:
    """Run the roles and the workload on the cluster; ``n`` rounds of ``fault``, each
    measured from the moment it started until every replica is back in sync."""
    for node in (1, 2, 3):
        await asyncio.to_thread(cluster.start_node, node)
    await cluster.wait_all_in_sync()
    redis = RedisServer(workdir / "redis")
    redis.start()
    try:
        async with scenario(
            name,
            cluster.bootstrap,
            roles_redis_url=redis.url,
            watch_redis_url=redis.url,
            planned_rounds=n,
            decide_timeout_s=300,
            sends_in_background=True,
        ) as run:
            done = []
            try:
                for _ in range(n):
                    await asyncio.sleep(run.rng.uniform(2.0, 4.0))
                    t_fault = monotonic()
                    at = time.strftime("%H:%M:%S")  # to read the roles' logs beside
                    info = {"at": at, **await fault(run, cluster)}
                    info.update(await recovery(run, cluster, t_fault))
                    done.append(info)
            finally:
                await asyncio.to_thread(cluster.resume_all)
                for node in (1, 2, 3):
                    await asyncio.to_thread(cluster.start_node, node)
                run.report.extra["faults"] = done
    finally:
        redis.stop()
    return run.report


async def recovery(run: Run, cluster: KafkaCluster, t_fault: float) -> dict[str, float]:
    """How long after ``t_fault`` the gate forwarded again, on one partition and on all."""
    load = run.load
    first = await load.resumed(t_fault, RESUME_TIMEOUT_S, "the gate to forward after the fault")
    partitions = run.settings.topic_layout.outbound_partitions

    def resumed_on_every_partition() -> float | None:
        firsts: dict[int, float] = {}
        for mid, (_kind, seen) in load.decided.items():
            s = load.sent.get(mid)
            if s is not None and s.t_send > t_fault and s.partition >= 0:
                firsts[s.partition] = min(seen, firsts.get(s.partition, seen))
        return max(firsts.values()) if len(firsts) == partitions else None

    await eventually(
        lambda: resumed_on_every_partition() is not None,
        RESUME_TIMEOUT_S,
        "every messages.outbound partition to be forwarded again",
    )
    everywhere = resumed_on_every_partition()
    assert everywhere is not None
    await cluster.wait_all_in_sync(timeout=RESUME_TIMEOUT_S)
    in_sync = monotonic()
    seen = sorted([t_fault] + [t for _k, t in load.decided.values() if t_fault < t <= in_sync])
    stall = max(b - a for a, b in itertools.pairwise(seen)) if len(seen) > 1 else 0.0
    return {
        "resumed_s": round(first - t_fault, 1),
        "all_partitions_s": round(everywhere - t_fault, 1),
        "longest_stall_s": round(stall, 1),
        "in_sync_s": round(in_sync - t_fault, 1),
    }


def watched(run: Run) -> list[str]:
    return [run.settings.topics.outbound, run.settings.topics.commands]


async def kill_and_restart(run: Run, cluster: KafkaCluster, node: int) -> float:
    """SIGKILL ``node``, start it again 10-20 s later; the seconds it was down."""
    down_s = round(run.rng.uniform(10.0, 20.0), 1)
    run.load.event(f"node {node} SIGKILL")
    await asyncio.to_thread(cluster.kill_node, node, signal.SIGKILL)
    await asyncio.sleep(down_s)
    await asyncio.to_thread(cluster.start_node, node)
    run.load.event(f"node {node} started")
    return down_s


async def leader_killed(run: Run, cluster: KafkaCluster) -> dict[str, Any]:
    node, leaders = await busiest_leader(cluster.bootstrap, watched(run))
    down_s = await kill_and_restart(run, cluster, node)
    return {"node": node, "leaders": leaders, "down_s": down_s}


async def coordinator_killed(run: Run, cluster: KafkaCluster) -> dict[str, Any]:
    """The node coordinating most of the gate's and list writer's transactional ids; of
    equals, one that coordinates ids of both roles."""
    s, t = run.settings, run.settings.topics
    layout = s.topic_layout
    ids = {
        "gate": [
            s.transactional_id("gate", t.outbound, p) for p in range(layout.outbound_partitions)
        ],
        "listwriter": [
            s.transactional_id("listwriter", t.commands, p) for p in range(layout.list_partitions)
        ],
    }
    found = await coordinators(cluster.bootstrap, ids["gate"] + ids["listwriter"])
    by_role = {role: [found[i] for i in role_ids] for role, role_ids in ids.items()}
    node = max(
        (1, 2, 3),
        key=lambda n: (
            sum(v == n for v in found.values()),
            all(n in nodes for nodes in by_role.values()),
        ),
    )
    down_s = await kill_and_restart(run, cluster, node)
    return {"node": node, "coordinators_by_partition": by_role, "down_s": down_s}


async def group_coordinator_paused(run: Run, cluster: KafkaCluster) -> dict[str, Any]:
    """Pause the gate's group coordinator (it leads partitions too): the pipeline's
    consumer, its producers and their reopening all wait on it."""
    group = run.settings.group_id("gate")
    node = (await coordinators(cluster.bootstrap, [group], CoordinationType.GROUP))[group]
    _busiest, leaders = await busiest_leader(cluster.bootstrap, watched(run))
    run.load.event(f"node {node} SIGSTOP")
    await asyncio.to_thread(cluster.signal_node, node, signal.SIGSTOP)
    try:
        await asyncio.sleep(PAUSE_S)
    finally:
        await asyncio.to_thread(cluster.signal_node, node, signal.SIGCONT)
    run.load.event(f"node {node} SIGCONT")
    return {"node": node, "leaders": leaders, "paused_s": PAUSE_S}


async def rolling_restart(run: Run, cluster: KafkaCluster) -> dict[str, Any]:
    steps = []
    for node in (1, 2, 3):
        t0 = monotonic()
        run.load.event(f"node {node} SIGTERM")
        stopped_s = await asyncio.to_thread(cluster.stop_node, node)
        await asyncio.to_thread(cluster.start_node, node)
        run.load.event(f"node {node} started")
        await cluster.wait_all_in_sync(timeout=RESUME_TIMEOUT_S)
        steps.append(
            {
                "node": node,
                "stopped_s": round(stopped_s, 1),
                "in_sync_s": round(monotonic() - t0, 1),
            }
        )
    return {"steps": steps}


async def controller_killed(run: Run, cluster: KafkaCluster) -> dict[str, Any]:
    node, epoch = cluster.quorum_leader()
    t0 = monotonic()
    down_s = round(run.rng.uniform(10.0, 20.0), 1)
    run.load.event(f"node {node} (active controller) SIGKILL")
    await asyncio.to_thread(cluster.kill_node, node, signal.SIGKILL)

    def new_leader() -> bool:
        leader, now = cluster.quorum_leader()
        return now > epoch and leader != node

    await eventually(new_leader, down_s, "the two controllers left to elect a leader")
    elected_s = round(monotonic() - t0, 1)
    await asyncio.sleep(max(0.0, down_s - (monotonic() - t0)))
    await asyncio.to_thread(cluster.start_node, node)
    run.load.event(f"node {node} started")
    return {
        "node": node,
        "new_controller": cluster.quorum_leader()[0],
        "elected_after_s": elected_s,
        "down_s": down_s,
    }


@pytest.mark.long
async def test_the_busiest_leader_killed_and_restarted_under_load(
    kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    report = await under_faults(
        kafka_cluster, tmp_path, "kafka-cluster-leader-killed", ROUNDS, leader_killed
    )
    assert_clean(report)


# The short suite's failover scenario (make test): 78 s with the cluster's start and stop
# (3 min 5 s under a load average of 20). The transaction coordinator's node leads
# partitions too, so its loss also moves partition leaders.
async def test_the_transaction_coordinator_killed_mid_stream(
    kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    report = await under_faults(
        kafka_cluster, tmp_path, "kafka-cluster-coordinator-killed", ROUNDS, coordinator_killed
    )
    assert_clean(report)


@pytest.mark.long
async def test_a_broker_paused_longer_than_every_time_out(
    kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    report = await under_faults(
        kafka_cluster, tmp_path, "kafka-cluster-broker-paused", ROUNDS, group_coordinator_paused
    )
    assert_clean(report)
    # No bound on the stall is asserted: aiokafka sends coordinator lookups and metadata
    # requests to a random broker, the hung one included, and each of those waits the
    # request time-out (DNC_KAFKA_STEP_TIMEOUT_S), so the stall is one or more of them.


@pytest.mark.long
async def test_a_rolling_restart_of_all_three_brokers(
    kafka_cluster: KafkaCluster, tmp_path: Path
) -> None:
    report = await under_faults(
        kafka_cluster, tmp_path, "kafka-cluster-rolling-restart", ROUNDS, rolling_restart
    )
    assert_clean(report)


@pytest.mark.long
async def test_the_active_controller_lost(kafka_cluster: KafkaCluster, tmp_path: Path) -> None:
    report = await under_faults(
        kafka_cluster, tmp_path, "kafka-cluster-controller-killed", ROUNDS, controller_killed
    )
    assert_clean(report)
