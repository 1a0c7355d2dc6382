"""The benchmark table: one row per figure, with the baseline it was measured against in
the same run, its target and whether it was met."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import ARTIFACTS, median


@dataclass
class Row:
    figure: str
    result: str
    baseline: str = ""
    target: str = ""
    met: bool | None = None  # None = informational, or not measured

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "NO", None: ""}[self.met]


def kmsg(rate: float) -> str:
    return f"{rate / 1000:.1f}k msg/s"


def paired(a: dict[str, Any], b: dict[str, Any], key: str) -> list[float]:
    """``a ÷ b`` of ``key`` in each round: the two were drained side by side."""
    return [x[key] / y[key] for x, y in zip(a["runs"], b["runs"], strict=True)]


def listed(ratios: list[float]) -> str:
    return "(" + " ".join(f"{r:.2f}" for r in ratios) + ")"


def metrics_cost_row(tp: dict[str, Any], size: str) -> Row:
    """The gate with its metrics against the same gate with DNC_METRICS_ENABLED=false, both
    drained back to back in every round (in alternating order). Judged by CPU per message
    (without ÷ with, the median of the per-round ratios): throughput on a shared machine
    moved 0.51-0.98 between rounds of one run while CPU per message moved a few percent,
    and what metrics cost is CPU. The throughput ratio is shown beside it."""
    on, off = tp[f"gate@{size}"], tp["gate-no-metrics"]
    pairs = list(zip(on["runs"], off["runs"], strict=True))
    rates = [a["rate"] / b["rate"] for a, b in pairs]
    cpu = [b["cpu_us_per_msg"] / a["cpu_us_per_msg"] for a, b in pairs]
    paired = median(cpu)
    return Row(
        f"gate CPU per message without ÷ with metrics ({size} entries)",
        f"{paired:.3f} (median of per-round ratios)",
        f"CPU/msg {on['cpu_us_per_msg']:.2f} with vs {off['cpu_us_per_msg']:.2f} µs without; "
        f"throughput with ÷ without {median(rates):.3f} (per round "
        + " ".join(f"{r:.3f}" for r in rates)
        + ")",
        "≥ 0.97",
        paired >= 0.97,
    )


def render(rows: list[Row]) -> str:
    """A Markdown table (what the README copies)."""
    head = ("figure", "result", "baseline / detail (same run)", "target", "met")
    cells = [head] + [(r.figure, r.result, r.baseline, r.target, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    def version(*cmd: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
            return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis": version("redis-server", "--version"),
    }


def write(rows: list[Row], raw: dict[str, Any], command: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    data = {
        "command": command,
        "machine": machine(),
        "table": [asdict(r) | {"verdict": r.verdict} for r in rows],
        "markdown": render(rows),
        "raw": raw,
    }
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
