"""Privacy mode through the API against the real stack: contacts added by hand, by import
and by an end user's STOP are stored only as contact ids (commands, changelog, history and
the list view never hold one in the clear); the list shows them masked; check, the gate,
dry run, filters, export, history, removal and erasure all work with the contact or its
id; a prefix filter, which cannot work on hashes, is refused with the reason."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from dnc.api.view.backend import view_schema
from dnc.api.view.listview import view_file
from dnc.domain.contactids import is_token
from dnc.settings import ApiSettings, ConfirmationSettings, PrivacySettings, Settings
from tests.apikit import (
    SECRET_A,
    MakeSettings,
    add,
    api_client,
    auth,
    gate_verdicts,
    key,
    listing,
)
from tests.integration.test_api_history import live_records, records
from tests.integration.test_api_imports import analyze, finished
from tests.kit import inbound, outbound, produce, reading, running

pytestmark = pytest.mark.integration

PHONE, STOPPED, IMPORTED, FREE = "441234567890", "447700900501", "447700900502", "447700900599"
MAIL, MAIL2 = "jane@example.com", "joe@example.org"
CLEAR = (PHONE, STOPPED, IMPORTED, MAIL, MAIL2)
PRIVACY_KEY = "privacy-test-key-0123456789-abcdefghijklmnopqrstuvwxyz"


async def private_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return await make_settings(
        api=ApiSettings(
            keys=[key("ops", SECRET_A, ["acme", "acme-eu"])],
            view_path=str(tmp_path / "view.sqlite3"),
        ),
        privacy=PrivacySettings(enabled=True, keys=[SecretStr(PRIVACY_KEY)]),
        # A confirmation must reach the number, so it is the one place a STOP's number
        # travels (in dnc.commands, to the list writer); off here to check every topic.
        confirmation=ConfirmationSettings(enabled=False),
    )


def assert_no_clear_contact(data: bytes, where: str) -> None:
    for contact in CLEAR:
        assert contact.encode() not in data, f"{contact} in {where}"


def view_rows(settings: Settings, table: str) -> list[Any]:
    """Every row of a table of the list view, on its backend."""
    if settings.view.backend == "postgres":
        url = settings.view.postgres_url.get_secret_value()
        with psycopg.connect(url) as conn:
            query = psycopg.sql.SQL("SELECT * FROM {}.{}").format(
                psycopg.sql.Identifier(view_schema(settings)), psycopg.sql.Identifier(table)
            )
            return conn.execute(query).fetchall()
    view = sqlite3.connect(f"file:{view_file(settings)}?mode=ro", uri=True)
    try:
        return view.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        view.close()


async def test_privacy_mode_end_to_end(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await private_settings(make_settings, tmp_path)
    t = settings.topics
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        api_client(settings) as (client, ctx),
    ):
        token = ctx.contacts.ids.token
        added = await add(client, contact="+44 1234 567890", channel="SMS", sender="ACME")
        entry = added["results"][0]["entry"]
        assert (entry["contact"], entry["contact_id"]) == (token(PHONE)[:8] + "…", token(PHONE))
        await add(client, contact=MAIL, channel="EMAIL")
        await produce(settings, t.inbound_messages, inbound("mo-1", STOPPED, "STOP"))
        body = (await analyze(client, "list.csv", f"{IMPORTED}\n{MAIL2}\n".encode())).json()
        r = await client.post(
            "/v1/imports",
            json={"upload_id": body["upload_id"], "accounts": ["acme"]},
            headers=auth(),
        )
        assert (await finished(client, r.json()["import_id"]))["state"] == "finished"
        deadline = time.monotonic() + 30
        while (await listing(client))["total"] < 5:
            assert time.monotonic() < deadline, await listing(client)
            await asyncio.sleep(0.1)

        # Stored only as ids, everywhere.
        for topic in (t.commands, t.changes, t.history):
            async with reading(settings, topic) as (reader,):
                await reader.settle(0.5)
            assert reader.records, topic
            for r in reader.records:
                assert_no_clear_contact((r.key or b"") + (r.value or b""), topic)
        for table in ("entries", "history"):
            for row in view_rows(settings, table):
                assert_no_clear_contact(repr(row).encode(), f"the view's {table}")

        # The list shows masked ids, and the full id to act on them.
        listed = (await listing(client))["entries"]
        assert {e["contact_id"] for e in listed} == {token(c) for c in CLEAR}
        assert all(e["contact"] == e["contact_id"][:8] + "…" for e in listed)
        assert all(is_token(e["contact_id"]) for e in listed)

        # Filter by the contact (its id is looked up); a prefix cannot match a hash.
        found = (await listing(client, contact="+44 (0)1234 567890"))["entries"]
        assert [e["contact_id"] for e in found] == [token(PHONE)]
        assert (await listing(client, contact=token(MAIL)))["entries"][0]["channel"] == "EMAIL"
        r = await client.get("/v1/entries", params={"contact": "4412*"}, headers=auth())
        assert r.status_code == 422
        assert "privacy mode" in r.json()["reason"]

        # Check and the gate, by contact or by id.
        for contact in ("+44 1234 567890", token(PHONE)):
            r = await client.get(
                "/v1/check",
                params={"account": "acme", "contact": contact, "channel": "SMS", "sender": "ACME"},
                headers=auth(),
            )
            assert r.json()["blocked"] is True, contact
        verdicts = await gate_verdicts(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", STOPPED, sender="ACME"),
            outbound("m-3", IMPORTED, sender="x"),
            outbound("m-4", FREE, sender="ACME"),
        )
        assert verdicts == {"m-1": "blocked", "m-2": "blocked", "m-3": "blocked", "m-4": "allowed"}

        # Dry run with contacts or ids.
        r = await client.post(
            "/v1/audience/dry-run",
            json={
                "account": "acme",
                "channel": "SMS",
                "sender": "ACME",
                "contacts": [PHONE, token(STOPPED), FREE, IMPORTED],
            },
            headers=auth(),
        )
        assert r.json()["counts"]["suppressed"] == 3
        shown = {s["row"]: s for s in r.json()["suppressed"]}
        assert shown[1]["contact"] == PHONE
        assert shown[2]["contact_id"] == token(STOPPED)

        # Exports hold masked ids; selected entries go back as listed.
        r = await client.get("/v1/entries/export", headers=auth())
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
        assert sorted(row[0] for row in rows[1:]) == sorted(token(c)[:8] + "…" for c in CLEAR)
        assert_no_clear_contact(r.content, "the export")
        r = await client.post("/v1/entries/export", json={"keys": found}, headers=auth())
        assert r.headers["x-dnc-missing"] == "0"
        assert len(r.content.splitlines()) == 2

        # History by contact; removal by contact or by the listed entry.
        got = await records(client, 1, contact=PHONE)
        assert [(h["action"], h["cause"]["kind"]) for h in got] == [("add", "api")]
        assert got[0]["entry"]["contact_id"] == token(PHONE)
        r = await client.request(
            "DELETE",
            "/v1/entries",
            json=[{"account": "acme", "contact": MAIL, "channel": "EMAIL"}, found[0]],
            headers=auth(),
        )
        assert r.json()["removed"] == 2

        # Erasure: the history goes, the suppression stays.
        r = await client.post("/v1/erasures", json={"contact": STOPPED}, headers=auth())
        assert r.status_code == 201, r.text
        results = r.json()["results"]
        assert [(x["account"], x["outcome"], x["entries_kept"]) for x in results] == [
            ("acme", "erased", 1),
            ("acme-eu", "nothing_to_erase", 0),  # nothing there, so no record either
        ]
        left = (await history(client, STOPPED)).json()["history"]
        assert [(h["action"], h["account"]) for h in left] == [("erase", "acme")]
        for value in (await live_records(settings, t.history)).values():
            assert b"mo-1" not in value
        verdicts = await gate_verdicts(settings, outbound("m-5", STOPPED, sender="ACME"))
        assert verdicts == {"m-5": "blocked"}


async def history(client: httpx.AsyncClient, contact: str, **params: Any) -> httpx.Response:
    return await client.get("/v1/history", params={"contact": contact, **params}, headers=auth())
