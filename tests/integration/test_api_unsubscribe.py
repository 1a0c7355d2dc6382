"""Unsubscribe links against the real stack: create, confirm page, RFC 8058 one-click
POST → an entry with source URL_OPT_OUT; tampered, expired and rotated-away tokens get 400
and record nothing."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import httpx
import orjson
import pytest

from dnc.api.app import create_app
from dnc.domain.timestamps import now_ms
from dnc.domain.unsubscribe import TokenSigner, UnsubscribeClaims
from tests.apikit import (
    UNSUB_KEY,
    MakeSettings,
    api_client,
    api_settings,
    auth,
    listing,
)
from tests.kit import eventually, reading, running

pytestmark = pytest.mark.integration

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def test_link_one_click_records_a_url_opt_out(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "ingest", "listwriter"), api_client(settings) as (client, ctx):
        r = await client.post(
            "/v1/unsubscribe-links",
            json={
                "account": "acme",
                "contact": " Jane@Example.com ",
                "channel": "email",
                "sender": "News@Acme.com",
                "campaign_id": "c-9",
            },
            headers=auth(),
        )
        assert r.status_code == 200, r.text
        link = r.json()
        token = link["token"]
        assert link["url"] == f"https://dnc.example.com/u/{token}"
        assert link["list_unsubscribe"] == f"<{link['url']}>"
        assert link["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
        assert link["expires_at"].endswith("Z")

        page = await client.get(f"/u/{token}")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert 'method="post"' in page.text
        assert "j***@example.com" in page.text
        assert "jane@example.com" not in page.text
        assert (await listing(client))["total"] == 0  # looking is not unsubscribing

        async with reading(settings, settings.topics.url_unsubscribes) as (topic,):
            for _ in range(2):  # a mail client retrying: harmless
                r = await client.post(f"/u/{token}", data=ONE_CLICK)
                assert r.status_code == 200, r.text
            await topic.wait_for(2)
            events = topic.values()
        assert events[0]["event_id"] == events[1]["event_id"]
        assert events[0]["token"] == token

        async def listed() -> bool:
            return bool((await listing(client))["total"] == 1)

        await eventually(listed, what="the URL opt-out in the list")
        entry = (await listing(client))["entries"][0]
        assert (entry["account"], entry["contact"]) == ("acme", "jane@example.com")
        assert (entry["channel"], entry["sender"]) == ("EMAIL", "news@acme.com")
        assert entry["source"] == "URL_OPT_OUT"
        assert entry["origin"]["campaign_id"] == "c-9"

        # The page's own button (a browser form POST) answers with a page.
        r = await client.post(f"/u/{token}", data=ONE_CLICK, headers={"Accept": "text/html"})
        assert r.status_code == 200
        assert "Unsubscribed" in r.text

        # Without signing keys, creating links is refused clearly.
        bare = dataclasses.replace(ctx, signer=TokenSigner([]))
        transport = httpx.ASGITransport(app=create_app(bare))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            r = await other.post(
                "/v1/unsubscribe-links",
                json={"account": "acme", "contact": "jane@example.com"},
                headers=auth(),
            )
        assert r.status_code == 503
        assert "DNC_API__UNSUBSCRIBE_KEYS" in r.json()["error"]


async def test_bad_tokens_get_400_and_record_nothing(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    claims = UnsubscribeClaims("acme", "jane@example.com", "EMAIL", None, None, now_ms() + 60_000)
    good = TokenSigner([UNSUB_KEY]).sign(claims)
    body, sig = good.split(".")
    forged = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["c"] = "victim@example.com"
    forged_body = base64.urlsafe_b64encode(orjson.dumps(forged)).rstrip(b"=").decode()
    bad = {
        "tampered": f"{forged_body}.{sig}",
        "bad signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "expired": TokenSigner([UNSUB_KEY]).sign(dataclasses.replace(claims, expires_at_ms=1000)),
        "rotated away": TokenSigner(["o" * 40]).sign(claims),
        "garbage": "not-a-token",
    }
    async with (
        api_client(settings) as (client, _),
        reading(settings, settings.topics.url_unsubscribes) as (topic,),
    ):
        for name, token in bad.items():
            page = await client.get(f"/u/{token}")
            assert page.status_code == 400, name
            assert "not valid" in page.text
            r = await client.post(f"/u/{token}", data=ONE_CLICK)
            assert r.status_code == 400, name
            assert r.json()["reason"], name
        await topic.settle(0.5)
        assert topic.records == []
