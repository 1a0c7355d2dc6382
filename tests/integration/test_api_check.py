"""/v1/check against the real stack: blocked or not, and why (every entry of the contact,
most specific first), single and batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnc.api import writes
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import format_ms, parse_ts
from tests.apikit import PHONE, MakeSettings, api_client, api_settings, auth
from tests.kit import running

pytestmark = pytest.mark.integration

T0 = parse_ts("2026-01-01T00:00:00.000Z", "t")


def shape(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["channel"], e["sender"], e["source"], e["blocks"]) for e in entries]


async def test_check_single_and_batch(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    k = EntryKey
    rows = [
        (k("acme", PHONE, None, None), Source.IMPORT, T0 + 1),
        (k("acme", PHONE, "SMS", "acme"), Source.END_USER_MESSAGE, T0 + 2),
        (k("acme", PHONE, "SMS", None), Source.MANUAL, T0 + 3),
        (k("acme", PHONE, None, "acme"), Source.CAMPAIGN_ACTION, T0 + 4),
        (k("acme", "441234567899", "VIBER", None), Source.MANUAL, T0 + 5),
        (k("acme-eu", "jane@example.com", "EMAIL", None), Source.URL_OPT_OUT, T0 + 6),
    ]
    commands = [Command([Op("add", key, src)], at, {"kind": "test"}) for key, src, at in rows]
    async with running(settings, "listwriter"), api_client(settings) as (client, ctx):
        assert (await writes.apply(ctx, commands, "seed")).effective

        async def check(**params: Any) -> dict[str, Any]:
            r = await client.get("/v1/check", params=params, headers=auth())
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        # The gate's question, with the contact spelled another way.
        got = await check(account="acme", contact="+44 1234 567890", channel="sms", sender="ACME")
        assert got["contact"] == PHONE
        assert got["blocked"] is True
        assert (got["entry"]["channel"], got["entry"]["sender"]) == ("SMS", "acme")
        assert got["entry"]["added_at"] == format_ms(T0 + 2)
        assert shape(got["entries"]) == [
            ("SMS", "acme", "END_USER_MESSAGE", True),
            ("SMS", None, "MANUAL", True),
            (None, "acme", "CAMPAIGN_ACTION", True),
            (None, None, "IMPORT", True),
        ]

        got = await check(account="acme", contact=PHONE, channel="VOICE", sender="Other")
        assert got["blocked"] is True
        assert got["entry"]["source"] == "IMPORT"
        assert [e["blocks"] for e in got["entries"]] == [False, False, False, True]

        got = await check(account="acme", contact="441234567899", channel="SMS", sender="ACME")
        assert got["blocked"] is False
        assert got["entry"] is None
        assert shape(got["entries"]) == [("VIBER", None, "MANUAL", False)]

        # No channel / sender: every entry is reported, blocked = any applies.
        got = await check(account="acme", contact="441234567899")
        assert got["blocked"] is True
        assert shape(got["entries"]) == [("VIBER", None, "MANUAL", True)]
        got = await check(account="acme-eu", contact=" Jane@Example.com ")
        assert got["blocked"] is True
        got = await check(account="acme", contact="447700900000")
        assert (got["blocked"], got["entries"]) == (False, [])

        r = await client.get(
            "/v1/check", params={"account": "acme", "contact": "12ab"}, headers=auth()
        )
        assert r.status_code == 422
        assert (r.json()["field"], r.json()["value"]) == ("contact", "12ab")
        r = await client.get("/v1/check", params={"account": "acme"}, headers=auth())
        assert r.status_code == 422
        assert r.json()["field"] == "contact"

        # Batch: one bad contact gets its own error, the others their answers.
        contacts = [PHONE, "+44 1234 567899", "447700900000", "12ab", 42]
        r = await client.post(
            "/v1/check",
            json={"account": "acme", "channel": "SMS", "sender": "acme", "contacts": contacts},
            headers=auth(),
        )
        assert r.status_code == 200, r.text
        batch = r.json()
        assert batch["counts"] == {"checked": 5, "blocked": 1, "not_blocked": 2, "invalid": 2}
        results = batch["results"]
        assert [x["input"] for x in results] == contacts
        assert [x.get("blocked") for x in results] == [True, False, False, None, None]
        assert results[0]["entry"]["sender"] == "acme"
        assert results[1]["contact"] == "441234567899"
        assert results[3]["field"] == "contact"
        assert "not a phone number" in results[3]["error"]
        assert "must be a string" in results[4]["reason"]

        too_many = {"account": "acme", "contacts": ["1"] * 10_001}
        r = await client.post("/v1/check", json=too_many, headers=auth())
        assert r.status_code == 422
        assert r.json()["field"] == "contacts"
