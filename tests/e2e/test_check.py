"""Check a contact: is this person on the list, and why — the matching entries, most
specific first, with their source and added time, per account."""

from __future__ import annotations

import asyncio
import time

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, sign_in

PHONE = "447700900501"


async def test_check_a_contact(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await tenant.add(PHONE, accounts=[acme])  # all channels, all senders
    await tenant.add(PHONE, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.stop_message(PHONE, acme, to="PROMO")  # SMS from PROMO, by the end user
    deadline = time.monotonic() + 20
    while len((await tenant.check(acme, PHONE))["entries"]) < 3:
        assert time.monotonic() < deadline, "the STOP never reached the index"
        await asyncio.sleep(0.1)

    await sign_in(page, tenant)
    form = page.locator("#check-form")
    result = page.locator("#check-result")

    # Any channel, any sender, every account: on the list in acme, and why.
    await form.get_by_label("Contact information").fill("+44 7700 900501")
    await form.get_by_role("button", name="Check").click()
    await expect(result.locator(".verdict")).to_have_text(
        f"{PHONE} is on the Do Not Contact list: messages are blocked in {acme}."
    )
    tables = result.locator("table.check-entries")
    await expect(tables).to_have_count(1)
    await expect(tables.locator("caption")).to_have_text(f"Entries in {acme}, most specific first")
    lines = [
        await r.locator("td").all_inner_texts() for r in await tables.locator("tbody tr").all()
    ]
    assert [line[:3] for line in lines] == [
        ["SMS", "ACME", "Added manually"],
        ["SMS", "PROMO", "Message from end user"],
        ["All channels", "All senders", "Added manually"],
    ]
    assert all(line[3].endswith(" UTC") and line[4] == "Yes" for line in lines)

    # One account, one channel and sender: only the all-channels entry applies.
    await form.get_by_label("Account").select_option(acme)
    await form.get_by_label("Channel").select_option("VIBER")
    await form.get_by_label("Sender (optional)").fill("ACME")
    await form.get_by_role("button", name="Check").click()
    await expect(result.locator(".verdict")).to_have_text(
        f"{PHONE} is on the Do Not Contact list: messages on Viber from ACME are blocked in {acme}."
    )
    blocks = await result.locator("table.check-entries tbody tr td:nth-child(5)").all_inner_texts()
    assert blocks == ["No", "No", "Yes"]

    # Another account: not on the list there.
    await form.get_by_label("Account").select_option(globex)
    await form.get_by_role("button", name="Check").click()
    await expect(result.locator(".verdict")).to_have_text(
        f"{PHONE} is not on the Do Not Contact list in {globex}."
    )
    await expect(result.locator("table.check-entries")).to_have_count(0)

    # Someone who is on no list; and a contact that is not one (said next to the field).
    await form.get_by_label("Account").select_option("")
    await form.get_by_label("Channel").select_option("")
    await form.get_by_label("Sender (optional)").fill("")
    await form.get_by_label("Contact information").fill("jane@example.com")
    await form.get_by_role("button", name="Check").click()
    await expect(result.locator(".verdict")).to_have_text(
        "jane@example.com is not on the Do Not Contact list in any of your accounts."
    )
    await form.get_by_label("Contact information").fill("12ab")
    await form.get_by_role("button", name="Check").click()
    await expect(page.locator("#check-contact-error")).to_contain_text(
        "“12ab” is not a phone number or e-mail address"
    )
    await expect(form.get_by_label("Contact information")).to_have_attribute("aria-invalid", "true")
