"""The fault suite runs against a Kafka broker and a Redis of its own.

The session fixture ``fault_stack`` starts them with ``deploy/local/stack.sh`` under
``.local/faults`` on other ports (29092/29093 Kafka, 26379 Redis; ``DNC_FAULTS_*`` change
them), reusing the shared stack's jars, and stops them at the end if it started them
(``DNC_FAULTS_KEEP_STACK=1`` keeps them for the next run). The shared stack that the other
tiers use (``make up``) is never touched: the scenarios kill and restart only what this
suite started.

At the end of the session every scenario's figures are printed as a table and merged into
``artifacts/faults.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.faults.harness import ARTIFACTS, RESULTS
from tests.faults.stack import FaultStack


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: a longer fault variant (make test-faults)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
async def fault_stack() -> AsyncIterator[FaultStack]:
    import asyncio

    stack = FaultStack()
    await asyncio.to_thread(stack.up)
    await stack.wait_kafka_ready()
    yield stack
    if stack.started_here and not os.environ.get("DNC_FAULTS_KEEP_STACK"):
        await asyncio.to_thread(stack.down)


COLUMNS = [
    ("scenario", "scenario"),
    ("rounds", "rounds"),
    ("messages", "messages"),
    ("opt_outs", "opt-outs"),
    ("allowed", "allowed"),
    ("blocked", "blocked"),
    ("dead_lettered", "dead-lettered"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("leaked", "leaked"),
    ("reopened", "reopened"),
    ("wrongly_blocked", "wrongly blocked"),
    ("unexpected_exits", "unexpected exits"),
    ("duration_s", "s"),
]


def _cell(value: Any) -> str:
    return str(round(value) if isinstance(value, float) else value)


# Adds through the API: shown when a scenario of the run made some (sigkill-api).
API_COLUMNS = [
    ("requests", "api requests"),
    ("acked", "acked"),
    ("unknown", "unknown"),
    ("adds_lost", "adds lost"),
    ("adds_duplicated", "adds duplicated"),
]


def _table(rows: list[dict[str, Any]]) -> list[str]:
    columns = COLUMNS
    if any(r.get("requests") for r in rows):
        columns = COLUMNS[:-1] + API_COLUMNS + COLUMNS[-1:]
    head = [title for _key, title in columns]
    body = [[_cell(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in body
    ]
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    path = ARTIFACTS / "faults.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    merged: dict[str, dict[str, Any]] = {}
    if path.exists():
        try:
            merged = {r["scenario"]: r for r in json.loads(path.read_text())["scenarios"]}
        except (ValueError, KeyError, TypeError):
            merged = {}
    for r in RESULTS:
        merged[r["scenario"]] = r
    path.write_text(json.dumps({"scenarios": list(merged.values())}, indent=2) + "\n")
    terminalreporter.section("fault suite: counts by message id")
    for line in _table(RESULTS):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {path})")
