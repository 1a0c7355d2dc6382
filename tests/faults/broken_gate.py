"""A deliberately broken gate for the fault suite's self-test: ``Gate._trust`` does
nothing, so the gate believes whatever the index says (an empty index after a Redis
restart included). Run as ``python -m tests.faults.broken_gate``; never used otherwise."""

from __future__ import annotations

from dnc.cli import app
from dnc.gate.role import Gate
from dnc.index.meta import IndexMeta


def _trust_anything(self: Gate, meta: IndexMeta) -> None:
    return None


if __name__ == "__main__":
    Gate._trust = _trust_anything  # type: ignore[method-assign]
    app(["gate"])
