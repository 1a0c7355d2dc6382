"""Audience dry run against the real stack: JSON or a file read like an import, the
counts, the suppressed contacts with their row and the most specific blocking entry (the
gate's rule), the first invalid rows, tenants, and nothing written."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from dnc.api import writes
from dnc.api.context import ApiContext
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import now_ms, parse_ts
from tests.apikit import SECRET_B, MakeSettings, api_client, api_settings, auth
from tests.integration.test_api_entries import seed
from tests.integration.test_cli import dnc  # noqa: F401 - the served `dnc` command
from tests.kit import running

pytestmark = pytest.mark.integration

T0 = parse_ts("2026-01-01T00:00:00.000Z", "t")
ALL = "441234567890"  # all channels, all senders
SMS_ACME = "441234567891"  # SMS from ACME only (and all channels from PROMO)
VIBER = "441234567892"  # VIBER only
GONE = "441234567893"  # SMS, expired
MAIL = "jane@example.com"  # EMAIL
FREE = "447700900123"  # on no list


async def seeded(ctx: ApiContext) -> None:
    k = EntryKey
    await seed(
        ctx,
        [
            (k("acme", ALL, None, None), Source.MANUAL, T0),
            (k("acme", SMS_ACME, "SMS", "acme"), Source.END_USER_MESSAGE, T0 + 1),
            (k("acme", SMS_ACME, None, "promo"), Source.IMPORT, T0 + 2),
            (k("acme", VIBER, "VIBER", None), Source.CAMPAIGN_ACTION, T0 + 3),
            (k("acme", MAIL, "EMAIL", None), Source.URL_OPT_OUT, T0 + 4),
            (k("acme-eu", FREE, None, None), Source.MANUAL, T0 + 5),
        ],
    )
    expired = Op("add", k("acme", GONE, "SMS", None), Source.MANUAL, expires_at=now_ms() - 1000)
    assert (
        await writes.apply(ctx, [Command([expired], now_ms(), {"kind": "test"})], "x")
    ).effective


async def dry(client: httpx.AsyncClient, secret: str | None = None, **kw: Any) -> httpx.Response:
    return await client.post(
        "/v1/audience/dry-run", headers=auth(secret) if secret else auth(), **kw
    )


async def test_json_audience(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"), api_client(settings) as (client, ctx):
        await seeded(ctx)
        contacts = [
            "+44 1234 567890",  # row 1: ALL
            SMS_ACME,  # 2
            ALL,  # 3: duplicate of row 1
            VIBER,  # 4
            GONE,  # 5: expired entry, deliverable
            "12ab",  # 6: invalid
            MAIL,  # 7: EMAIL entry does not block SMS
            42,  # 8: invalid (not a string)
            FREE,  # 9: listed in acme-eu only
        ]
        body = {"account": "acme", "channel": "sms", "sender": "ACME", "contacts": contacts}
        before = await ctx.writer.index.meta()
        r = await dry(client, json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["account"], got["channel"], got["sender"]) == ("acme", "SMS", "acme")
        assert got["counts"] == {
            "rows": 9,
            "valid": 6,
            "invalid": 2,
            "duplicate": 1,
            "suppressed": 2,
            "deliverable": 4,
        }
        suppressed = {s["contact"]: s for s in got["suppressed"]}
        assert set(suppressed) == {ALL, SMS_ACME}
        assert suppressed[ALL]["row"] == 1
        assert suppressed[ALL]["entry"] == {
            "account": "acme",
            "contact": ALL,
            "channel": None,
            "sender": None,
            "source": "MANUAL",
            "added_at": "2026-01-01T00:00:00.000Z",
        }
        # The most specific entry that blocks: this channel and this sender.
        assert suppressed[SMS_ACME]["row"] == 2
        assert (
            suppressed[SMS_ACME]["entry"]["channel"],
            suppressed[SMS_ACME]["entry"]["source"],
        ) == (
            "SMS",
            "END_USER_MESSAGE",
        )
        assert [(i["row"], i["value"]) for i in got["invalid"]] == [(6, "12ab"), (8, 42)]
        assert "not a phone number" in got["invalid"][0]["reason"]
        assert "must be a string" in got["invalid"][1]["reason"]

        # Other sender: only what blocks every sender (or PROMO's all-channels entry).
        for sender, expected in (
            ("OTHER", {ALL}),
            ("PROMO", {ALL, SMS_ACME}),
            (None, {ALL, SMS_ACME}),  # no sender: an entry for any sender counts
        ):
            r = await dry(client, json={**body, "sender": sender})
            assert {s["contact"] for s in r.json()["suppressed"]} == expected, sender
        r = await dry(client, json={**body, "channel": "VIBER", "sender": None})
        assert {s["contact"] for s in r.json()["suppressed"]} == {ALL, SMS_ACME, VIBER}
        r = await dry(client, json={**body, "channel": "EMAIL"}, params={"suppressed_limit": 1})
        assert r.json()["counts"]["suppressed"] == 2
        assert r.json()["suppressed_shown"] == 1

        # Nothing was written.
        after = await ctx.writer.index.meta()
        assert after.commands == before.commands

        # Errors name the value and the problem; tenants learn nothing.
        for change, field in (
            ({"channel": "ALL"}, "channel"),
            ({"channel": "FAX"}, "channel"),
            ({"account": ""}, "account"),
            ({"contacts": []}, "contacts"),
            ({"sender": "x" * 500}, "sender"),
        ):
            r = await dry(client, json={**body, **change})
            assert r.status_code == 422, (change, r.text)
            assert r.json()["field"] == field, r.json()
        answers = [
            (r.status_code, r.json())
            for r in [
                await dry(client, SECRET_B, json={**body, "account": a}) for a in ("acme", "nope")
            ]
        ]
        assert answers[0] == answers[1]
        assert answers[0][0] == 403
        r = await client.post(
            "/v1/audience/dry-run",
            content=b"contacts",
            headers={**auth(), "content-type": "text/plain"},
        )
        assert r.status_code == 422
        assert r.json()["field"] == "body"
        r = await client.post(
            "/v1/audience/dry-run",
            content=b"{not json",
            headers={**auth(), "content-type": "application/json"},
        )
        assert r.status_code == 422
        assert r.json()["field"] == "body"


async def test_file_audience(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"), api_client(settings) as (client, ctx):
        await seeded(ctx)
        text = (
            "name;phone;channel\n"  # row 1: header
            f"Ann;{ALL};FAX\n"  # 2: the channel column is not read
            f"Bob;+44 1234 567891;\n"  # 3
            "Cat;not a number;\n"  # 4
            ";;\n"  # 5: blank
            f"Dan;{FREE};\n"  # 6
            f"Eve;{ALL};\n"  # 7: duplicate
        )
        form = {"account": "acme", "channel": "SMS", "sender": "acme", "skip_rows": "1"}
        r = await dry(
            client,
            files={"file": ("audience.csv", text.encode())},
            data={**form, "mapping": "phone=contact"},
        )
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["counts"] == {
            "rows": 5,
            "valid": 3,
            "invalid": 1,
            "duplicate": 1,
            "suppressed": 2,
            "deliverable": 1,
        }
        assert [(s["contact"], s["row"]) for s in got["suppressed"]] == [(ALL, 2), (SMS_ACME, 3)]
        assert [(i["row"], i["value"]) for i in got["invalid"]] == [(4, "not a number")]
        assert (got["file"]["name"], got["file"]["skipped"], got["file"]["blank"]) == (
            "audience.csv",
            1,
            1,
        )

        # An .xlsx inside a .zip, the contact in the first column (the default).
        book = openpyxl.Workbook()
        for row in ([ALL], [441234567892], [FREE]):
            book.active.append(row)
        xlsx = io.BytesIO()
        book.save(xlsx)
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w") as z:
            z.writestr("list.xlsx", xlsx.getvalue())
        r = await dry(
            client,
            files={"file": ("audience.zip", packed.getvalue())},
            data={"account": "acme", "channel": "VIBER"},
        )
        assert r.status_code == 200, r.text
        assert [(s["contact"], s["row"]) for s in r.json()["suppressed"]] == [
            (ALL, 1),
            (VIBER, 2),
        ]
        assert r.json()["file"]["used"] == "list.xlsx"

        for data, files, field in (
            ({"channel": "SMS"}, {"file": ("a.csv", b"1\n")}, "account"),
            ({"account": "acme"}, {"file": ("a.csv", b"1\n")}, "channel"),
            ({"account": "acme", "channel": "SMS"}, {"file": ("a.pdf", b"%PDF")}, "file"),
            ({"account": "acme", "channel": "SMS", "mapping": "1=sender"}, None, "mapping"),
        ):
            r = await dry(client, data=data, files=files or {"file": ("a.csv", b"1,2\n")})
            assert r.status_code == 422, r.text
            assert r.json()["field"] == field, r.json()
        r = await dry(
            client,
            data={"account": "acme", "channel": "SMS"},
            files={"file": ("a.csv", b"4" * (settings.api.import_max_bytes + 10))},
        )
        assert r.status_code == 413


async def test_dry_run_from_the_command_line(
    dnc: Callable[..., Awaitable[Any]],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    assert (await dnc("add", ALL, "-a", "acme")).code == 0
    audience = tmp_path / "audience.txt"
    audience.write_text(f"{ALL}\n{FREE}\nnonsense\n")
    shown = await dnc("dry-run", str(audience), "-a", "acme", "--channel", "SMS")
    assert shown.code == 0, shown.stderr
    assert shown.stdout.startswith(
        "rows 3: valid 2, duplicate 0, invalid 1; suppressed 1, deliverable 1"
    )
    assert "row 3: 'nonsense'" in shown.stderr
    out = tmp_path / "suppressed.csv"
    written = await dnc(
        "dry-run", str(audience), "-a", "acme", "--channel", "SMS", "--out", str(out)
    )
    assert written.code == 0, written.stderr
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "Row,Contact,Channel,Sender,Source,Added,Expires"
    assert lines[1].startswith(f"1,{ALL},All channels,All senders,Added manually,")
    refused = await dnc("dry-run", str(audience), "-a", "other", "--channel", "SMS")
    assert refused.code == 1
    assert "forbidden" in refused.stderr
