"""The intent matcher (dnc.domain.intent) on the labelled corpus: its confusion matrix and
what it costs per inbound message. No services needed.

Run: .venv/bin/python -m benchmarks.bench_intent [--repeat 200]

Cost: each corpus text is classified ``--repeat`` times in a row; its cost is the best of
five such runs divided by ``--repeat`` (the least disturbed run on a shared machine). The
figure is the median over the texts; the target is ≤ 20 µs. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from tests.unit import intent_corpus

from dnc.domain.intent import IntentMatcher

TARGET_US = 20.0


def cost_us(matcher: IntentMatcher, text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(repeat):
            matcher.classify(text)
        best = min(best, time.perf_counter_ns() - start)
    return best / repeat / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=200, help="calls per text and run")
    args = p.parse_args()
    started = time.perf_counter()
    matcher = IntentMatcher.default()
    built_ms = (time.perf_counter() - started) * 1000
    samples = intent_corpus.load()
    matrix = intent_corpus.confusion(matcher, samples)
    precision, recall = intent_corpus.scores(matrix)
    costs = {s.text: cost_us(matcher, s.text, args.repeat) for s in samples}
    by_label = {
        label: statistics.median(costs[s.text] for s in samples if s.label == label)
        for label in intent_corpus.LABELS
    }
    median = statistics.median(costs.values())
    p99 = statistics.quantiles(costs.values(), n=100)[98]
    print(f"intent matcher on {len(samples)} labelled replies (built in {built_ms:.0f} ms)")
    print(intent_corpus.render(matrix))
    print(
        f"cost per message: median {median:.2f} µs (target ≤ {TARGET_US:.0f}), p99 {p99:.2f} µs; "
        + ", ".join(f"{label} {us:.2f}" for label, us in by_label.items())
    )
    print(
        json.dumps(
            {
                "median_us": round(median, 3),
                "p99_us": round(p99, 3),
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "texts": len(samples),
                "met": median <= TARGET_US and precision >= 0.98 and recall >= 0.95,
            }
        )
    )


if __name__ == "__main__":
    main()
