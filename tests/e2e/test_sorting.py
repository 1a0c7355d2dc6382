"""Sorting (issue 17): by Added, Contact, Sender or Source, done by the API (every page in
that order, none repeated), kept in the URL with the page and the page size."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in


async def column(page: Page, n: int) -> list[str]:
    await expect(page.locator("#entries")).not_to_have_attribute("aria-busy", "true")
    return await rows(page).locator(f"td:nth-child({n})").all_inner_texts()


async def test_sorting_is_the_apis_and_lives_in_the_url(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    senders = ["Zeta", "alpha", "Mike", None, "bravo"]
    contacts = [f"4477009020{i:02d}" for i in range(25)]
    for i, contact in enumerate(contacts):
        await tenant.add(contact, sender=senders[i % 5], accounts=[acme if i % 2 else globex])
    await sign_in(page, tenant)
    await page.get_by_label("Rows per page").select_option("10")
    await expect(page.locator("#page-info")).to_have_text("Page 1 of 3")

    # Contact A–Z, across both accounts and three pages: the whole list in order.
    await page.get_by_label("Sort by").select_option("contact")
    await expect(rows(page).first.locator("td.contact")).to_have_text(contacts[0])
    walked = await column(page, 2)
    for _ in range(2):
        await page.get_by_role("button", name="Next page").click()
        await expect(page.locator("#page-info")).not_to_have_text("Page 1 of 3")
        walked += await column(page, 2)
    assert walked == contacts
    assert parse_qs(urlparse(page.url).query) == {
        "page": ["3"],
        "size": ["10"],
        "sort": ["contact"],
    }
    header = page.locator("#entries th[data-sort='contact']")
    await expect(header).to_have_attribute("aria-sort", "ascending")

    # Sender Z–A: compared without case, shown as entered; a reload keeps order and page.
    await page.get_by_label("Sort by").select_option("-sender")
    await expect(page.locator("#page-info")).to_have_text("Page 1 of 3")
    await page.get_by_role("button", name="Next page").click()
    await expect(page.locator("#page-info")).to_have_text("Page 2 of 3")
    second = await column(page, 3)
    await page.reload()
    await expect(page.locator("#page-info")).to_have_text("Page 2 of 3")
    await expect(page.get_by_label("Sort by")).to_have_value("-sender")
    assert await column(page, 3) == second
    await page.get_by_role("button", name="Previous page").click()
    first = await column(page, 3)
    await page.get_by_role("button", name="Next page").click()
    await page.get_by_role("button", name="Next page").click()
    await expect(page.locator("#page-info")).to_have_text("Page 3 of 3")
    everything = first + second + await column(page, 3)
    assert (
        everything
        == ["Zeta"] * 5 + ["Mike"] * 5 + ["bravo"] * 5 + ["alpha"] * 5 + ["All senders"] * 5
    )

    # Newest first again: the default, left out of the URL.
    await page.get_by_label("Sort by").select_option("-added")
    await expect(rows(page).first.locator("td.contact")).to_have_text(contacts[-1])
    assert "sort" not in parse_qs(urlparse(page.url).query)
