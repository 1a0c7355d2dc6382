"""What the role metrics cost per batch, measured alone (CPU-bound, no services): the calls
the pipeline and the gate make for one batch over six partitions, with metrics on and with
``DNC_METRICS_ENABLED=false`` (no-op families), and that difference per message at the
gate's usual batch size. ``make bench`` measures the same end to end (the gate with ÷
without metrics row), where a loaded machine's noise is far larger than this.

    .venv/bin/python -m benchmarks.bench_metrics [--batches 20000] [--batch-size 2000]
"""

from __future__ import annotations

import argparse
import json
import time

from dnc.metrics import GateMetrics

PARTITIONS = 6


def per_batch_us(enabled: bool, batches: int) -> float:
    m = GateMetrics(enabled=enabled)
    started = time.process_time()
    for _ in range(batches):
        for p in range(PARTITIONS):  # what TransactionalPipeline does per batch
            m.lag("t.outbound", p, 100)
            m.committed("t.outbound", {"allowed": 300, "blocked": 15}, {})
        m.transaction_seconds.observe(0.002)
        m.batch_seconds.observe(0.004)
        m.lookups.inc(15)  # and the gate
        m.lookup_hits.inc(15)
        m.fail_closed.clear()
    return (time.process_time() - started) / batches * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=2000, help="messages per batch")
    a = p.parse_args()
    on, off = per_batch_us(True, a.batches), per_batch_us(False, a.batches)
    extra = (on - off) / a.batch_size
    print(
        f"metrics on {on:.1f} µs, off {off:.1f} µs per {PARTITIONS}-partition batch; "
        f"{extra * 1000:.1f} ns per message at {a.batch_size} messages per batch"
    )
    print(json.dumps({"on_us_per_batch": on, "off_us_per_batch": off, "ns_per_msg": extra * 1e3}))


if __name__ == "__main__":
    main()
