"""Schemathesis against the served OpenAPI document: generated requests to every operation
(valid and invalid bodies, parameters and headers, with a key and without) never get a
server error. The API runs on uvicorn with the real roles behind it, so writes go all the
way through the list writer."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path

import pytest
from tests.integration.test_api_kit import SECRET_A, MakeSettings, api_settings
from tests.kit import ROOT, eventually, running

from dnc.api.server import ApiServer

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_generated_requests_never_get_a_server_error(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    st = Path(sys.executable).with_name("schemathesis")
    assert st.exists() or shutil.which("schemathesis"), "schemathesis is a dev dependency"
    port = free_port()
    settings = await api_settings(make_settings, tmp_path, port=port)
    async with running(settings, "ingest", "indexer", "gate"):
        server = ApiServer(settings)
        await server.start()
        serving = asyncio.create_task(server.run())
        try:

            async def started() -> bool:
                return bool(server.server.started)

            await eventually(started, what="the API server to start")
            proc = await asyncio.create_subprocess_exec(
                str(st), "run", f"http://127.0.0.1:{port}/openapi.json",
                "--checks", "not_a_server_error",
                "--header", f"Authorization: Bearer {SECRET_A}",
                "--max-examples", "50",
                "--seed", "20261126",
                "--workers", "1",
                "--request-timeout", "30",
                "--no-color",
                cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 900)
        finally:
            await server.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(serving, 10)
    text = out.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    assert "Server error" not in text, text[-6000:]
    assert proc.returncode == 0, text[-6000:]
    print(text.strip().splitlines()[-1])
