"""The gate's throughput with 1 and with 2 instances in one consumer group.

Each instance is a child process (``python -m benchmarks.worker drain-shared gate N K DIR``)
on the messages already waiting on the outbound topic, in a fresh consumer group. The
instances start together (a barrier of files in DIR, after each has built its filter, so
the group forms once), share their committed counts through DIR, and stop when together
they have committed N; each reports when it had committed how many (CLOCK_MONOTONIC is
one clock for every process). The rate is over the middle 80% of the N records of the
merged timeline, so start-up and the last partition's tail count for neither figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import median, run_child_async
from benchmarks.report import Row, kmsg
from dnc.errors import IndexNotReady
from dnc.gate.role import Gate
from dnc.settings import Settings

SAMPLE_S = 0.005


async def drain_shared(n: int, peers: int, where: str) -> dict[str, Any]:
    """One instance's part (run in the worker process)."""
    settings = Settings()
    gate = Gate(settings)
    await gate.start()
    for _ in range(6000):
        with contextlib.suppress(IndexNotReady):
            if (await gate.index.meta()).complete():
                break
        await asyncio.sleep(0.05)
    if gate.filter is not None:
        await gate.filter.rebuild(gate.index)
    shared = Path(where)
    me = shared / f"{os.getpid()}.count"
    me.write_text("0")
    deadline = time.monotonic() + 120
    while len(_peers(shared)) < peers:
        if time.monotonic() > deadline:
            raise RuntimeError("the other instances did not get ready")
        await asyncio.sleep(0.01)
    task = asyncio.create_task(gate.run())
    timeline: list[tuple[float, int]] = []
    cpu: list[float] = []
    last = -1
    try:
        while True:
            done = gate.pipeline.records
            if done != last:
                now = time.monotonic()
                timeline.append((now, done))
                cpu.append(time.process_time())
                me.write_text(str(done))
                last = done
            total = _committed(shared)
            if total >= n:
                break
            if task.done():
                task.result()
                raise RuntimeError("gate stopped before draining")
            await asyncio.sleep(SAMPLE_S)
    finally:
        gate.request_stop()
        await asyncio.gather(task, return_exceptions=True)
        await gate.stop()
    return {"timeline": timeline, "cpu": cpu, "counts": dict(gate.counts)}


def _peers(shared: Path) -> list[Path]:
    return list(shared.glob("*.count"))


def _committed(shared: Path) -> int:
    """What the instances have committed together (a file each: a few bytes, tmpfs)."""
    return sum(int(p.read_text() or 0) for p in _peers(shared))


def merge(parts: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """The rate and CPU/msg of the instances together, over their middle 80%."""
    events: list[tuple[float, int, int]] = []  # (time, instance, its committed count)
    for k, part in enumerate(parts):
        events += [(t, k, c) for t, c in part["timeline"]]
    events.sort()
    counts = [0] * len(parts)
    times, totals = [], []
    for t, k, c in events:
        counts[k] = c
        times.append(t)
        totals.append(sum(counts))
    lo, hi = n // 10, n - n // 10
    t_lo = times[next(i for i, v in enumerate(totals) if v >= lo)]
    t_hi = times[next(i for i, v in enumerate(totals) if v >= hi)]
    measured = (
        totals[next(i for i, v in enumerate(totals) if v >= hi)]
        - totals[next(i for i, v in enumerate(totals) if v >= lo)]
    )
    cpu = sum(_cpu_at(p, t_hi) - _cpu_at(p, t_lo) for p in parts)
    return {
        "instances": len(parts),
        "rate": measured / (t_hi - t_lo),
        "cpu_us_per_msg": cpu / measured * 1e6,
        "window_seconds": t_hi - t_lo,
        "records": measured,
    }


def _cpu_at(part: dict[str, Any], t: float) -> float:
    times = [x for x, _ in part["timeline"]]
    i = bisect_right(times, t) - 1
    return float(part["cpu"][max(i, 0)])


async def rounds(
    make_settings: Callable[[str], Settings],
    messages: int,
    count: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """1 and 2 gates, alternating, ``count`` times; each in a fresh consumer group
    (``make_settings(app)``). Medians per number of instances."""
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for n in range(count):
        for k in (1, 2):
            result = await measure(
                make_settings(f"scale{k}-{n}-{time.monotonic_ns()}"), messages, k
            )
            runs[k].append(result)
            log(
                f"scaling round {n + 1}: {k} gate(s) {kmsg(result['rate'])}, "
                f"{result['cpu_us_per_msg']:.2f} µs CPU/msg"
            )
    return {
        str(k): {
            "rate": median([r["rate"] for r in rs]),
            "cpu_us_per_msg": median([r["cpu_us_per_msg"] for r in rs]),
            "runs": rs,
        }
        for k, rs in runs.items()
    }


def row(result: dict[str, Any], entries: str, messages: int, count: int) -> Row:
    one, two = result["1"], result["2"]
    return Row(
        f"gate throughput, 1 → 2 instances in one group ({entries} entries, 6 partitions)",
        f"{kmsg(one['rate'])} → {kmsg(two['rate'])} (×{two['rate'] / one['rate']:.2f})",
        f"CPU/msg {one['cpu_us_per_msg']:.1f} / {two['cpu_us_per_msg']:.1f} µs (all "
        f"instances); {os.cpu_count()} cores shared with Kafka and Redis; middle 80% of "
        f"{messages // 1000}k messages; medians of {count}",
        "(information)",
    )


async def measure(settings: Settings, n: int, instances: int) -> dict[str, Any]:
    """Run ``instances`` gates in one group on the waiting messages (run in the parent)."""
    with tempfile.TemporaryDirectory(prefix="dnc-scaling-") as shared:
        parts = await asyncio.gather(
            *(
                run_child_async(settings, "drain-shared", str(n), str(instances), shared)
                for _ in range(instances)
            )
        )
    return merge(list(parts), n)
