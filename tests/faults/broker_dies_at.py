"""A role whose broker dies at one exact moment: during the first group-coordinator lookup
of a transactional producer, i.e. after a batch was produced and acknowledged and before
its consumer offset is committed (``send_offsets_to_transaction``).

That is where CI once lost a gate: the lookup's connection closed under it, aiokafka's
sender task ended with ``KafkaError("Unexpected error during batch delivery")`` and the
pipeline took that for fatal. Random broker restarts hit it now and then; this makes it
happen on every run. The broker is stopped (SIGSTOP) just before the lookup request goes
out, so the request is written to an open connection and waits; half a second later the
broker is killed (SIGKILL) and the connection closes with the request in flight. The test
restarts the broker.

Run as ``python -m tests.faults.broker_dies_at --pid-file F --state D --marker M <role>``;
only the fault suite uses it. The marker file is written when the broker is killed, and a
process started while it exists does nothing unusual (the fault happens once per test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from aiokafka.client import CoordinationType
from aiokafka.producer.sender import Sender

from dnc.cli import app


def broker_pid(pid_file: Path, state: str) -> int:
    """The fault suite's broker, and never another process: the pid recorded for this
    state folder, whose command line names that folder."""
    pid = int(pid_file.read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if state not in cmdline:
        raise RuntimeError(f"pid {pid} is not the fault suite's broker: {cmdline[:200]}")
    return pid


def wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Until every thread of ``pid`` is stopped. kill() returns before a busy JVM's threads
    have all stopped, and a network thread still running could answer the lookup sent
    next: the fault would then hit a later request, not the one this module is about."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                # The state follows the command name, which is in parentheses.
                states.append(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0])
        if states and all(s in ("T", "t") for s in states):
            return
        time.sleep(0.001)
    raise RuntimeError(f"broker pid {pid} did not stop within {timeout}s")


def arm(pid_file: Path, state: str, marker: Path) -> None:
    original = Sender._find_coordinator
    fired = False

    async def find_coordinator(self: Any, coordinator_type: Any, coordinator_key: str) -> Any:
        nonlocal fired
        fresh = coordinator_type not in self._coordinators
        if fresh and coordinator_type == CoordinationType.GROUP and not fired:
            fired = True
            pid = broker_pid(pid_file, state)
            os.kill(pid, signal.SIGSTOP)
            wait_stopped(pid)

            def kill() -> None:
                os.kill(pid, signal.SIGKILL)
                # Whole or not at all: the test reads the pid as soon as the file exists.
                tmp = marker.with_suffix(".tmp")
                tmp.write_text(str(pid))
                tmp.rename(marker)

            asyncio.get_running_loop().call_later(0.5, kill)
        return await original(self, coordinator_type, coordinator_key)

    Sender._find_coordinator = find_coordinator  # type: ignore[method-assign]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid-file", type=Path, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument("role")
    args = parser.parse_args()
    if not args.marker.exists():
        arm(args.pid_file, args.state, args.marker)
    app([args.role])
