"""Offline checks of the local three-node Kafka cluster's generated broker settings
(deploy/local/kafka-cluster.sh properties N): what makes it production-shaped must not
drift, and the environment must move every port and path (the fault suite's private
cluster sits beside the shared one)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/local/kafka-cluster.sh"


def properties(node: int, **env: str) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(SCRIPT), "properties", str(node)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    return {key: value for key, _, value in (line.partition("=") for line in lines)}


@pytest.mark.parametrize("node", [1, 2, 3])
def test_every_node_is_a_broker_and_controller_shaped_like_production(node: int) -> None:
    p = properties(node)
    assert p["process.roles"] == "broker,controller"
    assert p["node.id"] == str(node)
    assert p["default.replication.factor"] == "3"
    assert p["min.insync.replicas"] == "2"
    assert p["offsets.topic.replication.factor"] == "3"
    assert p["transaction.state.log.replication.factor"] == "3"
    assert p["transaction.state.log.min.isr"] == "2"
    assert p["unclean.leader.election.enable"] == "false"
    assert p["auto.create.topics.enable"] == "false"
    assert "@" not in p["listeners"] and "@" not in p["log.dirs"]


def test_the_nodes_form_one_quorum_on_distinct_ports() -> None:
    nodes = [properties(n) for n in (1, 2, 3)]
    voters = {p["controller.quorum.voters"] for p in nodes}
    assert voters == {"1@127.0.0.1:19195,2@127.0.0.1:19196,3@127.0.0.1:19197"}
    assert [p["advertised.listeners"] for p in nodes] == [
        f"PLAINTEXT://127.0.0.1:{port}" for port in (19192, 19193, 19194)
    ]
    assert len({p["log.dirs"] for p in nodes}) == 3


def test_the_environment_moves_ports_and_state(tmp_path: Path) -> None:
    p = properties(
        2,
        DNC_KAFKA_CLUSTER_DIR=str(tmp_path),
        DNC_KAFKA_CLUSTER_PORTS="49092 49093 49094",
        DNC_KAFKA_CLUSTER_CONTROLLER_PORTS="49095 49096 49097",
    )
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:49093,CONTROLLER://127.0.0.1:49096"
    assert p["controller.quorum.voters"] == (
        "1@127.0.0.1:49095,2@127.0.0.1:49096,3@127.0.0.1:49097"
    )
    assert p["log.dirs"] == f"{tmp_path}/node2/data"


def test_a_wrong_port_list_is_refused_by_name() -> None:
    run = subprocess.run(
        ["bash", str(SCRIPT), "properties", "1"],
        env={**os.environ, "DNC_KAFKA_CLUSTER_PORTS": "49092 49093"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert run.returncode != 0
    assert "DNC_KAFKA_CLUSTER_PORTS must name 3 ports, got '49092 49093'" in run.stderr
