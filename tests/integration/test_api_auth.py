"""Keys and tenants on every endpoint (401 without a key; 403 for an account the key does
not grant, with the same answer whether that account exists or not), and the operations
endpoints: health, readiness, metrics, request logs without contacts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apikit import (
    PHONE,
    SECRET_A,
    SECRET_B,
    MakeSettings,
    add,
    api_client,
    api_settings,
    auth,
    listing,
)
from tests.kit import running

pytestmark = pytest.mark.integration


def requests_naming(account: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, httpx options) of every /v1 endpoint that names an account."""
    key = {"account": account, "contact": PHONE, "channel": None, "sender": None}
    return [
        ("GET", "/v1/entries", {"params": {"account": account}}),
        ("POST", "/v1/entries", {"json": {"contact": PHONE, "accounts": ["acme", account]}}),
        ("DELETE", "/v1/entries", {"json": [key]}),
        (
            "POST",
            "/v1/entries/remove-matching",
            {"params": {"account": account}, "json": {"dry_run": True}},
        ),
        ("GET", "/v1/check", {"params": {"account": account, "contact": PHONE}}),
        ("POST", "/v1/check", {"json": {"account": account, "contacts": [PHONE]}}),
        ("POST", "/v1/unsubscribe-links", {"json": {"account": account, "contact": PHONE}}),
        ("GET", "/v1/history", {"params": {"account": account, "contact": PHONE}}),
        ("POST", "/v1/erasures", {"json": {"contact": PHONE, "accounts": ["acme", account]}}),
        (
            "POST",
            "/v1/audience/dry-run",
            {"json": {"account": account, "channel": "SMS", "contacts": [PHONE]}},
        ),
        (
            "POST",
            "/v1/audience/dry-run",
            {
                "data": {"account": account, "channel": "SMS"},
                "files": {"file": ("a.csv", PHONE.encode())},
            },
        ),
        ("GET", "/v1/entries/export", {"params": {"account": account, "history": "true"}}),
    ]


async def test_every_endpoint_needs_a_key_and_keeps_tenants_apart(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"), api_client(settings) as (client, _):
        # "other" exists (key B put an entry there); "ghost" does not.
        await add(client, SECRET_B, contact=PHONE, accounts=["other"])
        await add(client, SECRET_A, contact=PHONE, accounts=["acme"])

        for method, url, options in [*requests_naming("acme"), ("GET", "/v1/writes/0:1", {})]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET_A}):
                r = await client.request(method, url, headers=headers, **options)
                assert r.status_code == 401, (method, url, headers)
                assert r.headers["www-authenticate"] == "Bearer"

        for (method, url, options), (_, _, ghost_options) in zip(
            requests_naming("other"), requests_naming("ghost"), strict=True
        ):
            seen = await client.request(method, url, headers=auth(SECRET_A), **options)
            ghost = await client.request(method, url, headers=auth(SECRET_A), **ghost_options)
            assert seen.status_code == ghost.status_code == 403, (method, url, seen.text)
            assert seen.content == ghost.content, (method, url)
            assert "other" not in seen.text

        # Without an account filter a key sees its own accounts only.
        page = await listing(client, SECRET_A)
        assert {e["account"] for e in page["entries"]} == {"acme"}
        page = await listing(client, SECRET_B)
        assert {e["account"] for e in page["entries"]} == {"other"}
        # Nothing was written for the refused requests.
        assert (await listing(client, SECRET_A))["total"] == 1


async def test_operations_endpoints(
    make_settings: MakeSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with api_client(settings) as (client, _):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        r = await client.get("/readyz")  # no list writer yet: the index was never built
        assert r.status_code == 503
        assert "index" in r.json()["missing"]
        async with running(settings, "listwriter"):
            ready = await _ready(client)
            assert ready.json()["checks"]["view"]["caught_up"] is True

            caplog.set_level(logging.INFO, logger="dnc.api.access")
            await add(client, contact="+44 1234 567890")
            check = await client.get(
                "/v1/check", params={"account": "acme", "contact": PHONE}, headers=auth()
            )
            assert check.headers["x-request-id"]
        access = [r.getMessage() for r in caplog.records if r.name == "dnc.api.access"]
        assert any('"route":"/v1/check"' in line for line in access)
        assert not any(PHONE in line or "567890" in line for line in access)

        text = (await client.get("/metrics")).text
        assert 'dnc_api_requests_total{method="GET",route="/v1/check",status="200"}' in text
        assert 'route="/v1/entries"' in text
        assert "dnc_api_request_seconds_bucket" in text
        assert "dnc_api_view_lag_records" in text
        assert "/u/" not in text.replace('route="/u/{token}"', "")
        assert (await client.get("/openapi.json")).json()["paths"]["/v1/entries"]


async def _ready(client: httpx.AsyncClient) -> httpx.Response:
    r = await client.get("/readyz")
    for _ in range(100):
        if r.status_code == 200:
            break
        await asyncio.sleep(0.1)
        r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    return r
