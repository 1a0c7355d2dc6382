"""Filters: several values in one filter (OR), several filters (AND), each removable, and
the URL keeps them so a view can be reloaded or shared."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlparse

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, screenshot_path, sign_in

A, B, C, D, E = "447700900001", "447700900002", "jane@example.com", "447700900004", "447700900005"


async def shown(page: Page) -> set[str]:
    await expect(page.locator("#entries")).not_to_have_attribute("aria-busy", "true")
    return set(await rows(page).locator("td.contact").all_inner_texts())


async def expect_shown(page: Page, expected: set[str]) -> None:
    deadline = time.monotonic() + 10
    while (got := await shown(page)) != expected:
        assert time.monotonic() < deadline, f"the list shows {got}, expected {expected}"
        await asyncio.sleep(0.1)


async def add_filter(page: Page, field: str, value: str) -> None:
    form = page.locator("#filter-form")
    if await form.is_hidden():
        await page.get_by_role("button", name="Add filter").click()
    await page.get_by_label("Filter on").select_option(field)
    control = form.get_by_label("Value")
    if await control.evaluate("n => n.tagName") == "SELECT":
        await control.select_option(value)
    else:
        await control.fill(value)
    await page.get_by_role("button", name="Add value").click()


async def test_filters_combine_are_removable_and_live_in_the_url(
    page: Page, tenant: Tenant
) -> None:
    acme, globex = tenant.accounts
    await tenant.add(A, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.add(B, channel="VIBER", accounts=[acme])
    await tenant.add(C, channel="EMAIL", accounts=[globex])
    await tenant.add(D, accounts=[globex])
    await tenant.stop_message(E, acme)  # an end user's STOP, through Kafka and the ingest role
    await tenant.wait_total(5)

    await sign_in(page, tenant)
    await expect_shown(page, {A, B, C, D, E})
    sources = await rows(page).filter(has_text=E).locator("td").nth(3).inner_text()
    assert sources == "Message from end user"

    # The "Add filter" button opens and closes the form.
    add = page.get_by_role("button", name="Add filter")
    await expect(page.locator("#filter-form")).to_be_hidden()
    await expect(add).to_have_attribute("aria-expanded", "false")
    await add.click()
    await expect(add).to_have_attribute("aria-expanded", "true")
    await expect(page.get_by_label("Filter on")).to_be_focused()

    # Two values of one filter: either.
    await add_filter(page, "channel", "SMS")
    await expect_shown(page, {A, E})
    await add_filter(page, "channel", "VIBER")
    await expect_shown(page, {A, B, E})
    await expect(page.locator("#list-summary")).to_have_text("Showing 1–3 of 3 contacts")
    # A second and a third filter: all of them.
    await add_filter(page, "account", acme)
    await expect_shown(page, {A, B, E})
    await add_filter(page, "source", "MANUAL")
    await expect_shown(page, {A, B})
    chips = page.locator("#filter-list li")
    await expect(chips).to_have_count(3)
    await expect(chips.nth(0).locator(".chip-value")).to_have_text(["SMS", "Viber"])
    await expect(chips.nth(1).locator(".chip-value")).to_have_text([acme])
    await expect(chips.nth(2).locator(".chip-value")).to_have_text(["Added manually"])
    await page.screenshot(path=screenshot_path("list-with-filters.png"), full_page=True)

    query = parse_qs(urlparse(page.url).query)
    assert query == {"channel": ["SMS", "VIBER"], "account": [acme], "source": ["MANUAL"]}

    # The URL is the view: a reload, and a new tab that signs in, show the same.
    shared = page.url
    await page.reload()
    await expect(chips).to_have_count(3)
    await expect_shown(page, {A, B})
    other = await page.context.new_page()
    await sign_in(other, tenant, shared)
    await expect(other.locator("#filter-list li")).to_have_count(3)
    await expect_shown(other, {A, B})
    await other.close()

    # Removing: one value, then whole filters (the URL follows).
    await page.get_by_role("button", name="Remove the Source filter").click()
    await expect_shown(page, {A, B, E})
    await page.get_by_role("button", name="Remove Viber from the Channel filter").click()
    await expect_shown(page, {A, E})
    assert parse_qs(urlparse(page.url).query) == {"channel": ["SMS"], "account": [acme]}
    await page.get_by_role("button", name="Remove the Channel filter").click()
    await expect_shown(page, {A, B, E})
    await page.go_back()  # the browser's history holds the previous view
    await expect_shown(page, {A, E})
    await page.get_by_role("button", name="Remove the Account filter").click()
    await page.get_by_role("button", name="Remove the Channel filter").click()
    await expect(chips).to_have_count(0)
    await expect_shown(page, {A, B, C, D, E})
    assert urlparse(page.url).query == ""

    # Contact prefix, sender, and time: a future "added from" matches nothing.
    await add_filter(page, "contact", "4477009000*")
    await expect_shown(page, {A, B, D, E})
    await add_filter(page, "sender", "acme")
    await expect_shown(page, {A, E})
    await add_filter(page, "added_from", "2999-01-01T00:00")
    await expect_shown(page, set())
    await expect(page.locator("#rows")).to_contain_text("No contacts on the list match.")
    await page.get_by_role("button", name="Clear all filters").click()
    await expect_shown(page, {A, B, C, D, E})
