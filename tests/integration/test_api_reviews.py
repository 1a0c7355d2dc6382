"""The review queue on the real stack: with policy ``review`` opt-outs in people's own
words (clear or possible) wait in ``GET /v1/reviews``; confirming one blocks the number
(with the scope the reviewer chose) and records who decided; dismissing one blocks
nothing; a false friend never reaches the queue."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dnc.settings import Keywords
from tests.apikit import (
    PHONE,
    SECRET_A,
    SECRET_B,
    MakeSettings,
    api_client,
    api_settings,
    auth,
    gate_verdicts,
    served_api,
)
from tests.kit import ROOT, inbound, outbound, produce, running
from tests.ports import free_port

pytestmark = pytest.mark.integration

OTHER_PHONE = "441234567891"
VISITOR = "441234567899"


async def open_reviews(client: httpx.AsyncClient, n: int, **params: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        r = await client.get("/v1/reviews", params=params, headers=auth())
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["count"] >= n:
            return body
        assert time.monotonic() < deadline, f"the queue stayed at {body}"
        await asyncio.sleep(0.1)


async def test_review_queue_confirm_blocks_and_dismiss_does_not(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    assert settings.intent.policy == "review"  # the default
    t = settings.topics
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        api_client(settings) as (client, _),
    ):
        await produce(
            settings,
            t.inbound_messages,
            inbound("mo-visit", "+" + VISITOR, "Can you stop by at 5?"),
            inbound("mo-1", "+" + PHONE, "Please stop texting me!!"),
            inbound("mo-2", "+" + OTHER_PHONE, "How do I stop these texts?"),
        )
        body = await open_reviews(client, 2)
        assert body["open"] == 2 and body["oldest_open_age_s"] >= 0
        metrics = (await client.get("/metrics")).text
        assert "dnc_reviews_open 2.0" in metrics
        assert "dnc_reviews_oldest_open_age_seconds " in metrics
        by_message = {r["message_id"]: r for r in body["reviews"]}
        assert set(by_message) == {"mo-1", "mo-2"}  # the visitor is not in the queue
        clear, possible = by_message["mo-1"], by_message["mo-2"]
        assert (clear["verdict"], clear["phrase"], clear["status"]) == (
            "opt_out", "stop texting", "open"
        )  # fmt: skip
        assert possible["verdict"] == "possible_opt_out"
        assert (
            await client.get("/v1/reviews", params={"verdict": "opt_out"}, headers=auth())
        ).json()["count"] == 1
        # Nothing is blocked before a person decides (contract rule 5 under `review`).
        assert await gate_verdicts(settings, outbound("m-0", PHONE, sender="ACME")) == {
            "m-0": "allowed"
        }
        # Another key's accounts do not see or decide this account's reviews.
        other = await client.post(
            f"/v1/reviews/{clear['review_id']}/confirm", headers=auth(SECRET_B)
        )
        assert other.status_code == 404

        r = await client.post(
            f"/v1/reviews/{clear['review_id']}/confirm",
            json={"senders": "all", "channels": "this"},
            headers=auth(),
        )
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["status"] == "effective"
        assert done["review"]["status"] == "confirmed" and done["review"]["decided_by"] == "ops"
        assert done["entry"] == {
            "account": "acme",
            "contact": PHONE,
            "channel": "SMS",
            "sender": None,
        }
        again = await client.post(f"/v1/reviews/{clear['review_id']}/dismiss", headers=auth())
        assert again.status_code == 409 and "already confirmed" in again.json()["error"]

        r = await client.post(f"/v1/reviews/{possible['review_id']}/dismiss", headers=auth())
        assert r.status_code == 200, r.text
        assert r.json()["review"]["status"] == "dismissed"
        left = (await client.get("/v1/reviews", headers=auth())).json()
        assert left["count"] == 0 and left["oldest_open_age_s"] is None
        decided = (await client.get("/v1/reviews", params={"status": "all"}, headers=auth())).json()
        assert {r["status"] for r in decided["reviews"]} == {"confirmed", "dismissed"}

        verdicts = await gate_verdicts(
            settings,
            outbound("m-1", PHONE, sender="ACME"),
            outbound("m-2", PHONE, sender="OTHER"),  # all senders: the reviewer's choice
            outbound("m-3", PHONE, channel="VIBER"),  # this channel only
            outbound("m-4", OTHER_PHONE, sender="ACME"),  # dismissed
        )
        assert verdicts == {"m-1": "blocked", "m-2": "blocked", "m-3": "allowed", "m-4": "allowed"}
        history = (
            await client.get("/v1/history", params={"contact": PHONE}, headers=auth())
        ).json()["history"]
        (record,) = history
        cause = record["cause"]
        assert cause["kind"] == "review" and cause["key"] == "ops"
        assert cause["decision"] == "confirmed" and cause["text"] == "Please stop texting me!!"
        assert record["entry"]["source"] == "END_USER_MESSAGE"


async def test_unknown_review_is_404(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = await api_settings(make_settings, tmp_path)
    async with api_client(settings) as (client, _):
        r = await client.post("/v1/reviews/rv-nope/confirm", headers=auth())
        assert r.status_code == 404 and "rv-nope" in r.json()["error"]
        r = await client.post(
            "/v1/reviews/rv-nope/confirm", json={"senders": "some"}, headers=auth()
        )
        assert r.status_code == 422


async def test_the_review_verbs_of_the_cli(make_settings: MakeSettings, tmp_path: Path) -> None:
    port = free_port()
    settings = await api_settings(make_settings, tmp_path, port=port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_")}
    env |= {"DNC_API_URL": f"http://127.0.0.1:{port}", "DNC_API_KEY": SECRET_A}

    async def dnc(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dnc", "entries", *args, env=env, cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async with running(settings, "ingest", "listwriter", "gate"), served_api(settings):
        await produce(
            settings,
            settings.topics.inbound_messages,
            inbound("mo-1", "+" + PHONE, "No más mensajes, por favor"),
        )
        deadline = time.monotonic() + 30
        while True:
            code, out, err = await dnc("reviews", "--json")
            assert code == 0, err
            found = orjson.loads(out)["reviews"]
            if found:
                break
            assert time.monotonic() < deadline, "the review never showed"
            await asyncio.sleep(0.2)
        (review,) = found
        assert review["language"] == "es"
        code, out, err = await dnc("reviews")
        assert code == 0 and "1 reviews (1 open; oldest open item" in err
        assert review["review_id"] in out
        code, out, err = await dnc("confirm-review", review["review_id"], "--all-channels")
        assert code == 0, err
        assert f"{PHONE} is blocked (all channels, acme)" in out
        code, _, err = await dnc("dismiss-review", review["review_id"])
        assert code == 1 and "already confirmed" in err
        code, _, err = await dnc("dismiss-review", "rv-nope")
        assert code == 3, err
        verdicts = await gate_verdicts(settings, outbound("m-1", PHONE, channel="VIBER"))
    assert verdicts == {"m-1": "blocked"}


async def test_a_confirmation_follows_the_accounts_stop_scope(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = await api_settings(make_settings, tmp_path)
    settings = settings.model_copy(
        update={"keywords": Keywords(stop_scope_accounts={"acme": "all_senders"})}
    )
    async with (
        running(settings, "ingest", "listwriter", "gate"),
        api_client(settings) as (client, _),
    ):
        await produce(
            settings,
            settings.topics.inbound_messages,
            inbound("mo-1", "+" + PHONE, "leave me alone"),
        )
        (review,) = (await open_reviews(client, 1))["reviews"]
        r = await client.post(f"/v1/reviews/{review['review_id']}/confirm", headers=auth())
        assert r.status_code == 200, r.text
        assert r.json()["entry"]["sender"] is None  # all senders: the account's STOP scope
        assert r.json()["review"]["scope"] == {"senders": "all", "channels": "this"}
