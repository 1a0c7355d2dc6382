"""schemas/ holds what the event models generate: this fails when they drift."""

from __future__ import annotations

from pathlib import Path

from dnc.domain.schemas import stale_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_schemas_match_the_models() -> None:
    assert stale_schemas(SCHEMAS) == [], "run `dnc schemas write` and commit the result"
