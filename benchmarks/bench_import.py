"""A 15 MB CSV through the real import flow: analyze, start, wait until finished (every
entry effective at the gate), timed from the first byte of the upload.

    .venv/bin/python -m benchmarks.bench_import                 # API + list writer processes
    .venv/bin/python -m benchmarks.bench_import --profile DIR   # + pyinstrument of both
    .venv/bin/python -m benchmarks.bench_import --py-spy DIR    # + py-spy (raw) of both

The API (``dnc api``, with its list view) and the list writer (``dnc listwriter``) run as
processes of their own, in a namespace of their own, against the local Kafka and Redis;
the client talks HTTP to the API like the CLI does. The file is deterministic: ~90%
phone numbers written in international format, ~10% e-mail addresses, a few senders and
channels, and a few repeated rows.

Each phase reports the CPU seconds of the roles and of the shared Kafka broker and Redis
server (other users of the machine count there too), and the run reports CPU µs per
imported row of each: a figure that noise moves far less than the wall-clock time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from tests.ports import free_port

from benchmarks.common import ROOT, bench_settings, create_topics, drop_run, new_run_id
from benchmarks.common import settings_env as base_env
from dnc.settings import ApiKey, ApiSettings, Settings

KEY = "bench-import-key"
SENDERS = ("ACME", "InfoSMS", "447700900123", "news@acme.com", "")
CHANNELS = ("SMS", "", "VIBER", "sms", "VOICE")


def make_csv(path: Path, target_bytes: int, seed: int = 5) -> int:
    """Write the file; return its number of data rows (a header row comes first)."""
    rng = random.Random(seed)
    rows = 0
    size = 0
    with path.open("w", newline="") as out:
        out.write("contact,sender,channel\r\n")
        while size < target_bytes - 64:
            if rng.random() < 0.1:
                contact = f"user{rng.randrange(10**9)}@example{rng.randrange(50)}.com"
                sender, channel = rng.choice(("news@acme.com", "")), rng.choice(("", "EMAIL"))
            else:
                contact = f"+44 77{rng.randrange(10**8):08d}"
                sender, channel = rng.choice(SENDERS), rng.choice(CHANNELS)
            line = f"{contact},{sender},{channel}\r\n"
            out.write(line)
            size += len(line)
            rows += 1
    return rows


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shared_pids() -> dict[str, int]:
    """The local Kafka broker and Redis server (found by their command lines)."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline:
            found.setdefault("kafka", int(proc.name))
        elif cmdline.startswith(b"redis-server"):
            found.setdefault("redis", int(proc.name))
    return found


def attach_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy follows the role until it exits (raw folded stacks, for grep and flame
    graphs); it samples from outside, so the role runs at full speed."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "-r",
            "200",
            "--threads",
            "-f",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(out.with_suffix(".log")).open("ab"),
    )


def start_role(
    settings: Settings, role: str, log_dir: Path, profile: Path | None
) -> subprocess.Popen[bytes]:
    log = (log_dir / f"{role}.log").open("ab")
    name = role.rstrip("0123456789")  # listwriter1, listwriter2… are more list writers
    command = [sys.executable, "-m", "dnc", name]
    if profile is not None:
        out = profile / f"{role}.txt"
        command = [
            sys.executable,
            "-m",
            "pyinstrument",
            "-r",
            "text",
            "-o",
            str(out),
            "-m",
            "dnc",
            name,
        ]
    return subprocess.Popen(command, env=base_env(settings), stdout=log, stderr=log, cwd=ROOT)


async def wait_ready(client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, run_id: str, work: Path) -> dict[str, Any]:
    rows = args.rows
    port = free_port()
    settings = bench_settings(run_id, index="list", app="import").model_copy(
        update={
            "api": ApiSettings(
                port=port,
                keys=[
                    ApiKey(
                        name="bench",
                        sha256=hashlib.sha256(KEY.encode()).hexdigest(),
                        accounts=["acme", "acme-eu"],
                    )
                ],
                view_path=str(work / "view.sqlite3"),
            ),
        }
    )
    await create_topics(settings)
    profile = Path(args.profile) if args.profile else None
    roles = ["api"] + [f"listwriter{i}" if i else "listwriter" for i in range(args.list_writers)]
    procs = {role: start_role(settings, role, work, profile) for role in roles}
    spies = []
    if args.py_spy:
        spies = [attach_py_spy(p.pid, Path(args.py_spy) / f"{r}.raw") for r, p in procs.items()]
    shared = shared_pids()
    accounts = ["acme", "acme-eu"][: args.accounts]
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120
        ) as client:
            await wait_ready(client)
            await asyncio.sleep(2)  # let the list writers take their partitions
            marks: list[tuple[str, float, dict[str, float]]] = []

            def mark(name: str) -> None:
                cpu = {role: cpu_seconds(p.pid) for role, p in procs.items()}
                for service, pid in shared.items():
                    with contextlib.suppress(OSError):
                        cpu[service] = cpu_seconds(pid)
                marks.append((name, time.perf_counter(), cpu))

            data = args.data
            mark("start")
            r = await client.post(
                "/v1/imports/analyze",
                files={"file": ("import.csv", data)},
                data={"skip_rows": "1"},
            )
            r.raise_for_status()
            analysis = r.json()
            mark("analyze (upload, parse, check)")
            r = await client.post(
                "/v1/imports", json={"upload_id": analysis["upload_id"], "accounts": accounts}
            )
            r.raise_for_status()
            import_id = r.json()["import_id"]
            while True:
                status = (await client.get(f"/v1/imports/{import_id}")).json()
                if len(marks) == 2 and status["phase"] != "reading":
                    mark("start + read + submit")
                if status["state"] != "running":
                    break
                await asyncio.sleep(0.25)  # about what the CLI does
            if len(marks) == 2:
                mark("start + read + submit")
            mark("until effective at the gate")
            while True:
                listed = (await client.get("/v1/entries", params={"limit": 1})).json()
                if listed["total"] >= status["added"]:
                    break
                await asyncio.sleep(0.25)
            mark("until the list view shows all (not part of the target)")
            # The history (a person's "why") may follow the list (HistoryFollows in
            # dnc.api.view.tailing): the view is whole once nothing is left to read.
            while True:
                if await view_lag(client) == 0:
                    break
                await asyncio.sleep(0.25)
            mark("until the list view's history is complete too")
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        for spy in spies:
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
        if not args.keep:
            await drop_run(run_id)
    return {
        "file_mb": round(len(data) / 1024 / 1024, 2),
        "rows": rows,
        "accounts": len(accounts),
        "state": status["state"],
        "error": status["error"],
        "valid": analysis["valid"],
        "duplicate": analysis["duplicate"],
        "invalid": analysis["invalid"],
        "added": status["added"],
        "already_present": status["already_present"],
        "phases": [
            {
                "phase": name,
                "seconds": round(t - marks[i - 1][1], 2),
                "cpu_seconds": {r: round(cpu[r] - marks[i - 1][2][r], 2) for r in cpu},
            }
            for i, (name, t, cpu) in enumerate(marks)
            if i
        ],
        "import_seconds": round(marks[3][1] - marks[0][1], 2),
        # Relative to reading the same file in the same run (upload, parse, normalise,
        # check): a slower machine moves both alike.
        "analyze_seconds": round(marks[1][1] - marks[0][1], 2),
        "import_over_analyze": round((marks[3][1] - marks[0][1]) / (marks[1][1] - marks[0][1]), 2),
        "view_after_seconds": round(marks[4][1] - marks[3][1], 2),
        "history_after_seconds": round(marks[5][1] - marks[3][1], 2),
        # Analyze + apply until effective, per data row: what the import costs each
        # process, whatever else the machine was doing.
        "cpu_us_per_row": {
            r: round((marks[3][2][r] - marks[0][2][r]) / rows * 1e6, 1)
            for r in marks[0][2]
            if r in marks[3][2]
        },
        "work_dir": str(work),
    }


async def view_lag(client: httpx.AsyncClient) -> float:
    """The API's ``dnc_api_view_lag_records``: records of both logs its view has to read."""
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("dnc_api_view_lag_records "):
            return float(line.split()[1])
    raise RuntimeError("the API's /metrics has no dnc_api_view_lag_records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=15.0, help="file size (default 15)")
    parser.add_argument("--accounts", type=int, default=1, choices=(1, 2))
    parser.add_argument("--list-writers", type=int, default=1, help="list writer processes")
    parser.add_argument("--profile", help="directory for pyinstrument reports of both roles")
    parser.add_argument("--py-spy", help="directory for py-spy raw profiles of both roles")
    parser.add_argument("--dir", help="work directory (file, logs, view)")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and keys")
    args = parser.parse_args()
    run_id = new_run_id()
    work = Path(args.dir or f"/tmp/{run_id}")
    work.mkdir(parents=True, exist_ok=True)
    for folder in (args.profile, args.py_spy):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    args.rows = make_csv(work / "import.csv", int(args.mb * 1024 * 1024))
    args.data = (work / "import.csv").read_bytes()
    result = asyncio.run(run(args, run_id, work))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
