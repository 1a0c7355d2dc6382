"""Defect 8 of issue 17: at 400 px the page scrolled sideways (841 px wide), "Export all
matching" was cut off, and the import dialog (430 px) was wider than the screen."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from tests.e2e.conftest import Tenant, csv_bytes, rows, screenshot_path, sign_in


async def no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    inner = await page.evaluate("window.innerWidth")
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"


async def inside(page: Page, what: Locator) -> None:
    """Entirely within the window's width (not cut off at either side)."""
    box = await what.bounding_box()
    inner = await page.evaluate("window.innerWidth")
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= inner, (box, inner)


async def walk_the_page(page: Page, tenant: Tenant, name: str) -> None:
    """Every state of the page a narrow screen must show whole: the list, the add row,
    the filters, and each step of the import dialog."""
    acme, _globex = tenant.accounts
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(3)
    await no_sideways_scroll(page)
    await inside(page, page.get_by_role("button", name="Export all matching"))
    await inside(page, page.get_by_role("button", name="Next page"))
    await page.screenshot(path=screenshot_path(f"{name}-list.png"), full_page=True)

    await page.get_by_role("button", name="Add new").click()
    await no_sideways_scroll(page)
    await inside(page, page.locator(".add-row").get_by_role("button", name="Save"))
    await page.screenshot(path=screenshot_path(f"{name}-add.png"), full_page=True)
    await page.locator(".add-row").get_by_role("button", name="Cancel").click()

    await page.get_by_role("button", name="Add filter").click()
    await no_sideways_scroll(page)
    await inside(page, page.get_by_role("button", name="Add value"))

    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    await inside(page, wizard)
    await wizard.get_by_label("File", exact=True).set_input_files(
        {
            "name": "wide.csv",
            "mimeType": "text/csv",
            "buffer": csv_bytes("Name,Phone,Channel,Sender,Note", "Ann,447700900911,SMS,ACME,x"),
        }
    )
    await wizard.get_by_role("button", name="Next").click()
    await wizard.get_by_label("Column 2", exact=True).select_option("contact")
    await inside(page, wizard)
    await inside(page, wizard.get_by_role("button", name="Analyze"))
    await page.screenshot(path=screenshot_path(f"{name}-import-map.png"))
    await wizard.get_by_role("button", name="Analyze").click()
    await expect(wizard.get_by_role("heading", name="Analysis")).to_be_visible()
    await inside(page, wizard)
    await wizard.get_by_label(acme).check()
    await inside(page, wizard.get_by_role("button", name="Import", exact=True))
    await wizard.get_by_role("button", name="Import", exact=True).click()
    await expect(wizard.get_by_role("heading", name="Importing")).to_be_visible()
    await inside(page, wizard)
    close = wizard.get_by_role("button", name="Close")
    await close.scroll_into_view_if_needed()
    await inside(page, close)
    await inside(page, wizard.get_by_role("progressbar"))
    await page.screenshot(path=screenshot_path(f"{name}-import-progress.png"))
    await no_sideways_scroll(page)


async def test_at_400_px_nothing_scrolls_sideways_or_is_cut_off(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await tenant.add(
        "447700900901", channel="SMS", sender="A-Very-Long-Sender-Name", accounts=[acme]
    )
    await tenant.add("someone.with.a.long.address@example.com", accounts=[globex])
    await tenant.add("447700900903", accounts=[acme])
    await page.set_viewport_size({"width": 400, "height": 800})
    await walk_the_page(page, tenant, "400px")
