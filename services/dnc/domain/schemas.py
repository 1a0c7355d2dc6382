"""JSON Schemas of the contract, generated from the pydantic models in ``dnc.domain.events``."""

from __future__ import annotations

from pathlib import Path

import orjson

from dnc.domain.events import CONTRACT_MODELS

_HEADER = {"$schema": "https://json-schema.org/draft/2020-12/schema"}


def render() -> dict[str, bytes]:
    out = {}
    for name, model in sorted(CONTRACT_MODELS.items()):
        schema = {
            **_HEADER,
            "$id": f"https://dnc.local/schemas/{name}.json",
            **model.model_json_schema(mode="validation"),
        }
        out[f"{name}.json"] = (
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in render().items():
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Names whose file is missing or differs from the models."""
    rendered = render()
    stale = [
        n
        for n, data in rendered.items()
        if not (directory / n).exists() or (directory / n).read_bytes() != data
    ]
    extra = sorted(p.name for p in directory.glob("*.json") if p.name not in rendered)
    return stale + extra
