"""/v1/entries against the real stack: add (read your writes, rule 1, contract rules),
list with every filter and cursor pagination, remove by key and by filter, and the 202
follow-up when the list writer is not there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnc.api import writes
from dnc.api.context import ApiContext
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.domain.timestamps import parse_ts
from tests.apikit import (
    PHONE,
    MakeSettings,
    add,
    api_client,
    api_settings,
    auth,
    gate_verdicts,
    listing,
)
from tests.kit import eventually, outbound, running, sqlite_view_only

pytestmark = pytest.mark.integration

T0 = parse_ts("2026-01-01T00:00:00.000Z", "t")


async def seed(ctx: ApiContext, rows: list[tuple[EntryKey, Source, int]]) -> None:
    """Entries with chosen sources and times, through the list writer like any write."""
    commands = [Command([Op("add", k, src)], at, {"kind": "test"}) for k, src, at in rows]
    outcome = await writes.apply(ctx, commands, "seed")
    assert outcome.effective
    assert outcome.visible


async def test_add_is_effective_listed_and_blocks_and_adding_again_changes_nothing(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter", "gate"), api_client(settings) as (client, _):
        first = await add(
            client,
            contact="+44 1234 567890",
            channel="sms",
            sender="ACME",
            accounts=["acme", "acme-eu"],
        )
        assert first["status"] == "effective"
        assert [(r["account"], r["outcome"]) for r in first["results"]] == [
            ("acme", "added"),
            ("acme-eu", "added"),
        ]
        entry = first["results"][0]["entry"]
        assert entry["contact"] == PHONE
        assert (entry["channel"], entry["sender"], entry["source"]) == ("SMS", "acme", "MANUAL")
        assert entry["origin"] == {
            "kind": "api",
            "key": "ops",
            "request_id": first["request_id"],
            "senders": {"acme": "ACME"},  # as entered: the page shows it so
        }
        assert entry["sender_shown"] == "ACME"

        # Read your writes: the list shows it as soon as the add has answered.
        page = await listing(client, account="acme")
        assert page["total"] == 1
        assert page["entries"][0] == entry

        verdicts = await gate_verdicts(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", PHONE, sender="OTHER"),
            outbound("m-3", PHONE, account="acme-eu", sender="acme"),
            outbound("m-4", PHONE, channel="VIBER", sender="ACME"),
        )
        assert verdicts == {"m-1": "blocked", "m-2": "allowed", "m-3": "blocked", "m-4": "allowed"}

        again = await add(client, contact="0044-1234-567890", channel="SMS", sender="acme")
        assert again["results"][0]["outcome"] == "already_present"
        assert again["results"][0]["entry"]["added_at"] == entry["added_at"]
        assert again["results"][0]["entry"]["origin"]["request_id"] == first["request_id"]
        assert (await listing(client, account="acme"))["total"] == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"contact": "jane@example.com", "channel": "SMS"}, "channel", "e-mail address"),
        ({"contact": PHONE, "channel": "WHATSAPP"}, "channel", "journey action"),
        ({"contact": PHONE, "channel": "EMAIL"}, "channel", "phone number"),
        ({"contact": PHONE, "channel": "FAX"}, "channel", "is not a channel"),
        ({"contact": "12ab"}, "contact", "not a phone number"),
        ({"contact": PHONE, "accounts": []}, "accounts", "at least 1"),
        ({"contact": PHONE, "channels": "SMS"}, "channels", "not permitted"),
    ],
)
async def test_add_refuses_what_the_contract_refuses(
    make_settings: MakeSettings, tmp_path: Path, body: dict[str, Any], field: str, words: str
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with api_client(settings) as (client, _):
        r = await client.post("/v1/entries", json={"accounts": ["acme"], **body}, headers=auth())
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["field"] == field
    assert words in problem["reason"] or words in problem["error"]
    assert "value" in problem


async def test_filters_and_stable_pagination(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    k = EntryKey
    rows = [
        (k("acme", PHONE, "SMS", "acme"), Source.MANUAL, T0 + 1),
        (k("acme", "441234567891", None, None), Source.END_USER_MESSAGE, T0 + 2),
        (k("acme", "jane@example.com", "EMAIL", "news@acme.com"), Source.URL_OPT_OUT, T0 + 3),
        (k("acme", "447700900123", "VIBER", None), Source.CAMPAIGN_ACTION, T0 + 4),
        (k("acme-eu", PHONE, None, None), Source.MANUAL, T0 + 5),
    ]
    # One import: twenty entries with the same added_at (the tie-break must be stable).
    rows += [
        (k("acme", f"4479000000{i:02d}", None, None), Source.IMPORT, T0 + 10) for i in range(20)
    ]
    async with running(settings, "listwriter"), api_client(settings) as (client, ctx):
        await seed(ctx, rows)

        async def contacts(**params: Any) -> list[str]:
            page = await listing(client, limit=500, **params)
            assert page["total"] == len(page["entries"])
            return [f"{e['account']}/{e['contact']}" for e in page["entries"]]

        assert len(await contacts()) == 25  # both granted accounts
        assert await contacts(account="acme-eu") == [f"acme-eu/{PHONE}"]
        assert await contacts(contact="+44 (0)1234 567890") == [f"acme-eu/{PHONE}", f"acme/{PHONE}"]
        assert await contacts(contact="4412345678*", account="acme") == [
            "acme/441234567891",
            f"acme/{PHONE}",
        ]
        assert await contacts(contact="JANE@*") == ["acme/jane@example.com"]
        assert await contacts(channel="sms") == [f"acme/{PHONE}"]
        assert len(await contacts(channel="ALL")) == 22
        assert len(await contacts(channel=["ALL", "SMS"], account="acme")) == 22
        assert await contacts(sender=" ACME ") == [f"acme/{PHONE}"]
        assert len(await contacts(sender="ALL")) == 23
        assert len(await contacts(source="import")) == 20
        assert await contacts(source=["MANUAL", "URL_OPT_OUT"], account="acme") == [
            "acme/jane@example.com",
            f"acme/{PHONE}",
        ]
        assert await contacts(channel="ALL", source="END_USER_MESSAGE", contact="44*") == [
            "acme/441234567891"
        ]
        assert await contacts(
            added_from="2026-01-01T00:00:00.002Z", added_to="2026-01-01T00:00:00.005Z"
        ) == ["acme/447700900123", "acme/jane@example.com", "acme/441234567891"]

        # Pages of 7 over 25 entries: newest first, each entry once, the total on every page.
        seen: list[tuple[str, str]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = await listing(client, **params)
            assert page["total"] == 25
            seen += [(e["added_at"], f"{e['account']}/{e['contact']}") for e in page["entries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 25
        assert len(set(seen)) == 25
        assert [t for t, _ in seen] == sorted((t for t, _ in seen), reverse=True)
        again = [
            f"{e['account']}/{e['contact']}" for e in (await listing(client, limit=25))["entries"]
        ]
        assert [c for _, c in seen] == again

        for params, field in (
            ({"limit": 501}, "limit"),
            ({"cursor": "nope"}, "cursor"),
            ({"channel": "FAX"}, "channel"),
            ({"source": "SPAM"}, "source"),
            ({"added_from": "yesterday"}, "added_from"),
        ):
            r = await client.get("/v1/entries", params=params, headers=auth())
            assert r.status_code == 422, params
            assert r.json()["field"] == field


async def test_a_filtered_total_past_the_bound_is_shown_as_a_lower_bound(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    settings = settings.model_copy(
        update={"view": settings.view.model_copy(update={"count_bound": 3})}
    )
    rows = [
        (EntryKey("acme", f"4479000002{i:02d}", "SMS", None), Source.IMPORT, T0 + i)
        for i in range(5)
    ]
    rows.append((EntryKey("acme", PHONE, "VIBER", None), Source.MANUAL, T0 + 100))
    async with running(settings, "listwriter"), api_client(settings) as (client, ctx):
        await seed(ctx, rows)
        everything = await listing(client, limit=2)
        assert (everything["total"], everything["total_is_lower_bound"]) == (6, False)
        sms = await listing(client, channel="SMS", limit=2)
        # Five match: counted up to the bound, then "more than 3".
        assert (sms["total"], sms["total_is_lower_bound"]) == (3, True)
        assert len(sms["entries"]) == 2
        assert sms["next_cursor"] is not None
        viber = await listing(client, channel="VIBER")
        assert (viber["total"], viber["total_is_lower_bound"]) == (1, False)


async def test_remove_by_key_and_by_filter(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    rows = [
        (EntryKey("acme", f"4479000001{i:02d}", "SMS", None), Source.IMPORT, T0 + i)
        for i in range(6)
    ]
    rows.append((EntryKey("acme", PHONE, None, None), Source.MANUAL, T0 + 100))
    async with running(settings, "listwriter"), api_client(settings) as (client, ctx):
        await seed(ctx, rows)
        listed = (await listing(client))["entries"]
        assert len(listed) == 7

        # One entry, sent back as listed (extra fields are ignored).
        r = await client.request("DELETE", "/v1/entries", json=[listed[0]], headers=auth())
        assert r.status_code == 200, r.text
        assert r.json()["removed"] == 1
        check = await client.get(
            "/v1/check", params={"account": "acme", "contact": PHONE}, headers=auth()
        )
        assert check.json()["blocked"] is False  # effective at the gate's index
        assert (await listing(client))["total"] == 6  # and gone from the list

        # Several, one of which is not there (not an error: rule 1).
        keys = [{"account": "acme", "contact": e["contact"], "channel": "sms"} for e in listed[1:3]]
        keys.append({"account": "acme", "contact": "+44 7900 000999", "channel": None})
        r = await client.request("DELETE", "/v1/entries", json=keys, headers=auth())
        assert (r.json()["removed"], r.json()["absent"]) == (2, 1)

        for bad in ([], [{"account": "acme"}], "not a list"):
            r = await client.request("DELETE", "/v1/entries", json=bad, headers=auth())
            assert r.status_code == 422, bad
        r = await client.request("DELETE", "/v1/entries", content=b"[{", headers=auth())
        assert (r.status_code, r.json()["field"]) == (422, "body")

        # By filter: count first, and a stale count removes nothing.
        url = "/v1/entries/remove-matching?source=IMPORT&contact=4479*"
        dry = await client.post(url, json={"dry_run": True}, headers=auth())
        assert dry.json() == {"dry_run": True, "count": 4}
        stale = await client.post(url, json={"expected_count": 7}, headers=auth())
        assert stale.status_code == 409
        assert stale.json()["count"] == 4
        assert (await listing(client))["total"] == 4
        missing = await client.post(url, json={}, headers=auth())
        assert missing.status_code == 422
        assert missing.json()["field"] == "expected_count"
        done = await client.post(url, json={"expected_count": 4}, headers=auth())
        assert done.status_code == 200, done.text
        assert (done.json()["matched"], done.json()["removed"]) == (4, 4)
        assert (await listing(client))["total"] == 0


async def test_slow_list_writer_gets_202_then_the_follow_up_turns_effective(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path, effective_timeout_s=0.3)
    async with api_client(settings) as (client, _):
        r = await client.post(
            "/v1/entries", json={"contact": PHONE, "accounts": ["acme"]}, headers=auth()
        )
        assert r.status_code == 202, r.text
        follow_up = r.json()["follow_up"]
        assert r.json()["status"] == "pending"
        assert r.headers["location"] == follow_up
        assert (await client.get(follow_up, headers=auth())).json()["status"] == "pending"

        async with running(settings, "listwriter"):

            async def effective() -> bool:
                reply = await client.get(follow_up, headers=auth())
                return bool(reply.json()["status"] == "effective")

            await eventually(effective, what="the follow-up to say effective")

            async def listed() -> bool:
                return bool((await listing(client))["total"] == 1)

            await eventually(listed, what="the entry in the list")
        bad = await client.get("/v1/writes/x:y", headers=auth())
        assert bad.status_code == 422


@sqlite_view_only()
async def test_the_view_resumes_after_a_restart_and_rebuilds_a_lost_file(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with running(settings, "listwriter"):
        async with api_client(settings) as (client, _):
            await add(client, contact=PHONE, accounts=["acme", "acme-eu"])
        restarted = ApiContext.build(settings)
        async with api_client(settings, restarted) as (client, ctx):
            assert sum(ctx.view.offsets.values()) >= 2  # resumed, not read again from 0
            assert (await listing(client))["total"] == 2
        ctx.view.path.unlink()
        async with api_client(settings) as (client, ctx):
            meta = await ctx.index.meta()
            assert await ctx.view.wait_for(meta.changes, 10)
            assert (await listing(client))["total"] == 2
