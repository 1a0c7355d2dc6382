"""The review queue on the real stack: with policy ``review`` opt-outs in people's own
words (clear or possible) wait in ``GET /v1/reviews``; confirming one blocks the number
(with the scope the reviewer chose) and records who decided; dismissing one blocks
nothing; a false friend never reaches the queue."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apikit import (
    PHONE,
    SECRET_B,
    MakeSettings,
    api_client,
    api_settings,
    auth,
    gate_verdicts,
)
from tests.kit import inbound, outbound, produce, running

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
