"""Several ``make bench`` runs in one table: a row per figure, a column per run, and how
many runs met the target (what the README's performance section shows).

    .venv/bin/python -m benchmarks.compare artifacts/bench-A.json artifacts/bench-B.json ...
    .venv/bin/python -m benchmarks.compare --last 3      # the newest three full runs

A full run is one of ``python -m benchmarks.run`` without options (``make bench``); runs
of other commands are skipped by ``--last``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import ARTIFACTS

FULL = ".venv/bin/python -m benchmarks.run"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    data["path"] = path
    return data


def newest_full_runs(n: int) -> list[dict[str, Any]]:
    runs = [load(p) for p in sorted(ARTIFACTS.glob("bench-*.json"))]
    full = [r for r in runs if r.get("command", "").strip() == FULL]
    return full[-n:]


def table(runs: list[dict[str, Any]]) -> str:
    figures: list[str] = []
    cells: dict[str, list[str]] = {}
    targets: dict[str, str] = {}
    met: dict[str, list[bool | None]] = {}
    for k, run in enumerate(runs):
        for row in run["table"]:
            name = row["figure"].strip()
            if name not in cells:
                figures.append(name)
                cells[name] = ["—"] * len(runs)
                met[name] = []
            cells[name][k] = row["result"] or "not measured"
            targets[name] = row["target"] or targets.get(name, "")
            met[name].append(row["met"])
    head = ["figure", *(f"run {k + 1}" for k in range(len(runs))), "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in figures:
        judged = [m for m in met[name] if m is not None]
        verdict = f"{sum(judged)} of {len(judged)}" if judged else ""
        lines.append("| " + " | ".join([name, *cells[name], targets[name], verdict]) + " |")
    loads = ", ".join("/".join(f"{x:.1f}" for x in r["machine"]["load_average"]) for r in runs)
    lines.append("")
    lines.append(
        "Runs: "
        + ", ".join(f"`{Path(r['path']).name}`" for r in runs)
        + f"; load average at each end (1/5/15 min): {loads}."
    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path, help="bench JSON files (artifacts/)")
    p.add_argument("--last", type=int, default=0, help="the newest N full runs instead")
    a = p.parse_args()
    runs = newest_full_runs(a.last) if a.last else [load(f) for f in a.files]
    if not runs:
        raise SystemExit("no runs: give JSON files or --last N after `make bench`")
    print(table(runs))


if __name__ == "__main__":
    main()
