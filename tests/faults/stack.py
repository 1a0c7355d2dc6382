"""The fault suite's own services: a dedicated Kafka broker and Redis (``deploy/local/stack.sh``
with other ports and another state folder), and throwaway ``redis-server`` processes.

The fault tests kill and restart these freely. They never touch the shared stack
(``make up``, 127.0.0.1:19092 / 16379): every process killed here was started here, and
is found by the pid this module recorded, never by name.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.ports import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
SHARED_LIBS = ROOT / ".local" / "kafka" / "libs"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, not ours: treat as alive, never signal it
        return True
    return True


@dataclass
class FaultStack:
    """Kafka + Redis for the fault suite, managed with deploy/local/stack.sh."""

    state: Path = field(
        default_factory=lambda: Path(os.environ.get("DNC_FAULTS_STACK_DIR", ROOT / ".local/faults"))
    )
    kafka_port: int = field(
        default_factory=lambda: int(os.environ.get("DNC_FAULTS_KAFKA_PORT", "29092"))
    )
    controller_port: int = field(
        default_factory=lambda: int(os.environ.get("DNC_FAULTS_KAFKA_CONTROLLER_PORT", "29093"))
    )
    redis_port: int = field(
        default_factory=lambda: int(os.environ.get("DNC_FAULTS_REDIS_PORT", "26379"))
    )
    started_here: bool = False

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def kafka_pid_file(self) -> Path:
        return self.state / "kafka" / "pid"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_")}
        env.update(
            DNC_STACK_DIR=str(self.state),
            DNC_KAFKA_PORT=str(self.kafka_port),
            DNC_KAFKA_CONTROLLER_PORT=str(self.controller_port),
            DNC_REDIS_PORT=str(self.redis_port),
            DNC_KAFKA_HEAP=os.environ.get("DNC_FAULTS_KAFKA_HEAP", "512m"),
        )
        return env

    def _script(self, command: str, timeout: float = 600) -> None:
        result = subprocess.run(
            [str(ROOT / "deploy/local/stack.sh"), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"stack.sh {command} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def up(self) -> None:
        """Start what is not running (idempotent). Reuses the shared stack's jars."""
        self.started_here = not (port_open(self.kafka_port) and port_open(self.redis_port))
        if not port_open(self.kafka_port):
            # The fault suite's broker is disposable: an empty log each time it is started
            # from nothing, or every restart under test recovers the topics of all earlier
            # runs first (minutes, on a busy two-core machine) and outlasts its deadline.
            shutil.rmtree(self.state / "kafka" / "data", ignore_errors=True)
        libs = self.state / "kafka" / "libs"
        if not (libs / ".version").exists() and (SHARED_LIBS / ".version").exists():
            libs.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(libs, ignore_errors=True)
            shutil.copytree(SHARED_LIBS, libs)
        self._script("up")

    def down(self) -> None:
        self._script("down", timeout=120)

    def kafka_pid(self) -> int:
        pid = int(self.kafka_pid_file.read_text().strip())
        if not pid_alive(pid):
            raise RuntimeError(f"the fault suite's Kafka broker (pid {pid}) is not running")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if str(self.state) not in cmdline:
            raise RuntimeError(f"pid {pid} is not the fault suite's broker: {cmdline[:200]}")
        return pid

    def kill_kafka(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop the fault suite's broker (never another one: the pid is the one stack.sh
        recorded for this state folder, and the port must be ours)."""
        assert self.kafka_port != 19092, "refusing to touch the shared broker"
        pid = self.kafka_pid()
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while not self._kafka_gone(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def wait_kafka_gone(self, pid: int, timeout: float = 60) -> None:
        """Wait until a broker killed by someone else has exited."""
        deadline = time.monotonic() + timeout
        while not self._kafka_gone(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the fault suite's broker (pid {pid}) did not exit within {timeout}s"
                )
            time.sleep(0.05)

    def _kafka_gone(self, pid: int) -> bool:
        """Every thread of the broker has ended and its port is closed. The main thread
        turns zombie first and the listening socket is only closed with the last thread:
        on a busy machine a thread stuck in I/O keeps the port open for seconds, and
        stack.sh then takes it for a running broker and starts none (CI lost a run so)."""
        return not _threads_alive(pid) and not port_open(self.kafka_port)

    def start_kafka(self) -> None:
        self._script("up")

    async def wait_kafka_ready(self, timeout: float = 90) -> None:
        """The port opens before the broker answers metadata; wait for real answers."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka, request_timeout_ms=5000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception as exc:
                last = exc
                if self._kafka_exited():
                    raise RuntimeError(
                        f"the fault suite's broker exited while starting: {last!r}\n"
                        f"{self.kafka_diagnosis()}"
                    ) from None
                await asyncio.sleep(0.3)
            finally:
                await admin.close()
        raise RuntimeError(
            f"fault suite broker not ready after {timeout}s: {last!r}\n{self.kafka_diagnosis()}"
        )

    def _kafka_exited(self) -> bool:
        try:
            pid = int(self.kafka_pid_file.read_text().strip())
        except (OSError, ValueError):
            return False  # not started by stack.sh (a broker someone else runs)
        return not (pid_alive(pid) and _not_zombie(pid))

    def kafka_diagnosis(self, lines: int = 40) -> str:
        """Whether the broker process lives and the end of its log: its start-up steps say
        which one a slow start waits in (loading logs, registering with the controller…)."""
        try:
            pid = int(self.kafka_pid_file.read_text().strip())
            state = f"pid {pid} {'running' if pid_alive(pid) and _not_zombie(pid) else 'gone'}"
        except (OSError, ValueError) as exc:
            state = f"no pid: {exc}"
        try:
            tail = (self.state / "kafka/logs/server.out").read_text(errors="replace")
            tail = "\n".join(tail.splitlines()[-lines:])
        except OSError as exc:
            tail = f"(no broker log: {exc})"
        return f"broker {state}; the end of its log:\n{tail}"


def _threads_alive(pid: int) -> bool:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return False
    for task in tasks:
        try:
            # The state follows the command name, which is in parentheses.
            state = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # it ended while we looked
        if state not in ("Z", "X"):
            return True
    return False


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


class RedisServer:
    """A throwaway redis-server without persistence: killed, it comes back empty."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - lives with the child
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
