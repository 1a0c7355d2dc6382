"""History and erasure through the API against the real stack: every change of a person's
entries with its cause (API key and request, inbound message and its text, journey,
unsubscribe campaign, import), newest first and paged; exported with the list on request;
and an erasure that deletes a person's history and clear contact but keeps them blocked."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import orjson
import pytest

from dnc.settings import Settings
from tests.apikit import (
    PHONE,
    SECRET_B,
    MakeSettings,
    add,
    api_client,
    api_settings,
    auth,
    gate_verdicts,
    listing,
)
from tests.integration.test_api_imports import analyze, finished
from tests.integration.test_cli import dnc  # noqa: F401 - the served `dnc` command
from tests.kit import inbound, outbound, produce, reading, running

pytestmark = pytest.mark.integration

SHOWN = "+44 1234 567890"
HOSTILE = "=HYPERLINK(1)"


async def history(
    client: httpx.AsyncClient, contact: str = SHOWN, secret: str | None = None, **params: Any
) -> httpx.Response:
    headers = auth(secret) if secret else auth()
    return await client.get("/v1/history", params={"contact": contact, **params}, headers=headers)


async def records(client: httpx.AsyncClient, n: int, **params: Any) -> list[dict[str, Any]]:
    """The person's history once it holds n records (sources on Kafka take a moment)."""
    deadline = time.monotonic() + 30
    while True:
        r = await history(client, **params)
        assert r.status_code == 200, r.text
        got: list[dict[str, Any]] = r.json()["history"]
        if len(got) >= n:
            return got
        assert time.monotonic() < deadline, f"history stayed at {got}"
        await asyncio.sleep(0.1)


async def through_kafka(settings: Settings, topic: str, value: dict[str, Any]) -> None:
    await produce(settings, topic, value)


async def import_rows(client: httpx.AsyncClient, data: bytes, accounts: list[str]) -> str:
    body = (await analyze(client, "people.csv", data)).json()
    r = await client.post(
        "/v1/imports", json={"upload_id": body["upload_id"], "accounts": accounts}, headers=auth()
    )
    import_id: str = r.json()["import_id"]
    assert (await finished(client, import_id))["state"] == "finished"
    return import_id


async def test_a_persons_history_with_every_cause(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    t = settings.topics
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        api_client(settings) as (client, _),
    ):
        first = await add(client, contact=SHOWN, channel="SMS", sender="ACME")
        await through_kafka(
            settings, t.inbound_messages, inbound("mo-1", SHOWN, "Stop", to="PROMO")
        )
        await records(client, 2, account="acme")
        journey = {
            "event_id": "j-1",
            "action": "add",
            "accounts": ["acme", "acme-eu"],
            "contact": PHONE,
            "channel": "VOICE",
            "sender": None,
            "journey_id": "welcome-flow",
        }
        await through_kafka(settings, t.journey_actions, journey)
        await records(client, 3, account="acme")
        link = {
            "event_id": "u-1",
            "account": "acme",
            "contact": PHONE,
            "channel": "SMS",
            "sender": "news",
            "campaign_id": "c-9",
        }
        await through_kafka(settings, t.url_unsubscribes, link)
        await records(client, 4, account="acme")
        import_id = await import_rows(client, f"{PHONE},{HOSTILE},VIBER\n".encode(), ["acme"])
        r = await client.request(
            "DELETE",
            "/v1/entries",
            json=[{"account": "acme", "contact": PHONE, "channel": "SMS", "sender": "acme"}],
            headers=auth(),
        )
        assert r.json()["removed"] == 1
        again = await add(client, contact=PHONE, channel="SMS", sender="ACME")

        got = await records(client, 7, account="acme")
        assert [(h["action"], h["account"]) for h in got] == [("add", "acme")] * 1 + [
            ("remove", "acme")
        ] + [("add", "acme")] * 5
        causes = [h["cause"] for h in got]
        written = {"senders": {"acme": "ACME"}}  # the sender as entered (issue 17)
        assert (
            causes[0] == {"kind": "api", "key": "ops", "request_id": again["request_id"]} | written
        )
        assert causes[1]["kind"] == "api"
        assert causes[2] == {
            "kind": "import",
            "import_id": import_id,
            "key": "ops",
            "senders": {HOSTILE.lower(): HOSTILE},  # the file's spelling
        }
        assert (causes[3]["kind"], causes[3]["campaign_id"]) == ("url_unsubscribe", "c-9")
        assert (causes[4]["kind"], causes[4]["journey_id"]) == ("journey", "welcome-flow")
        assert causes[5]["kind"] == "inbound_message"
        assert (causes[5]["message_id"], causes[5]["text"]) == ("mo-1", "Stop")
        assert (
            causes[6] == {"kind": "api", "key": "ops", "request_id": first["request_id"]} | written
        )
        assert got[2]["entry"]["sender"] == HOSTILE.lower()
        channels = ["SMS", "SMS", "VIBER", "SMS", "VOICE", "SMS", "SMS"]
        assert [h["entry"]["channel"] for h in got] == channels
        ats = [h["at"] for h in got]
        assert ats == sorted(ats, reverse=True)

        # Every granted account (the journey added to acme-eu too); pages walk the same list.
        every = await records(client, 8)
        assert {h["account"] for h in every} == {"acme", "acme-eu"}
        walked: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await history(client, **params)).json()
            walked += page["history"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == every

        # Tenants: another key learns nothing about acme, whether it exists or not.
        answers = [
            (r.status_code, r.json())
            for r in [await history(client, secret=SECRET_B, account=a) for a in ("acme", "nope")]
        ]
        assert answers[0] == answers[1]
        assert answers[0][0] == 403
        assert (await history(client, secret=SECRET_B)).json()["history"] == []

        for params, field in (({"contact": "12ab"}, "contact"), ({"cursor": "x"}, "cursor")):
            r = await history(client, **params)
            assert r.status_code == 422, r.text
            assert r.json()["field"] == field
        r = await client.get("/v1/history", headers=auth())
        assert r.status_code == 422
        assert r.json()["field"] == "contact"


async def test_export_with_the_history_of_the_exported_people(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"), api_client(settings) as (client, _):
        await add(client, contact=PHONE, channel="SMS", sender=HOSTILE)
        await add(client, contact="447700900123")
        await add(client, contact="jane@example.com", accounts=["acme-eu"])
        r = await client.request(
            "DELETE",
            "/v1/entries",
            json=[{"account": "acme", "contact": "447700900123"}],
            headers=auth(),
        )
        assert r.json()["removed"] == 1
        await add(client, contact=PHONE)  # PHONE: two entries, two history records

        r = await client.get(
            "/v1/entries/export",
            params={"account": "acme", "format": "xlsx", "history": "true"},
            headers=auth(),
        )
        assert r.status_code == 200, r.text
        book = openpyxl.load_workbook(io.BytesIO(r.content))
        assert book.sheetnames == ["Entries", "History"]
        sheet = [[c.value for c in row] for row in book["History"].iter_rows()]
        assert sheet[0][:4] == ["At", "Action", "Account", "Contact information"]
        # Only the exported people (the removed one is not on the list any more).
        assert [(row[1], row[3], row[4]) for row in sheet[1:]] == [
            ("Added", PHONE, "SMS"),
            ("Added", PHONE, "All channels"),
        ]
        assert sheet[1][5] == "'" + HOSTILE  # as entered, neutralised
        assert sheet[1][9] == "By hand or API"
        assert orjson.loads(sheet[1][10])["key"] == "ops"

        r = await client.get(
            "/v1/entries/export", params={"history": "true"}, headers=auth(), timeout=30
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        assert r.headers["content-disposition"].endswith('.zip"')
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            assert z.namelist() == ["entries.csv", "history.csv"]
            entries = _csv(z.read("entries.csv"))
            rows = _csv(z.read("history.csv"))
        assert len(entries) == 1 + 3
        assert rows[0][0] == "At"
        assert sorted((row[2], row[3]) for row in rows[1:]) == [
            ("acme", PHONE),
            ("acme", PHONE),
            ("acme-eu", "jane@example.com"),
        ]
        assert "'" + HOSTILE in [row[5] for row in rows[1:]]

        listed = (await listing(client, account="acme-eu"))["entries"]
        r = await client.post(
            "/v1/entries/export",
            params={"history": "true"},
            json={"keys": listed},
            headers=auth(),
        )
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            rows = _csv(z.read("history.csv"))
        assert [(row[1], row[3]) for row in rows[1:]] == [("Added", "jane@example.com")]


def _csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


async def live_records(settings: Settings, topic: str) -> dict[bytes, bytes]:
    """A compacted topic as its consumers will eventually see it: the last value per key,
    tombstones removed."""
    async with reading(settings, topic) as (reader,):
        await reader.settle(1.0)
    last: dict[bytes, bytes | None] = {}
    for r in reader.records:
        last[r.key] = r.value
    return {k: v for k, v in last.items() if v is not None}


async def erase(
    client: httpx.AsyncClient, secret: str | None = None, **body: Any
) -> httpx.Response:
    return await client.post("/v1/erasures", json=body, headers=auth(secret) if secret else auth())


async def test_erasure_deletes_data_and_history_and_keeps_the_suppression(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    t = settings.topics
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        api_client(settings) as (client, ctx),
    ):
        await add(client, contact=SHOWN, channel="SMS", sender="ACME", accounts=["acme", "acme-eu"])
        await produce(settings, t.inbound_messages, inbound("mo-77", PHONE, "STOP", to="PROMO"))
        await records(client, 2, account="acme")

        # Another tenant cannot erase in acme, and learns nothing from trying.
        answers = [
            (r.status_code, r.json())
            for r in [
                await erase(client, SECRET_B, contact=PHONE, accounts=[a]) for a in ("acme", "x")
            ]
        ]
        assert answers[0] == answers[1]
        assert answers[0][0] == 403
        assert len(await records(client, 2, account="acme")) == 2

        r = await erase(client, contact=SHOWN, accounts=["acme"])
        assert r.status_code == 201, r.text
        done = r.json()
        token = ctx.contacts.ids.token(PHONE)
        assert done["contact_id"] == token
        assert done["contact"] == token[:8] + "…"
        assert done["results"] == [
            {
                "account": "acme",
                "outcome": "erased",
                "history_records_erased": 2,
                "entries_kept": 2,
            }
        ]

        # Only the erasure's own record is left, and it names no contact in the clear.
        left = (await history(client, account="acme")).json()["history"]
        assert [h["action"] for h in left] == ["erase"]
        assert left[0]["cause"] == {
            "kind": "erasure",
            "key": "ops",
            "request_id": done["request_id"],
        }
        assert (left[0]["entry"]["contact"], left[0]["entry"]["contact_id"]) == (
            done["contact"],
            token,
        )
        # ... also when asked by the id.
        assert (await history(client, token, account="acme")).json()["history"] == left

        # Still blocked, at the gate and for /v1/check.
        verdicts = await gate_verdicts(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", PHONE, sender="PROMO"),
            outbound("m-3", PHONE, sender="OTHER"),
        )
        assert verdicts == {"m-1": "blocked", "m-2": "blocked", "m-3": "allowed"}
        r = await client.get(
            "/v1/check", params={"account": "acme", "contact": PHONE}, headers=auth()
        )
        assert r.json()["blocked"] is True

        # The list shows the entries masked, without their origin; a filter by the
        # contact still finds them, and the full id removes one.
        listed = (await listing(client, account="acme", contact=SHOWN))["entries"]
        assert {(e["contact"], e["contact_id"], e["origin"]) for e in listed} == {
            (done["contact"], token, None)
        }
        assert {e["source"] for e in listed} == {"MANUAL", "END_USER_MESSAGE"}

        # What Kafka keeps of acme: nothing names the contact, the message or the request.
        for topic in (t.changes, t.history):
            for key, value in (await live_records(settings, topic)).items():
                if orjson.loads(key)[0] == "acme":
                    assert PHONE.encode() not in key + value
                    assert b"mo-77" not in value
                    assert done["request_id"].encode() in value or topic == t.changes

        # acme-eu was not part of this erasure.
        eu = (await history(client, account="acme-eu")).json()["history"]
        assert [(h["action"], h["entry"]["contact"]) for h in eu] == [("add", PHONE)]

        # Without accounts: every account of the key.
        r = await erase(client, contact=PHONE)
        assert r.status_code == 201, r.text
        assert [x["account"] for x in r.json()["results"]] == ["acme", "acme-eu"]
        assert [h["action"] for h in (await history(client)).json()["history"]] == [
            "erase",
            "erase",
        ]
        r = await client.request(
            "DELETE", "/v1/entries", json=[listed[0] | {"contact": token}], headers=auth()
        )
        assert r.json()["removed"] == 1

        for body, field in (
            ({"contact": "12ab"}, "contact"),
            ({"contact": token[:8] + "…"}, "contact"),
        ):
            r = await erase(client, **body)
            assert r.status_code == 422, r.text
            assert r.json()["field"] == field


async def test_history_and_erase_from_the_command_line(
    dnc: Callable[..., Awaitable[Any]],  # noqa: F811 - the fixture imported above
) -> None:
    assert (await dnc("add", SHOWN, "-a", "acme", "--channel", "SMS")).code == 0
    shown = await dnc("history", SHOWN, "-a", "acme")
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split("\t") == [
        "At", "Action", "Account", "Channel", "Sender", "Source", "Cause", "Details",
    ]  # fmt: skip
    assert lines[1].split("\t")[1:7] == [
        "Added",
        "acme",
        "SMS",
        "All senders",
        "Added manually",
        "By hand or API",
    ]
    assert "key=ops" in lines[1]
    refused = await dnc("erase", SHOWN, "-a", "acme")
    assert refused.code == 1
    assert "--yes" in refused.stderr
    erased = await dnc("erase", SHOWN, "-a", "acme", "--yes")
    assert erased.code == 0, erased.stderr
    assert "acme: erased 1 history records; 1 entries keep blocking as h1:" in erased.stdout
    after = await dnc("history", SHOWN, "--json")
    assert [h["action"] for h in after.json()["history"]] == ["erase"]
    blocked = await dnc("check", SHOWN, "-a", "acme", "--channel", "SMS")
    assert blocked.code == 0
