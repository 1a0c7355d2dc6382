"""A benchmark child process: one role, measured from the inside, result as JSON.

    python -m benchmarks.worker drain gate|passthrough N [--profile FILE]
    python -m benchmarks.worker drain-shared N INSTANCES DIR     (benchmarks.scaling)
    python -m benchmarks.worker rebuild
    python -m benchmarks.worker commands

Settings come from ``DNC_*`` (``common.settings_env``), as for ``dnc <role>``. Runs on
uvloop, as ``dnc.runtime`` runs every role.

``drain`` times the role's pipeline through N committed input records that are already
waiting on the topic: from the first committed batch (so group join, producer start-up
and the gate's first filter build are not counted) to the one that reaches N. Also
reports process CPU seconds over the same window: a figure less disturbed by other
processes on a shared machine than wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.passthrough import Passthrough
from dnc.errors import IndexNotReady
from dnc.gate.role import Gate
from dnc.listwriter.role import ListWriter
from dnc.settings import Settings


async def drain(role_name: str, n: int, profile: str | None) -> dict[str, Any]:
    settings = Settings()
    role: Gate | Passthrough = Gate(settings) if role_name == "gate" else Passthrough(settings)
    await role.start()
    if isinstance(role, Gate):
        await _wait_index(role)
        if role.filter is not None:
            await role.filter.rebuild(role.index)
    # As dnc.runtime runs every role: what starting made is frozen out of the collector.
    gc.collect()
    gc.freeze()
    profiler: Any = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled", interval=0.0005)
    task = asyncio.create_task(role.run())
    pipeline = role.pipeline
    first: tuple[float, float, int] | None = None
    try:
        while True:
            done = pipeline.records
            if first is None and done > 0:
                first = (time.perf_counter(), time.process_time(), done)
                if profiler is not None:
                    profiler.start()
            if done >= n:
                end = (time.perf_counter(), time.process_time())
                break
            if task.done():
                task.result()
                raise RuntimeError("role stopped before draining")
            await asyncio.sleep(0.002)
    finally:
        if profiler is not None and profiler.is_running:
            profiler.stop()
        role.request_stop()
        await asyncio.gather(task, return_exceptions=True)
        await role.stop()
    assert first is not None
    if profiler is not None and profile:
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        await asyncio.to_thread(Path(profile).write_text, text)
    measured = pipeline.records - first[2]
    seconds = end[0] - first[0]
    return {
        "role": role_name,
        "records": measured,
        "seconds": seconds,
        "rate": measured / seconds,
        "cpu_us_per_msg": (end[1] - first[1]) / measured * 1e6,
        "batches": pipeline.batches,
        "counts": dict(role.counts),
    }


async def _wait_index(gate: Gate) -> None:
    """Until the index is complete (the gate would wait on its own; waiting here keeps
    that out of the measured window)."""
    for _ in range(6000):
        meta = await gate.index.meta()
        try:
            if meta.complete():
                return
        except IndexNotReady:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("index never became complete")


async def rebuild() -> dict[str, Any]:
    """Start a list writer on an empty index and time its catch-up with the changelog."""
    settings = Settings()
    writer = ListWriter(settings)
    parts = settings.topic_layout.list_partitions
    t0, c0 = time.perf_counter(), time.process_time()
    await writer.start()
    task = asyncio.create_task(writer.run())
    assigned: float | None = None
    try:
        while True:
            owned = writer.owned
            if assigned is None and owned:
                assigned = time.perf_counter()
            if len(owned) == parts and all(o.ready for o in owned.values()):
                t1, c1 = time.perf_counter(), time.process_time()
                break
            if task.done():
                task.result()
                raise RuntimeError("the list writer stopped during catch-up")
            await asyncio.sleep(0.01)
    finally:
        writer.request_stop()
        await asyncio.gather(task, return_exceptions=True)
        await writer.stop()
    assert assigned is not None
    return {
        "seconds": t1 - t0,
        "catch_up_seconds": t1 - assigned,
        "cpu_seconds": c1 - c0,
    }


async def commands() -> dict[str, Any]:
    """Start a list writer and time it through every command already on dnc.commands
    (until the index records each partition's command offset as processed)."""
    settings = Settings()
    parts = settings.topic_layout.list_partitions
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await probe.start()
    try:
        tps = [TopicPartition(settings.topics.commands, p) for p in range(parts)]
        ends = {tp.partition: off for tp, off in (await probe.end_offsets(tps)).items()}
    finally:
        await probe.stop()
    writer = ListWriter(settings)
    t0, c0 = time.perf_counter(), time.process_time()
    await writer.start()
    task = asyncio.create_task(writer.run())
    try:
        while True:
            meta = await writer.index.meta()
            if all(meta.commands.get(p, 0) >= end for p, end in ends.items()):
                t1, c1 = time.perf_counter(), time.process_time()
                break
            if task.done():
                task.result()
                raise RuntimeError("the list writer stopped")
            await asyncio.sleep(0.02)
    finally:
        writer.request_stop()
        await asyncio.gather(task, return_exceptions=True)
        await writer.stop()
    return {"seconds": t1 - t0, "cpu_seconds": c1 - c0}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="job", required=True)
    d = sub.add_parser("drain")
    d.add_argument("role", choices=["gate", "passthrough"])
    d.add_argument("n", type=int)
    d.add_argument("--profile")
    shared = sub.add_parser("drain-shared")  # benchmarks.scaling
    shared.add_argument("n", type=int)
    shared.add_argument("peers", type=int)
    shared.add_argument("dir")
    sub.add_parser("rebuild")
    sub.add_parser("commands")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import uvloop

    if args.job == "drain":
        result = uvloop.run(drain(args.role, args.n, args.profile))
    elif args.job == "drain-shared":
        from benchmarks.scaling import drain_shared

        result = uvloop.run(drain_shared(args.n, args.peers, args.dir))
    elif args.job == "rebuild":
        result = uvloop.run(rebuild())
    else:
        result = uvloop.run(commands())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
