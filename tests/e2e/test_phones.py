"""Phones (issue 17): the page is usable from 360 px wide — no sideways page scroll, the
list as cards, dialogs that fit, and touch targets of at least 44 × 44 px."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows
from tests.e2e.test_defects_layout import walk_the_page

# Every visible control a finger has to hit, smaller than 44 px either way.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'button, select, input:not([type="hidden"]), a[href], [tabindex="0"]')]
  .filter((n) => n.checkVisibility() && !n.closest('.visually-hidden'))
  .map((n) => [n, n.getBoundingClientRect()])
  .filter(([, r]) => r.width < 44 || r.height < 44)
  .map(([n, r]) => `${n.tagName.toLowerCase()}#${n.id || n.textContent.trim().slice(0, 20)}`
    + ` ${Math.round(r.width)}×${Math.round(r.height)}`)"""


async def no_small_targets(page: Page) -> None:
    small = await page.evaluate(SMALL_TARGETS)
    assert small == [], small


@pytest.mark.parametrize("width", [390, 360])
async def test_the_page_on_a_phone(page: Page, tenant: Tenant, width: int) -> None:
    acme, globex = tenant.accounts
    await tenant.add(
        "447700900961", channel="SMS", sender="A-Very-Long-Sender-Name", accounts=[acme]
    )
    await tenant.add("someone.with.a.long.address@example.com", accounts=[globex])
    await tenant.add("447700900963", accounts=[acme])
    await page.set_viewport_size({"width": width, "height": 780})
    await walk_the_page(page, tenant, f"{width}px")
    await (
        page.get_by_role("dialog", name="Import contacts")
        .get_by_role("button", name="Close")
        .click()
    )

    # The list is a list of cards: each row's cells one under the other, with their names.
    first = rows(page).first
    await expect(first.locator("td[data-label='Sender']")).to_be_visible()
    # Polled in the page: a list refresh may replace the row between finding and reading
    # it, and a detached cell has no computed style at all.
    await page.wait_for_function(
        """() => {
          const td = document.querySelector("#rows tr[data-key] td[data-label='Sender']");
          return td && getComputedStyle(td, '::before').content === '"Sender: "';
        }"""
    )
    box = await first.bounding_box()
    assert box is not None and box["width"] <= width

    # Touch targets: the list, the add row, the filters, the check form, the dialogs.
    await no_small_targets(page)
    await page.get_by_role("button", name="Add new").click()
    await no_small_targets(page)
    await page.locator(".add-row").get_by_role("button", name="Cancel").click()
    if await page.locator("#filter-form").is_hidden():  # the walk may have left it open
        await page.get_by_role("button", name="Add filter").click()
    await no_small_targets(page)
    await page.get_by_role("button", name="Done").click()
    await rows(page).first.get_by_role("button", name="Delete").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_be_visible()
    await no_small_targets(page)
    box = await dialog.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    await dialog.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Dry run").click()
    await no_small_targets(page)
