"""Expiry through the API, imports and the CLI against the real stack: an entry added with
``expires_at`` or ``ttl_days`` blocks until then, then no longer blocks and leaves the
list (the list writer's sweep, history "expire"); the list and exports show it; a
permanent add over a temporary entry makes it permanent; bad values are refused by name."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dnc.domain.timestamps import format_ms, now_ms, parse_ts
from dnc.settings import ApiSettings, ExpirySettings, Settings
from tests.apikit import (
    PHONE,
    SECRET_A,
    MakeSettings,
    add,
    api_client,
    api_settings,
    auth,
    gate_verdicts,
    key,
    listing,
)
from tests.integration.test_api_imports import analyze, finished
from tests.integration.test_cli import dnc  # noqa: F401 - the served `dnc` command
from tests.kit import outbound, running

pytestmark = pytest.mark.integration

SOON = "447700900111"
DAY_MS = 86_400_000


async def expiring_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """The API tests' settings, with a list writer that sweeps expired entries often."""
    return await make_settings(
        api=ApiSettings(
            keys=[key("ops", SECRET_A, ["acme", "acme-eu"])],
            view_path=str(tmp_path / "view.sqlite3"),
        ),
        expiry=ExpirySettings(sweep_interval_s=0.2),
    )


async def test_an_entry_blocks_until_it_expires_then_leaves_the_list(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await expiring_settings(make_settings, tmp_path)
    async with running(settings, "listwriter", "gate"), api_client(settings) as (client, _):
        before = now_ms()
        month = await add(client, contact=PHONE, channel="SMS", ttl_days=30)
        month_entry = month["results"][0]["entry"]
        expires = parse_ts(month_entry["expires_at"], "expires_at")
        assert before + 30 * DAY_MS <= expires <= now_ms() + 30 * DAY_MS
        until = format_ms(now_ms() + 4000)
        soon = await add(client, contact=SOON, expires_at=until)
        assert soon["results"][0]["entry"]["expires_at"] == until
        await add(client, contact="447700900222")  # for good

        listed = {e["contact"]: e for e in (await listing(client))["entries"]}
        assert listed[SOON]["expires_at"] == until
        assert "expires_at" not in listed["447700900222"]
        r = await client.get("/v1/entries/export", headers=auth())
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
        assert rows[0][-1] == "Expires"
        assert {row[0]: row[-1] for row in rows[1:]} == {
            PHONE: month_entry["expires_at"],
            SOON: until,
            "447700900222": "Never",
        }

        verdicts = await gate_verdicts(settings, outbound("m-1", SOON), outbound("m-2", PHONE))
        assert verdicts == {"m-1": "blocked", "m-2": "blocked"}

        # After its time: no longer blocks, and the sweep takes it off the list.
        await asyncio.sleep(max(0.0, (parse_ts(until, "t") - now_ms()) / 1000) + 0.1)
        verdicts = await gate_verdicts(settings, outbound("m-3", SOON), outbound("m-4", PHONE))
        assert verdicts == {"m-3": "allowed", "m-4": "blocked"}
        deadline = time.monotonic() + 20
        while SOON in {e["contact"] for e in (await listing(client))["entries"]}:
            assert time.monotonic() < deadline, "the expired entry stayed on the list"
            await asyncio.sleep(0.1)
        r = await client.get(
            "/v1/history", params={"contact": SOON, "account": "acme"}, headers=auth()
        )
        got = r.json()["history"]
        assert [(h["action"], h["cause"]["kind"]) for h in got] == [
            ("expire", "expiry"),
            ("add", "api"),
        ]
        assert got[0]["entry"]["expires_at"] == until

        # A permanent add over a temporary entry makes it permanent, keeping its source
        # and first time.
        again = await add(client, contact=PHONE, channel="SMS")
        assert again["results"][0]["outcome"] == "extended"
        entry = again["results"][0]["entry"]
        assert "expires_at" not in entry
        assert (entry["source"], entry["added_at"]) == ("MANUAL", month_entry["added_at"])


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"ttl_days": 3, "expires_at": "2099-01-01T00:00:00Z"}, "ttl_days", "choose one"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "not in the future"),
        ({"expires_at": "2099-01-01"}, "expires_at", "no time zone"),
        ({"expires_at": "next week"}, "expires_at", "not an RFC 3339"),
        ({"ttl_days": 0}, "ttl_days", "greater than 0"),
        ({"ttl_days": "soon"}, "ttl_days", "number"),
    ],
)
async def test_bad_expiry_is_refused(
    make_settings: MakeSettings, tmp_path: Path, body: dict[str, Any], field: str, words: str
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with api_client(settings) as (client, _):
        r = await client.post(
            "/v1/entries", json={"contact": PHONE, "accounts": ["acme"], **body}, headers=auth()
        )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["field"] == field
    assert words in problem["error"], problem


async def test_import_with_an_expiry(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"), api_client(settings) as (client, _):
        data = f"{PHONE}\n{SOON}\n".encode()
        for options, field in (
            ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
            ({"ttl_days": 1, "expires_at": "2099-01-01T00:00:00Z"}, "options.ttl_days"),
            ({"ttl_days": -1}, "options.ttl_days"),
        ):
            r = await analyze(client, "list.csv", data, **options)
            assert r.status_code == 422, r.text
            assert r.json()["field"] == field, r.json()

        body = (await analyze(client, "list.csv", data, ttl_days=7)).json()
        assert body["options"]["ttl_days"] == 7
        started = now_ms()
        r = await client.post(
            "/v1/imports",
            json={"upload_id": body["upload_id"], "accounts": ["acme"]},
            headers=auth(),
        )
        assert (await finished(client, r.json()["import_id"]))["state"] == "finished"
        deadline = time.monotonic() + 20
        while (await listing(client))["total"] < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for e in (await listing(client))["entries"]:
            assert started + 7 * DAY_MS <= parse_ts(e["expires_at"], "t") <= now_ms() + 7 * DAY_MS


async def test_expiry_from_the_command_line(
    dnc: Callable[..., Awaitable[Any]],  # noqa: F811 - the fixture imported above
) -> None:
    added = await dnc("add", PHONE, "-a", "acme", "--expires-at", "2099-01-01T00:00:00Z")
    assert added.code == 0, added.stderr
    listed = await dnc("list", "-a", "acme")
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t")[-1] == "Expires"
    assert lines[1].split("\t")[-1] == "2099-01-01T00:00:00.000Z"
    refused = await dnc("add", SOON, "-a", "acme", "--ttl-days", "1", "--expires-at", "2099-01-01Z")
    assert refused.code == 2
    assert "choose one" in refused.stderr
