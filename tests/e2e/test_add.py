"""Add new: a new line at the top of the list with the seed's fields and rules — the
international-format hint, no WhatsApp by hand, e-mail ⇒ Email only, accounts chosen —
and the API's validation message next to the field it is about."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in

BY_HAND = ["All channels", "SMS", "MMS", "Voice", "Viber", "RCS", "Email"]


async def enabled_channels(page: Page) -> list[str]:
    options = page.locator("#add-channel option:not([disabled])")
    return await options.all_inner_texts()


async def test_add_new_line_with_the_seeds_rules(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await tenant.add("447700900100", accounts=[acme])  # something already listed
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(1)

    await page.get_by_role("button", name="Add new").click()
    line = page.locator("#entries tbody tr").first
    await expect(line).to_have_class("add-row")  # the new line is the first of the table
    add = page.locator(".add-row")
    contact = add.get_by_role("textbox", name="Contact information")
    await expect(contact).to_be_focused()
    await expect(line).to_contain_text("e.g. 441234567890")
    channel = add.get_by_role("combobox", name="Channel", exact=True)
    # WhatsApp cannot be chosen by hand; blank = all channels.
    assert await channel.locator("option").all_inner_texts() == BY_HAND
    assert await channel.locator("option[value='WHATSAPP']").count() == 0
    await expect(add).to_contain_text("WhatsApp: use a journey, or All channels")

    # An e-mail address: only Email (or all channels); a phone channel chosen before
    # becomes Email.
    await channel.select_option("SMS")
    await contact.fill("Jane@Example.com")
    assert await enabled_channels(page) == ["All channels", "Email"]
    await expect(channel).to_have_value("EMAIL")
    await channel.select_option("")
    await channel.select_option("EMAIL")
    await add.get_by_label(acme).check()
    await add.get_by_label(globex).check()
    await add.get_by_role("button", name="Save").click()
    await expect(page.locator("#notice")).to_have_text(
        f"jane@example.com: added to {acme}, {globex}."
    )
    await expect(add).to_have_count(0)
    await expect(page.get_by_role("button", name="Add new")).to_be_focused()
    top = [await rows(page).nth(i).locator("td").all_inner_texts() for i in range(2)]
    assert sorted(r[1:6] for r in top) == [
        ["jane@example.com", "All senders", "Added manually", "Email", account]
        for account in (acme, globex)
    ]
    assert await tenant.contacts(channel="EMAIL") == {"jane@example.com"}

    # A phone number: never Email; with a sender, in one account.
    await page.get_by_role("button", name="Add new").click()
    await contact.fill("+44 1234 567890")
    assert await enabled_channels(page) == BY_HAND[:-1]
    await channel.select_option("SMS")
    await add.get_by_role("textbox", name="Sender (optional)").fill("ACME")
    await add.get_by_label(acme).check()
    await contact.press("Enter")  # Enter saves as well
    await expect(page.locator("#notice")).to_have_text(f"441234567890: added to {acme}.")
    first = await rows(page).first.locator("td").all_inner_texts()
    assert first[1:6] == ["441234567890", "ACME", "Added manually", "SMS", acme]
    check = await tenant.check(acme, "441234567890", channel="SMS", sender="ACME")
    assert check["blocked"] is True
    assert check["entry"]["source"] == "MANUAL"

    # The API's 422 is shown next to the field it names; nothing is added.
    await page.get_by_role("button", name="Add new").click()
    await contact.fill("12ab")
    await add.get_by_label(globex).check()
    await add.get_by_role("button", name="Save").click()
    error = page.locator("#add-contact-error")
    await expect(error).to_contain_text("“12ab” is not a phone number or e-mail address")
    await expect(contact).to_have_attribute("aria-invalid", "true")
    await expect(contact).to_be_focused()
    await expect(page.locator("#add-sender-error")).to_be_empty()

    await contact.fill("447700900200")
    await add.get_by_role("textbox", name="Sender (optional)").fill("news@")
    await add.get_by_role("button", name="Save").click()
    await expect(page.locator("#add-sender-error")).to_contain_text("“news@”")
    await expect(add.get_by_role("textbox", name="Sender (optional)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(error).to_be_empty()

    # No account chosen: said next to the accounts.
    await add.get_by_role("textbox", name="Sender (optional)").fill("")
    await add.get_by_label(globex).uncheck()
    await add.get_by_role("button", name="Save").click()
    await expect(page.locator("#add-accounts-error")).to_have_text("Choose at least one account.")

    # Escape (or Cancel) drops the line.
    await contact.press("Escape")
    await expect(add).to_have_count(0)
    assert (await tenant.entries())["total"] == 4
