"""Browser tests: the page at ``/`` in headless Chromium (Debian's, driven by Playwright)
against the real stack: Kafka, Redis, the ingest / list writer / gate roles in-process, and
the API served by uvicorn on a free localhost port.

One stack serves the whole session (starting the roles is the slow part). Each test gets
a tenant of its own: an API key granting two accounts nobody else uses, so tests never see
each other's entries. Each test also gets a fresh browser context (empty sessionStorage).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, async_playwright, expect

from dnc.api.app import create_app
from dnc.api.auth import KeyRing
from dnc.api.context import ApiContext
from dnc.settings import ApiKey, ApiSettings, Settings
from tests import kit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = kit.ROOT / "artifacts" / "e2e"
UNSUB_KEY = "e2e-unsubscribe-signing-key-0123456789abcdef"
TIMEOUT_MS = 15_000

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest keeps its own signal handling


@dataclass
class Stack:
    settings: Settings
    context: ApiContext
    base_url: str
    keys: list[ApiKey] = field(default_factory=list)

    def grant(self, name: str, secret: str, accounts: list[str]) -> None:
        """A new API key, effective at once (the key ring is read per request)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        self.keys.append(ApiKey(name=name, sha256=digest, accounts=accounts))
        self.context.keys = KeyRing(self.keys)


@dataclass
class Tenant:
    """An API key of this test's own, its accounts and an HTTP client using it."""

    name: str
    secret: str
    accounts: list[str]
    client: httpx.AsyncClient
    settings: Settings

    async def add(
        self,
        contact: str,
        *,
        channel: str | None = None,
        sender: str | None = None,
        accounts: list[str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "contact": contact,
            "channel": channel,
            "sender": sender,
            "accounts": accounts or self.accounts[:1],
        }
        r = await self.client.post("/v1/entries", json=body)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    async def entries(self, **params: Any) -> dict[str, Any]:
        r = await self.client.get("/v1/entries", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def contacts(self, **params: Any) -> set[str]:
        return {e["contact"] for e in (await self.entries(**params))["entries"]}

    async def stop_message(self, phone: str, account: str, to: str = "ACME") -> None:
        """An end user texts STOP: the ingest role turns it into an END_USER_MESSAGE entry."""
        message = kit.inbound(f"mo-{uuid.uuid4().hex[:8]}", phone, "STOP", account=account, to=to)
        await kit.produce(self.settings, self.settings.topics.inbound_messages, message)

    async def wait_total(self, total: int, timeout: float = 20, **params: Any) -> None:
        deadline = time.monotonic() + timeout
        while (await self.entries(**params))["total"] != total:
            assert time.monotonic() < deadline, f"the list never reached {total} entries"
            await asyncio.sleep(0.1)

    async def check(self, account: str, contact: str, **params: Any) -> dict[str, Any]:
        r = await self.client.get(
            "/v1/check", params={"account": account, "contact": contact, **params}
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@pytest.fixture(scope="session")
async def stack(
    services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    kafka, redis_url = services
    tmp = tmp_path_factory.mktemp("e2e")
    settings = kit.unique_settings(
        kafka,
        redis_url,
        api=ApiSettings(
            keys=[],
            view_path=str(tmp / "view.sqlite3"),
            unsubscribe_keys=[UNSUB_KEY],
            effective_timeout_s=15.0,
        ),
    )
    await kit.create_topics(settings)
    try:
        async with (
            kit.running(settings, "ingest", "listwriter", "gate"),
            kit.api_view_writer(settings),  # with DNC_TEST_VIEW_BACKEND=postgres
        ):
            context = ApiContext.build(settings)
            await context.start()
            sock = _free_socket()
            port = sock.getsockname()[1]
            config = uvicorn.Config(
                create_app(context), log_config=None, access_log=False, lifespan="off"
            )
            server = _Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                deadline = time.monotonic() + 20
                while not server.started:
                    assert not task.done(), "uvicorn stopped while starting"
                    assert time.monotonic() < deadline, "uvicorn did not start"
                    await asyncio.sleep(0.02)
                yield Stack(settings, context, f"http://127.0.0.1:{port}")
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, 20)
                sock.close()
                await context.stop()
    finally:
        await kit.drop_view_schema(settings)
        await kit.drop_redis_keys(settings)


@pytest.fixture
async def tenant(stack: Stack) -> AsyncIterator[Tenant]:
    uid = uuid.uuid4().hex[:6]
    secret = "e2e-" + secrets.token_urlsafe(16)
    accounts = [f"acme-{uid}", f"globex-{uid}"]
    stack.grant(f"staff-{uid}", secret, accounts)
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as client:
        yield Tenant(f"staff-{uid}", secret, accounts, client, stack.settings)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    """A fresh browser context; any script error or CSP violation fails the test."""
    context = await browser.new_context(base_url=stack.base_url, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    opened = await context.new_page()

    def console(msg: ConsoleMessage) -> None:
        # A 4xx the page expects (a wrong key, a 422) is logged as a failed resource.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            problems.append(f"console error: {msg.text}")

    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    opened.on("console", console)
    yield opened
    await context.close()
    assert not problems, problems


async def sign_in(page: Page, tenant: Tenant, path: str = "/") -> None:
    await page.goto(path)
    await page.get_by_label("API key").fill(tenant.secret)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#who-name")).to_have_text(tenant.name)


def rows(page: Page) -> Locator:
    """The list's entry rows (not the add-new line)."""
    return page.locator("#rows tr[data-key]")


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def csv_bytes(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()
