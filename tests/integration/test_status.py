"""``dnc status``, the real command, against the real stack: it says whether the gate would
forward now and why not, and exits non-zero when something needs attention."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from dnc.settings import Settings, ViewSettings
from tests.kit import ROOT, eventually, inbound, outbound, produce, reading, running, settings_env
from tests.ports import free_port

pytestmark = pytest.mark.integration


async def dnc_status(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``dnc status`` as its own process (the roles of the test run in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dnc",
        "status",
        *args,
        env=settings_env(settings),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode in (0, 1), err.decode()[-2000:]
    return proc.returncode, out.decode()


async def status_json(settings: Settings) -> tuple[int, dict[str, Any]]:
    code, out = await dnc_status(settings, "--json")
    return code, orjson.loads(out)


async def test_nothing_running_needs_attention(settings: Settings) -> None:
    code, found = await status_json(settings)
    assert code == 1
    assert found["gate_forwards"] is False
    assert found["why_not"] == ["index_incomplete", "no_gate_running"]
    assert found["kafka"] == "ok" and found["redis"] == "ok"
    assert {g["role"]: g["members"] for g in found["groups"]} == {
        "ingest": [],
        "listwriter": [],
        "gate": [],
    }


async def test_redis_unreachable_is_the_reason(make_settings: Any) -> None:
    settings = await make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    code, found = await status_json(settings)
    assert code == 1
    assert "redis_unreachable" in found["why_not"]
    assert found["redis"].startswith("unreachable")


async def test_running_roles_with_no_backlog_are_all_well(settings: Settings) -> None:
    t = settings.topics
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        reading(settings, t.allowed, t.blocked) as (allowed, blocked),
    ):
        await produce(settings, t.inbound_messages, inbound("mo-1", "441111111111", "STOP"))
        await allowed.wait_for(1, timeout=30)  # the STOP's confirmation
        await produce(settings, t.outbound, outbound("m-1", "441111111111"))
        await blocked.wait_for(1, timeout=30)
        last: list[Any] = []

        async def all_well() -> bool:
            code, found = await status_json(settings)
            last[:] = [code, found]
            return code == 0

        await eventually(all_well, timeout=60, interval=1.0, what="dnc status to exit 0")
        code, found = last
        assert found["gate_forwards"] is True and found["why_not"] == []
        groups = {g["role"]: g for g in found["groups"]}
        assert all(len(g["members"]) == 1 for g in groups.values())
        assert groups["gate"]["total_lag"] == 0
        assert found["index"]["complete"] is True
        assert found["index"]["max_lag"] <= 100
        code, text = await dnc_status(settings)
        assert code == 0
        assert "gate    forwards now" in text and "all well" in text


async def test_the_postgres_list_view_and_its_writer_are_shown(
    postgres_url: str,  # first: its database is dropped after the settings' schema
    make_settings: Any,
) -> None:
    settings = await make_settings(
        view=ViewSettings(backend="postgres", postgres_url=SecretStr(postgres_url))
    )
    code, found = await status_json(settings)
    assert code == 1
    assert found["view"]["reachable"] is False
    assert any("no list view yet" in a for a in found["attention"])

    async with running(settings, "viewwriter"):

        async def applied() -> bool:
            _, now = await status_json(settings)
            found.update(now)
            view = now["view"]
            return bool(view["reachable"] and view["logs"]["changes"] and view["max_lag"] == 0)

        await eventually(applied, timeout=30)
    assert not any("list view" in a for a in found["attention"])
    code, text = await dnc_status(settings)
    assert f"view    PostgreSQL schema {settings.view_schema()}: reachable" in text
