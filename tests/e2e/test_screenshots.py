"""`make screenshots` (issue 17): the script seeds a demo list through the API and saves
the README's images — the list at desktop width, on a phone and in the dark theme, and
the import wizard."""

from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path
from types import ModuleType

import httpx

from tests.e2e.conftest import Stack
from tests.kit import ROOT


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "screenshots", ROOT / "deploy" / "local" / "screenshots.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head.startswith(b"\x89PNG\r\n\x1a\n"), path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


async def test_the_readme_screenshots_are_made_from_a_seeded_list(
    stack: Stack, tmp_path: Path
) -> None:
    # DNC_SCREENSHOTS_OUT=docs/screenshots writes the README's own images.
    out = Path(os.environ.get("DNC_SCREENSHOTS_OUT") or tmp_path)
    os.makedirs(out, exist_ok=True)
    shots = script()
    # The development key and accounts of `make run` (this session's stack has its own
    # topics and Redis keys, so these accounts hold nothing else).
    stack.grant("dev", shots.DEV_KEY, ["acme", "acme-eu", "globex"])
    saved = await shots.shoot(stack.base_url, shots.DEV_KEY, out)
    assert [p.name for p in saved] == [
        "list-desktop.png",
        "list-phone.png",
        "list-dark.png",
        "import-desktop.png",
    ]
    assert png_size(saved[0]) == (1440, 900)
    assert png_size(saved[1]) == (780, 1688)  # 390 × 844 CSS px at 2×
    headers = {"Authorization": f"Bearer {shots.DEV_KEY}"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers) as client:
        listed = (await client.get("/v1/entries")).json()
    assert listed["total"] == 14  # 8 by hand, 6 imported
    assert {e["source"] for e in listed["entries"]} == {"MANUAL", "IMPORT"}
