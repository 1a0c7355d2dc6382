"""Micro-benchmark of the gate's per-message check alone: the compiled one (dnc_hotpath)
against its Python twin, on the messages of ``make bench`` (every 20th to a listed
contact), with a Bloom filter holding those contacts, in batches of 2000 over 6 partitions.

Run: .venv/bin/python -m benchmarks.bench_gate_check [--messages 200000]
Prints CPU microseconds per message (best of five repeats) and their ratio.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from benchmarks.common import outbound_message
from dnc.gate.filter import BloomFilter
from dnc.gate.reader import OutboundReader
from dnc.gate.role import Gate
from dnc.settings import GateSettings, Settings

BATCH = 2000
PARTITIONS = 6


def batches(n: int) -> list[dict[TopicPartition, list[ConsumerRecord[Any, Any]]]]:
    rng = random.Random(7)
    values = [outbound_message(j, rng)[1] for j in range(n)]
    out = []
    for start in range(0, n, BATCH):
        chunk = values[start : start + BATCH]
        out.append(
            {
                TopicPartition("out", p): [
                    ConsumerRecord("out", p, i, 0, 0, None, v, None, 0, len(v), [])
                    for i, v in enumerate(chunk[p::PARTITIONS])
                ]
                for p in range(PARTITIONS)
            }
        )
    return out


def a_bloom(reader: OutboundReader, work: list[Any]) -> BloomFilter:
    """The contacts of the blocked messages (every 20th), as the gate's filter holds them
    (in the Bloom filter that gate makes: the extension's own, or rbloom's)."""
    bloom = reader.bloom_class(2_000_000, 0.01)
    for batch in work:
        for records in batch.values():
            for r in records[::20]:
                bloom.update([reader.parse(r.value)[4] & reader.filter_mask])
    return bloom


def per_message(reader: OutboundReader, work: list[Any], bloom: BloomFilter, n: int) -> float:
    reader.check(work[0], bloom, True)  # warm: accounts and senders learned
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for batch in work:
            reader.check(batch, bloom, True)
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=200_000)
    n = p.parse_args().messages
    work = batches(n)
    rows = {}
    for label, native in (("python", False), ("native", True)):
        gate = Gate(Settings(gate=GateSettings(native_check=native)))
        if native and gate.reader.native is None:
            print(f"native: not available ({gate.check_impl})")
            continue
        bloom = a_bloom(gate.reader, work)
        rows[label] = per_message(gate.reader, work, bloom, n)
        print(f"{label:7s} {rows[label]:.3f} µs CPU per message  ({gate.check_impl})")
    if len(rows) == 2:
        print(f"python ÷ native: {rows['python'] / rows['native']:.1f}×")


if __name__ == "__main__":
    main()
