"""Imports through the HTTP API against the real stack: analyze → start → progress →
finished, entries effective at the gate, the notification, and tenant isolation."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from dnc.domain.timestamps import now_ms
from dnc.settings import Settings
from tests.apikit import (
    SECRET_B,
    MakeSettings,
    api_client,
    api_settings,
    auth,
    gate_verdicts,
)
from tests.kit import outbound, reading, running

pytestmark = pytest.mark.integration

# The seed's example table, as a user would save it from a spreadsheet.
SEED_CSV = (
    b"Contact information,Sender,Channel\r\n"
    b"1234567890,9876543210,Viber\r\n"
    b"enduser@customer.com,send.campaign@infobip.com,\r\n"
)


@pytest.fixture
async def api(
    make_settings: MakeSettings, tmp_path: Path
) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = await api_settings(make_settings, tmp_path)
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        api_client(settings) as (client, _),
    ):
        yield settings, client


async def analyze(
    client: httpx.AsyncClient, name: str, data: bytes, **options: Any
) -> httpx.Response:
    return await client.post(
        "/v1/imports/analyze",
        files={"file": (name, data)},
        data={"options": orjson.dumps(options).decode()} if options else {},
        headers=auth(),
    )


async def finished(client: httpx.AsyncClient, import_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/v1/imports/{import_id}", headers=auth())
        assert r.status_code == 200, r.text
        body = r.json()
        if body["state"] != "running":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def test_seed_example_imports_as_the_seed_implies(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    # Without a country, the national number is refused with a reason and the remedy.
    r = await analyze(client, "dnc.csv", SEED_CSV, skip_rows=1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["valid"], body["invalid"]) == (2, 1, 1)
    (bad,) = body["invalid_rows"]
    assert (bad["row"], bad["value"]) == (2, "1234567890")
    assert "not a possible international phone number" in bad["reason"]
    assert "default country" in bad["reason"]
    assert any("default country" in h for h in body["hints"])

    # The same upload with another option: no need to send the file again.
    first_upload = body["upload_id"]
    options = {"skip_rows": 1, "default_country": "US"}
    r = await client.post(
        "/v1/imports/analyze",
        data={"upload_id": first_upload, "options": orjson.dumps(options).decode()},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["upload_id"] == first_upload
    assert (body["rows"], body["valid"], body["duplicate"], body["invalid"]) == (2, 2, 0, 0)
    assert body["columns"]["contact"] == {"column": 0, "header": "Contact information"}

    async with reading(settings, settings.topics.notifications) as (notes,):
        r = await client.post(
            "/v1/imports",
            json={"upload_id": body["upload_id"], "accounts": ["acme", "acme-eu"]},
            headers=auth(),
        )
        assert r.status_code == 202, r.text
        import_id = r.json()["import_id"]
        done = await finished(client, import_id)
        assert done["state"] == "finished", done
        assert (done["rows_total"], done["rows_done"], done["rejected"]) == (2, 2, 0)
        assert (done["added"], done["already_present"]) == (4, 0)
        assert done["entries_done"] == done["entries_expected"] == 4
        await notes.wait_for(1)
        (event,) = notes.values()
    assert event["type"] == "import.completed"
    assert event["import_id"] == import_id
    assert (event["accounts"], event["added"], event["already_present"], event["rejected"]) == (
        ["acme", "acme-eu"],
        4,
        0,
        0,
    )

    # Effective at the gate: the check endpoint reads what the gate reads ...
    r = await client.get(
        "/v1/check",
        params={
            "account": "acme-eu",
            "contact": "+1 123 456 7890",
            "channel": "VIBER",
            "sender": "9876543210",
        },
        headers=auth(),
    )
    entry = r.json()["entry"]
    assert r.json()["blocked"] is True
    assert (entry["contact"], entry["channel"], entry["sender"], entry["source"]) == (
        "11234567890",
        "VIBER",
        "9876543210",
        "IMPORT",
    )
    r = await client.get(
        "/v1/check",
        params={
            "account": "acme",
            "contact": "enduser@customer.com",
            "channel": "EMAIL",
            "sender": "send.campaign@infobip.com",
        },
        headers=auth(),
    )
    assert r.json()["blocked"] is True
    assert r.json()["entry"]["channel"] is None  # all channels

    # ... and the gate itself blocks exactly what the rows say.
    verdicts = await gate_verdicts(
        settings,
        outbound("m-1", "11234567890", channel="VIBER", sender="9876543210"),
        outbound("m-2", "11234567890", channel="SMS", sender="9876543210"),
        outbound(
            "m-3", "enduser@customer.com", channel="EMAIL", sender="send.campaign@infobip.com"
        ),
        outbound("m-4", "enduser@customer.com", channel="EMAIL", sender="other@acme.com"),
    )
    assert verdicts == {"m-1": "blocked", "m-2": "allowed", "m-3": "blocked", "m-4": "allowed"}
    origin = await _origin_of(client, "11234567890")
    assert origin == {"kind": "import", "import_id": import_id, "key": "ops"}

    # Importing the same file again adds nothing: rule 1.
    r = await client.post(
        "/v1/imports", json={"upload_id": body["upload_id"], "accounts": ["acme"]}, headers=auth()
    )
    again = await finished(client, r.json()["import_id"])
    assert (again["added"], again["already_present"]) == (0, 2)

    # What an operator sees of both imports on the instance's /metrics.
    text = (await client.get("/metrics")).text
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert got["dnc_api_imports_started_total", ()] == 2
    assert got["dnc_api_imports_finished_total", (("outcome", "finished"),)] == 2
    assert got["dnc_api_imports_finished_total", (("outcome", "failed"),)] == 0
    assert got["dnc_api_import_rows_total", (("result", "accepted"),)] == 4
    assert got["dnc_api_import_rows_total", (("result", "rejected"),)] == 0
    assert got["dnc_api_import_duration_seconds_count", (("outcome", "finished"),)] == 2
    assert got["dnc_api_imports_running", ()] == 0


async def _origin_of(client: httpx.AsyncClient, contact: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        r = await client.get(
            "/v1/entries", params={"contact": contact, "account": "acme"}, headers=auth()
        )
        entries = r.json()["entries"]
        if entries:
            return entries[0]["origin"]
        assert time.monotonic() < deadline, "the list view never showed the imported entry"
        await asyncio.sleep(0.1)


async def test_xlsx_with_mapping_by_header_and_options_as_fields(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    _, client = api
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Exported list"])
    sheet.append(["Name", "Phone", "Channel", "From"])
    sheet.append(["Jane", 447700900123, "sms", "ACME"])
    sheet.append(["John", "+44 7700 900124", "WhatsApp", ""])
    sheet.append(["Jim", "07700 900125", "", ""])
    buffer = io.BytesIO()
    book.save(buffer)
    r = await client.post(
        "/v1/imports/analyze",
        files={"file": ("list.xlsx", buffer.getvalue())},
        data={
            "skip_rows": "2",
            "mapping": "Phone=contact,from=sender,2=channel",
            "default_country": "GB",
        },
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["valid"], body["invalid"]) == (3, 2, 1)
    (bad,) = body["invalid_rows"]
    assert (bad["row"], bad["field"], bad["value"]) == (4, "channel", "WhatsApp")
    assert "use a journey action" in bad["reason"]
    assert body["sample"][1] == {"contact": "447700900125", "channel": None, "sender": None}
    r = await client.post(
        "/v1/imports", json={"upload_id": body["upload_id"], "accounts": ["acme"]}, headers=auth()
    )
    done = await finished(client, r.json()["import_id"])
    assert (done["state"], done["added"], done["rejected"]) == ("finished", 2, 1)
    assert done["invalid_rows"][0]["row"] == 4


async def test_bad_files_get_clear_errors(api: tuple[Settings, httpx.AsyncClient]) -> None:
    _, client = api
    r = await analyze(client, "big.csv", b"441234567890\n" * (15 * 1024 * 1024 // 13 + 1))
    assert r.status_code == 413, r.text
    assert ".zip" in r.json()["error"]
    r = await analyze(client, "list.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert r.status_code == 422
    assert "PNG image" in r.json()["error"]
    r = await analyze(client, "list.xlsx", b"contact\n441234567890\n")
    assert r.status_code == 422
    assert "not an .xlsx workbook" in r.json()["error"]
    r = await analyze(client, "list.csv", b"441234567890\n", mapping={"Phone": "contact"})
    assert r.status_code == 422
    assert "no header row" in r.json()["error"]
    r = await client.post(
        "/v1/imports/analyze",
        files={"file": ("a.csv", b"1")},
        data={"options": "{not json"},
        headers=auth(),
    )
    assert r.status_code == 422
    assert "options" in r.json()["error"]
    r = await client.post("/v1/imports/analyze", files={"file": ("a.csv", b"1")})
    assert r.status_code == 401


async def test_tenant_isolation(api: tuple[Settings, httpx.AsyncClient]) -> None:
    _, client = api
    body = (await analyze(client, "dnc.csv", b"441234567890\n")).json()
    upload_id = body["upload_id"]
    answers = []
    for account in ("other", "no-such-account"):
        r = await client.post(
            "/v1/imports",
            json={"upload_id": upload_id, "accounts": ["acme", account]},
            headers=auth(),
        )
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403

    # Another key can neither analyze nor start this upload, nor see this import.
    r = await client.post(
        "/v1/imports/analyze", data={"upload_id": upload_id}, headers=auth(SECRET_B)
    )
    assert r.status_code == 404
    r = await client.post(
        "/v1/imports",
        json={"upload_id": upload_id, "accounts": ["other"]},
        headers=auth(SECRET_B),
    )
    assert r.status_code == 404
    r = await client.post(
        "/v1/imports", json={"upload_id": upload_id, "accounts": ["acme"]}, headers=auth()
    )
    import_id = r.json()["import_id"]
    mine = await client.get(f"/v1/imports/{import_id}", headers=auth(SECRET_B))
    unknown = await client.get("/v1/imports/imp-0000000000000000", headers=auth(SECRET_B))
    assert mine.status_code == unknown.status_code == 404
    assert mine.json()["error"].replace(import_id, "X") == unknown.json()["error"].replace(
        "imp-0000000000000000", "X"
    )
    assert (await finished(client, import_id))["state"] == "finished"


async def test_an_import_whose_instance_stopped_is_reported_failed(
    api: tuple[Settings, httpx.AsyncClient],
) -> None:
    settings, client = api
    redis = aioredis.Redis.from_url(settings.redis_url)
    long_ago = now_ms() - 10 * 60 * 1000
    try:
        await redis.hset(
            f"{settings.index.prefix}:import:imp-0123456789abcdef",
            mapping={
                "state": "running",
                "phase": "reading",
                "owner": "ops",
                "accounts": '["acme"]',
                "file": '{"name": "a.csv"}',
                "options": "{}",
                "rows_total": 10,
                "rows_done": 4,
                "rejected": 0,
                "submitted": 4,
                "created_at": long_ago,
                "heartbeat": long_ago,
            },
        )
    finally:
        await redis.aclose()
    r = await client.get("/v1/imports/imp-0123456789abcdef", headers=auth())
    body = r.json()
    assert (body["state"], body["rows_done"], body["rows_total"]) == ("failed", 4, 10)
    assert "import the same file again" in body["error"]


async def test_a_chunked_upload_over_the_limit_is_refused_while_streaming(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """No Content-Length: the body limit counts bytes as they arrive."""
    from dnc.api.app import create_app
    from dnc.api.context import ApiContext

    settings = await api_settings(make_settings, tmp_path, import_max_bytes=1024 * 1024)
    app = create_app(ApiContext.build(settings))

    async def chunks() -> AsyncIterator[bytes]:
        yield (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
        )
        for _ in range(64):
            yield b"4412345678\n" * 10_000  # 110 KB each, 7 MB in all
        yield b"\r\n--B--\r\n"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(
            "/v1/imports/analyze",
            content=chunks(),
            headers={**auth(), "content-type": "multipart/form-data; boundary=B"},
        )
    assert r.status_code == 413, r.text
    assert ".zip" in r.json()["error"]
