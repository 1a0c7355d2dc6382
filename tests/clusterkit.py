"""A Redis Cluster of a test's own: redis-server processes in cluster mode on free loopback
ports, created with ``redis-cli --cluster create``, for tests that kill or reshard masters
(the shared local cluster of ``make up-cluster`` serves every other cluster test)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(n: int, start: int = 27100) -> list[int]:
    """n ports whose cluster bus ports (port + 10000) are free too."""
    out: list[int] = []
    port = start + os.getpid() % 500 * 4
    while len(out) < n:
        if port > 55000:
            port = start
        if _port_free(port) and _port_free(port + 10000):
            out.append(port)
        port += 1
    return out


class PrivateCluster:
    """A 3-master Redis Cluster of one test (redis-server processes in cluster mode, no
    persistence: a killed master comes back empty, with its slots)."""

    def __init__(self, root: Path, masters: int = 3) -> None:
        self.root = root
        self.ports = free_cluster_ports(masters)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is installed by `make up`"
        node_dir = self.root / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        log = open(node_dir / "redis.log", "ab")  # noqa: SIM115
        options = {
            "port": str(port),
            "bind": "127.0.0.1",
            "dir": str(node_dir),
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": "1000",
            "save": "",
            "appendonly": "no",
            "set-max-intset-entries": "8192",
            "hash-max-listpack-entries": "1024",
        }
        self.procs[port] = subprocess.Popen(
            [binary, *(x for k, v in options.items() for x in (f"--{k}", v))],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 10
        while not self._answers(port):
            assert time.monotonic() < deadline, f"redis-server {port} did not start"
            time.sleep(0.05)

    def start(self) -> PrivateCluster:
        for port in self.ports:
            self.start_node(port)
        create = subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{p}" for p in self.ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            check=False,
        )
        assert create.returncode == 0, create.stdout.decode()[-2000:]
        self.wait_ok()
        return self

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait()

    def restart_empty(self, port: int) -> None:
        """SIGKILL a master and start it again: same identity and slots, no data."""
        self.kill(port)
        self.start_node(port)
        self.wait_ok()

    def wait_ok(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = [self._cli(p, "cluster", "info") for p in self.procs]
            if all("cluster_state:ok" in s for s in states):
                return
            assert time.monotonic() < deadline, f"cluster not ok: {states}"
            time.sleep(0.1)

    def node_of(self, key: str) -> int:
        """The port of the master that serves a key."""
        slot = int(self._cli(self.ports[0], "cluster", "keyslot", key).strip())
        for line in self._cli(self.ports[0], "cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2]:
                continue
            for r in fields[8:]:
                lo, _, hi = r.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise AssertionError(f"no master serves slot {slot}")

    def stop(self) -> None:
        for port in list(self.procs):
            self.kill(port)

    def _answers(self, port: int) -> bool:
        return self._cli(port, "ping").strip() == "PONG"

    @staticmethod
    def _cli(port: int, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            check=False,
        )
        return out.stdout.decode()


@contextlib.contextmanager
def private_cluster(root: Path) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(root)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
