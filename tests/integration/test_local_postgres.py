"""``deploy/local/postgres.sh``: a private cluster (own port and state directory) started,
started again, stopped and started once more, as ``make up-postgres`` / ``make down`` do."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.ports import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy/local/postgres.sh"


@pytest.fixture
def private() -> Iterator[tuple[Path, int]]:
    # Under the worktree's .local, not pytest's tmp_path: run as root, the cluster belongs
    # to the 'postgres' user, who cannot enter root's private temporary directory.
    state = ROOT / ".local" / "tests" / f"pg-{uuid.uuid4().hex[:8]}"
    state.mkdir(parents=True)
    port = free_port()
    yield state, port
    where = Path(_run(state, port, "dir").strip())
    _run(state, port, "down")
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(where, ignore_errors=True)  # elsewhere when the checkout is closed to it


def _run(state: Path, port: int, command: str) -> str:
    env = {**os.environ, "DNC_STACK_DIR": str(state), "DNC_POSTGRES_PORT": str(port)}
    done = subprocess.run(
        [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"postgres.sh {command}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _server_pid(state: Path, port: int) -> str:
    where = Path(_run(state, port, "dir").strip())
    return (where / "data/postmaster.pid").read_text().split()[0]


def test_up_is_idempotent_down_stops_only_its_own_and_data_survives(
    private: tuple[Path, int],
) -> None:
    state, port = private
    url = f"postgresql://dnc@127.0.0.1:{port}/dnc"
    assert _run(state, port, "url").strip() == url

    assert "postgres is up" in _run(state, port, "up")
    pid = _server_pid(state, port)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (7)")

    again = _run(state, port, "up")
    assert "already running" in again
    assert _server_pid(state, port) == pid  # the running server was reused, not restarted

    assert "stopping postgres" in _run(state, port, "down")
    assert not port_open(port)
    assert "not started by this stack" in _run(state, port, "down")

    _run(state, port, "up")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT n FROM kept").fetchone()
    assert row == (7,)
