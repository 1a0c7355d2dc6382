"""Helpers shared by the API tests (no tests here): keys, settings, a started API context
driven in-process through httpx, and what the gate made of some outbound messages."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from dnc.api.app import create_app
from dnc.api.context import ApiContext
from dnc.api.server import ApiServer
from dnc.settings import ApiKey, ApiSettings, Settings
from tests.kit import api_view_writer, eventually, produce, reading

SECRET_A = "test-key-acme"  # grants acme and acme-eu
SECRET_B = "test-key-other"  # grants other
UNSUB_KEY = "u" * 40
PHONE = "441234567890"

MakeSettings = Callable[..., Awaitable[Settings]]


def key(name: str, secret: str, accounts: list[str]) -> ApiKey:
    return ApiKey(name=name, sha256=hashlib.sha256(secret.encode()).hexdigest(), accounts=accounts)


def auth(secret: str = SECRET_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def api_settings(make_settings: MakeSettings, tmp_path: Path, **api: Any) -> Settings:
    options: dict[str, Any] = {
        "keys": [key("ops", SECRET_A, ["acme", "acme-eu"]), key("other", SECRET_B, ["other"])],
        "view_path": str(tmp_path / "view.sqlite3"),
        "unsubscribe_keys": [UNSUB_KEY],
        "public_base_url": "https://dnc.example.com",
        **api,
    }
    return await make_settings(api=ApiSettings(**options))


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, context: ApiContext | None = None, *, view_writer: bool = True
) -> AsyncIterator[tuple[httpx.AsyncClient, ApiContext]]:
    """An API in this process (and in the PostgreSQL pass its view writer, unless the test
    runs its own: ``view_writer=False``)."""
    ctx = context or ApiContext.build(settings)
    async with api_view_writer(settings, enabled=view_writer):
        await ctx.start()
        transport = httpx.ASGITransport(app=create_app(ctx))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, ctx
        finally:
            await ctx.stop()


@contextlib.asynccontextmanager
async def served_api(settings: Settings) -> AsyncIterator[ApiServer]:
    """``dnc api`` on uvicorn at ``settings.api.port``, in this process, until the block ends."""
    async with api_view_writer(settings):
        server = ApiServer(settings)
        await server.start()
        serving = asyncio.create_task(server.run())
        try:

            async def started() -> bool:
                return bool(server.server.started)

            await eventually(started, what="the API server to start")
            yield server
        finally:
            await server.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(serving, 10)


async def add(client: httpx.AsyncClient, secret: str = SECRET_A, **body: Any) -> dict[str, Any]:
    body.setdefault("accounts", ["acme"])
    r = await client.post("/v1/entries", json=body, headers=auth(secret))
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def listing(client: httpx.AsyncClient, secret: str = SECRET_A, **params: Any) -> Any:
    r = await client.get("/v1/entries", params=params, headers=auth(secret))
    assert r.status_code == 200, r.text
    return r.json()


async def gate_verdicts(settings: Settings, *messages: dict[str, Any]) -> dict[str, str]:
    """message_id → "allowed" / "blocked" for these outbound messages."""
    t = settings.topics
    mine = {m["message_id"] for m in messages}
    verdicts: dict[str, str] = {}
    deadline = time.monotonic() + 30
    async with reading(settings, t.allowed, t.blocked) as (allowed, blocked):
        await produce(settings, t.outbound, *messages)
        while len(verdicts) < len(mine):
            assert time.monotonic() < deadline, f"the gate decided only {verdicts}"
            for r in await allowed.poll(0.1):
                mid = orjson.loads(r.value)["message_id"]
                if mid in mine:
                    verdicts[mid] = "allowed"
            for r in await blocked.poll(0.1):
                mid = orjson.loads(r.value)["message"]["message_id"]
                if mid in mine:
                    verdicts[mid] = "blocked"
    return verdicts
