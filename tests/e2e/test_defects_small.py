"""The smaller defects of issue 17 (item 9): each one a user noticed."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from playwright.async_api import Page, Response, expect

from tests.e2e.conftest import Stack, Tenant, csv_bytes, rows, sign_in
from tests.e2e.test_filters import add_filter

PHONE = "447700900951"


async def test_one_entry_keeps_blocking(page: Page, tenant: Tenant) -> None:
    await tenant.add(PHONE)
    await sign_in(page, tenant)
    await page.get_by_label("Contact information", exact=True).first.fill(PHONE)
    await page.get_by_role("button", name="Check", exact=True).click()
    await page.get_by_role("button", name="Erase this person").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Erase").click()
    await expect(page.locator("#notice")).to_contain_text(
        "1 history record deleted; 1 entry keeps blocking as h1:"
    )


async def test_a_neutral_note_is_not_shown_as_an_error(page: Page, tenant: Tenant) -> None:
    await sign_in(page, tenant)
    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    await wizard.get_by_label("File", exact=True).set_input_files(
        {"name": "two.csv", "mimeType": "text/csv", "buffer": csv_bytes("a,447700900952")}
    )
    await wizard.get_by_role("button", name="Next").click()
    await wizard.get_by_label("Column 1", exact=True).select_option("contact")
    await wizard.get_by_label("Column 2", exact=True).select_option("contact")
    note = wizard.get_by_text("Contact information was moved from Column 1 to Column 2.")
    await expect(note).to_be_visible()
    danger = await page.evaluate(
        "getComputedStyle(document.querySelector('#alert')).color"
    )  # the page's error colour
    assert await note.evaluate("n => getComputedStyle(n).color") != danger
    await expect(wizard.locator("#import-map-error")).to_be_empty()


async def test_times_are_written_one_way(page: Page, tenant: Tenant) -> None:
    await tenant.add(PHONE)
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(1)
    await add_filter(page, "added_from", "2026-01-02T03:30")
    chip = page.locator("#filter-list .chip-value")
    await expect(chip).to_have_text(re.compile(r"^2026-01-0[12] \d\d:\d\d:00 UTC$"))
    table = await rows(page).first.locator("time").first.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", table)


async def test_page_and_page_size_are_kept_in_the_url(page: Page, tenant: Tenant) -> None:
    for i in range(23):
        await tenant.add(f"4477009010{i:02d}")
    await sign_in(page, tenant)
    await page.get_by_label("Rows per page").select_option("10")
    await expect(page.locator("#page-info")).to_have_text("Page 1 of 3")
    await page.get_by_role("button", name="Next page").click()
    await expect(page.locator("#page-info")).to_have_text("Page 2 of 3")
    shown = await rows(page).locator("td.contact").all_inner_texts()
    assert parse_qs(urlparse(page.url).query) == {"page": ["2"], "size": ["10"]}

    await page.reload()
    await expect(page.locator("#page-info")).to_have_text("Page 2 of 3")
    await expect(page.get_by_label("Rows per page")).to_have_value("10")
    assert await rows(page).locator("td.contact").all_inner_texts() == shown
    await page.get_by_role("button", name="Previous page").click()
    await expect(page.locator("#page-info")).to_have_text("Page 1 of 3")
    assert parse_qs(urlparse(page.url).query) == {"size": ["10"]}
    # A filter keeps the page size and starts again at page 1.
    await page.get_by_role("button", name="Next page").click()
    await add_filter(page, "contact", "4477009010*")
    await expect(page.locator("#page-info")).to_have_text("Page 1 of 3")
    assert parse_qs(urlparse(page.url).query) == {"contact": ["4477009010*"], "size": ["10"]}


async def test_no_missing_favicon_and_no_focus_ring_after_a_reload(
    page: Page, tenant: Tenant, stack: Stack
) -> None:
    failed: list[str] = []

    def seen(response: Response) -> None:
        if response.status >= 400 and "/v1/" not in response.url:
            failed.append(f"{response.status} {response.url}")

    page.on("response", seen)
    await sign_in(page, tenant)
    await page.reload()
    await expect(page.locator("#who-name")).to_have_text(tenant.name)
    await expect(page.locator("#list-summary")).not_to_be_empty()
    # Browsers fetch /favicon.ico on their own (headless Chromium does not): it exists.
    icon = await page.request.get(f"{stack.base_url}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert failed == []
    focused = await page.evaluate("document.activeElement.id")
    assert focused != "list-h"
    outline = await page.locator("#list-h").evaluate("h => getComputedStyle(h).outlineStyle")
    assert outline == "none"


async def test_added_times_stay_on_one_line_while_adding(page: Page, tenant: Tenant) -> None:
    await tenant.add(PHONE, channel="SMS", sender="Some-Long-Sender-Name")
    await page.set_viewport_size({"width": 1440, "height": 900})
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(1)
    await page.get_by_role("button", name="Add new").click()
    await expect(page.locator(".add-row")).to_be_visible()
    for time in await rows(page).locator("time").all():
        assert await time.evaluate("t => t.getClientRects().length") == 1


async def test_typing_an_email_says_the_channel_changed(page: Page, tenant: Tenant) -> None:
    await sign_in(page, tenant)
    await page.get_by_role("button", name="Add new").click()
    add = page.locator(".add-row")
    channel = add.get_by_role("combobox", name="Channel", exact=True)
    await channel.select_option("SMS")
    await add.get_by_role("textbox", name="Contact information").fill("jane@example.com")
    await expect(channel).to_have_value("EMAIL")
    await expect(channel).to_have_accessible_description(
        re.compile("^Changed from SMS to Email: an e-mail address can only have Email")
    )
