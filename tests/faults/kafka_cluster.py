"""A private three-node Kafka cluster for the failover scenarios
(``deploy/local/kafka-cluster.sh`` on 127.0.0.1:49092-49094, controllers 49095-49097,
state under ``.local/faults-kafka-cluster``; ``DNC_FAULTS_CLUSTER_*`` move them).

Like ``stack.py``: the tests kill only nodes this module started, found by the pid the
script recorded for this state folder, never by name, and never the shared cluster
(19192-19194).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError

from tests.faults.stack import ROOT, SHARED_LIBS, process_gone
from tests.ports import port_open

SCRIPT = ROOT / "deploy/local/kafka-cluster.sh"
SHARED_BROKER_PORTS = {19192, 19193, 19194}


def _ports(name: str, default: str) -> list[int]:
    return [int(p) for p in os.environ.get(name, default).split()]


@dataclass
class KafkaCluster:
    state: Path = field(
        default_factory=lambda: Path(
            os.environ.get("DNC_FAULTS_CLUSTER_DIR", ROOT / ".local/faults-kafka-cluster")
        )
    )
    ports: list[int] = field(
        default_factory=lambda: _ports("DNC_FAULTS_CLUSTER_PORTS", "49092 49093 49094")
    )
    controller_ports: list[int] = field(
        default_factory=lambda: _ports("DNC_FAULTS_CLUSTER_CONTROLLER_PORTS", "49095 49096 49097")
    )
    started_here: bool = False

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_")}
        env.update(
            DNC_KAFKA_CLUSTER_DIR=str(self.state),
            DNC_KAFKA_CLUSTER_PORTS=" ".join(map(str, self.ports)),
            DNC_KAFKA_CLUSTER_CONTROLLER_PORTS=" ".join(map(str, self.controller_ports)),
            DNC_KAFKA_CLUSTER_HEAP=os.environ.get("DNC_FAULTS_KAFKA_HEAP", "512m"),
            DNC_KAFKA_LIBS=os.environ.get("DNC_KAFKA_LIBS", str(SHARED_LIBS)),
        )
        return env

    def _script(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"kafka-cluster.sh {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def up(self) -> None:
        assert not SHARED_BROKER_PORTS & set(self.ports), "refusing the shared cluster's ports"
        self.started_here = not any(port_open(p) for p in self.ports)
        if self.started_here:
            # Disposable: an empty log each time, or restarts recover every earlier run.
            shutil.rmtree(self.state, ignore_errors=True)
        self._script("up")

    def down(self) -> None:
        self._script("down", timeout=120)

    def node_pid(self, node: int) -> int:
        pid = int(self._script("pid", str(node)).strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if str(self.state) not in cmdline:
            raise RuntimeError(f"pid {pid} is not this cluster's node {node}: {cmdline[:200]}")
        return pid

    def kill_node(self, node: int, sig: signal.Signals = signal.SIGKILL) -> None:
        pid = self.node_pid(node)
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while not process_gone(pid, self.ports[node - 1]):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def signal_node(self, node: int, sig: signal.Signals) -> None:
        """Send ``sig`` (SIGSTOP, SIGCONT) to one of this cluster's nodes; no wait."""
        os.kill(self.node_pid(node), sig)

    def stop_node(self, node: int) -> float:
        """SIGTERM (a controlled shutdown: leaderships move first); seconds until it exited.
        A node still there after 60 s is killed (``kill_node``)."""
        started = time.monotonic()
        self.kill_node(node, signal.SIGTERM)
        return time.monotonic() - started

    def start_node(self, node: int) -> None:
        self._script("start", str(node))

    def resume_all(self) -> None:
        """SIGCONT to every node of ours still running (after a scenario that paused one)."""
        for node in (1, 2, 3):
            # Not running: start_node brings it back.
            with contextlib.suppress(RuntimeError, ProcessLookupError):
                os.kill(self.node_pid(node), signal.SIGCONT)

    def quorum_leader(self) -> tuple[int, int]:
        """The active controller (KRaft quorum leader) and its epoch, as the nodes' own
        ``quorum-state`` files record it (the newest epoch any node knows)."""
        known = []
        for node in (1, 2, 3):
            path = self.state / f"node{node}/data/__cluster_metadata-0/quorum-state"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being rewritten: the other nodes know the leader too
            if state.get("leaderId", -1) >= 0:
                known.append((int(state["leaderEpoch"]), int(state["leaderId"])))
        if not known:
            raise RuntimeError(f"no node of {self.state} knows a quorum leader")
        epoch, leader = max(known)
        return leader, epoch

    async def wait_all_in_sync(self, topics: list[str] | None = None, timeout: float = 120) -> None:
        """Every partition of ``topics`` (None: of every topic, the internal ones included)
        has all its replicas in sync again: no under-replicated partition."""
        deadline = time.monotonic() + timeout
        behind: list[str] = []
        while time.monotonic() < deadline:
            behind = []
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
                names = topics if topics is not None else await admin.list_topics()
                for t in await admin.describe_topics(names):
                    if t["error_code"]:
                        behind.append(f"{t['topic']}: error {t['error_code']}")
                    for p in t["partitions"]:
                        if len(p["isr"]) < len(p["replicas"]):
                            behind.append(f"{t['topic']}/{p['partition']}")
                if not behind:
                    return
            except Exception as exc:  # a node still starting: ask again
                behind = [repr(exc)]
            finally:
                await admin.close()
            await asyncio.sleep(0.5)
        raise RuntimeError(f"replicas not back in sync after {timeout}s: {behind[:10]}")


async def busiest_leader(bootstrap: str, topics: list[str]) -> tuple[int, dict[int, int]]:
    """The node that leads most partitions of ``topics``, and the count per node."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        leaders = Counter(
            p["leader"] for t in await admin.describe_topics(topics) for p in t["partitions"]
        )
    finally:
        await admin.close()
    node, _ = leaders.most_common(1)[0]
    return node, dict(leaders)


async def coordinators(
    bootstrap: str, keys: list[str], kind: CoordinationType = CoordinationType.TRANSACTION
) -> dict[str, int]:
    """The coordinator (FindCoordinator; of transactional ids, or of consumer groups) of
    each key."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await client.bootstrap()
    found: dict[str, int] = {}
    try:
        for key in keys:
            deadline = time.monotonic() + 60
            while True:
                try:
                    found[key] = await client.coordinator_lookup(kind, key)
                    break
                except KafkaError as exc:  # __transaction_state still being created or loaded
                    if not exc.retriable or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)
    finally:
        await client.close()
    return found
