"""The page's "Needs review" panel: replies that may be opt-outs in the person's own words
(policy `review`, the default) are listed with a count badge, the text and the verdict;
one click confirms (the person is blocked) or dismisses (nothing is blocked); a reply
older than five business days raises a warning."""

from __future__ import annotations

import asyncio
import time
import uuid

from playwright.async_api import Page, expect

from dnc.domain.events import ReviewItem
from dnc.domain.reviews import review_id
from tests import kit
from tests.e2e.conftest import Tenant, sign_in

PHONE = "447700900801"
MAYBE = "447700900802"
OLD = "447700900803"


async def reply(tenant: Tenant, phone: str, text: str) -> None:
    message = kit.inbound(
        f"mo-{uuid.uuid4().hex[:8]}", "+" + phone, text, account=tenant.accounts[0]
    )
    await kit.produce(tenant.settings, tenant.settings.topics.inbound_messages, message)


async def open_count(tenant: Tenant, n: int) -> None:
    deadline = time.monotonic() + 20
    while (await tenant.client.get("/v1/reviews")).json()["open"] < n:
        assert time.monotonic() < deadline, f"the queue never reached {n}"
        await asyncio.sleep(0.1)


async def test_confirm_and_dismiss_from_the_page(page: Page, tenant: Tenant) -> None:
    acme = tenant.accounts[0]
    await reply(tenant, PHONE, "Please stop texting me!!")
    await reply(tenant, MAYBE, "How do I stop these texts?")
    await reply(tenant, "447700900809", "Can you stop by at 5?")  # never queued
    await open_count(tenant, 2)

    await sign_in(page, tenant)
    panel = page.locator("#reviews-section")
    await expect(panel.locator("#reviews-count")).to_have_text("2")
    await expect(panel.locator("#review-rows tr")).to_have_count(2)
    await expect(panel.locator("#reviews-warning")).to_be_hidden()
    first = panel.locator("#review-rows tr", has_text=PHONE)
    await expect(first).to_contain_text("“Please stop texting me!!”")
    await expect(first).to_contain_text("Opt-out · “stop texting”")
    second = panel.locator("#review-rows tr", has_text=MAYBE)
    await expect(second).to_contain_text("Possible opt-out")

    await first.get_by_role("button", name=f"Confirm opt-out of {PHONE}").click()
    await expect(page.locator("#notice")).to_have_text(
        f"Confirmed: {PHONE} is on the Do Not Contact list."
    )
    await expect(panel.locator("#reviews-count")).to_have_text("1")
    assert (await tenant.check(acme, PHONE, channel="SMS", sender="ACME"))["blocked"] is True

    await second.get_by_role("button", name=f"Dismiss {MAYBE}").click()
    await expect(page.locator("#notice")).to_have_text(f"Dismissed the reply from {MAYBE}.")
    await expect(panel.locator("#reviews-count")).to_have_text("0")
    await expect(panel.locator("#reviews-summary")).to_have_text("Nothing to review.")
    assert (await tenant.check(acme, MAYBE, channel="SMS", sender="ACME"))["blocked"] is False


async def test_an_old_reply_raises_the_ten_business_day_warning(page: Page, tenant: Tenant) -> None:
    acme = tenant.accounts[0]
    settings = tenant.settings
    # A review written as ingest would have written it three weeks ago.
    rid = review_id(acme, f"mo-old-{uuid.uuid4().hex[:6]}")
    old = ReviewItem(
        review_id=rid, status="open", account=acme, channel="SMS", contact=OLD, sender="acme",
        message_id="mo-old", text="leave me alone", verdict="opt_out", phrase="leave me alone",
        policy="review", created_at="2026-01-05T09:00:00.000Z",
    )  # fmt: skip
    await kit.produce(
        settings, settings.topics.reviews, old.model_dump_json().encode(), key=rid.encode()
    )
    await open_count(tenant, 1)
    await sign_in(page, tenant)
    warning = page.locator("#reviews-warning")
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("business days: opt-outs must be honoured within ten")


async def test_the_check_says_in_words_why_a_reply_blocked(page: Page, tenant: Tenant) -> None:
    globex = tenant.accounts[1]
    # globex turns opt-outs read from replies into entries at once (policy auto). The
    # policy is ingest's setting per account; this test's accounts are its own, and the
    # session's in-process ingest reads the setting per message.
    tenant.settings.intent.accounts[globex] = "auto"
    try:
        auto = kit.inbound(f"mo-{uuid.uuid4().hex[:8]}", "+" + PHONE, "Please stop texting me!!",
                           account=globex)  # fmt: skip
        await kit.produce(tenant.settings, tenant.settings.topics.inbound_messages, auto)
        await tenant.wait_total(1, account=globex)
    finally:
        del tenant.settings.intent.accounts[globex]
    # acme reviews them (the default): a person confirms the reply, for every sender.
    await reply(tenant, MAYBE, "No more messages please")
    await open_count(tenant, 1)
    queued = (await tenant.client.get("/v1/reviews")).json()["reviews"][0]
    r = await tenant.client.post(
        f"/v1/reviews/{queued['review_id']}/confirm", json={"senders": "all"}
    )
    assert r.status_code == 200, r.text

    await sign_in(page, tenant)
    form = page.locator("#check-form")
    history = page.locator("#check-history tbody tr")
    await form.get_by_label("Contact information").fill(PHONE)
    await form.get_by_role("button", name="Check").click()
    await expect(history).to_have_count(1)
    cause = history.first.locator("td").nth(4)
    await expect(cause).to_have_text(
        f"Opt-out in the person's own words (message {auto['message_id']}: "
        "“Please stop texting me!!”, matched “stop texting” (English))"
    )
    await expect(page.locator("#check-result table.check-entries .badge").first).to_have_text("SMS")

    await form.get_by_label("Contact information").fill(MAYBE)
    await form.get_by_role("button", name="Check").click()
    await expect(history.first).to_contain_text("Reviewed reply")
    await expect(history.first.locator("td").nth(4)).to_have_text(
        f"Reviewed reply (Confirmed by {tenant.name}: “No more messages please”; "
        "blocks all senders on this channel)"
    )
    for raw in ("inbound_intent", "review (", "opt_out", "END_USER_MESSAGE"):
        await expect(page.locator("#check-result")).not_to_contain_text(raw)
