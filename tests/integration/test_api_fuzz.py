"""Schemathesis against the served OpenAPI document: generated requests to every operation
(valid and invalid bodies, parameters and headers, with a key and without) never get a
server error. The API runs on uvicorn with the real roles behind it, so writes go all the
way through the list writer."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from tests.apikit import (
    SECRET_A,
    MakeSettings,
    api_settings,
    served_api,
)
from tests.kit import running
from tests.ports import free_port

pytestmark = pytest.mark.integration


async def test_generated_requests_never_get_a_server_error(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    st = shutil.which("schemathesis", path=Path(sys.executable).parent)
    assert st, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    port = free_port()
    settings = await api_settings(make_settings, tmp_path, port=port)
    async with running(settings, "ingest", "listwriter", "gate"), served_api(settings):
        proc = await asyncio.create_subprocess_exec(
            st, "run", f"http://127.0.0.1:{port}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {SECRET_A}",
            "--max-examples", "50",
            "--seed", "20261126",
            "--workers", "1",
            "--request-timeout", "30",
            "--no-color",
            cwd=tmp_path,  # its hypothesis database and reports stay there
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 900)
    text = out.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    assert "Server error" not in text, text[-6000:]
    assert proc.returncode == 0, text[-6000:]
    print(text.strip().splitlines()[-1])
