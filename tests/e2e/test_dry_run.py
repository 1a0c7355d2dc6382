"""The page's audience dry run: a file read like an import (skip rows, the contact column
by number or header), the counts, the suppressed contacts with the entry that blocks each,
and errors next to the field they are about."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, csv_bytes, sign_in

LISTED, PROMO_ONLY, FREE = "447700900801", "447700900802", "447700900899"


async def test_dry_run_of_an_audience_file(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await tenant.add(LISTED, accounts=[acme])
    await tenant.add(PROMO_ONLY, channel="SMS", sender="PROMO", accounts=[acme])
    await sign_in(page, tenant)

    await page.get_by_role("button", name="Dry run").click()
    dialog = page.locator("#dryrun-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Audience file")).to_be_focused()
    audience = csv_bytes(
        "name,phone", f"Ann,{LISTED}", f"Bob,{PROMO_ONLY}", "Cat,not a number", f"Dan,{FREE}",
        f"Eve,+{LISTED}",
    )  # fmt: skip
    await dialog.get_by_label("Audience file").set_input_files(
        {"name": "audience.csv", "mimeType": "text/csv", "buffer": audience}
    )
    await dialog.get_by_label("Contact column").fill("phone")
    await dialog.get_by_label("Skip rows").fill("1")
    await dialog.get_by_label("Account").select_option(acme)
    await dialog.get_by_label("Channel").select_option("SMS")
    await dialog.get_by_label("Sender (optional)").fill("ACME")
    await dialog.get_by_role("button", name="Run").click()

    counts = dialog.locator("#dryrun-counts")
    await expect(counts.locator('[data-count="Suppressed"]')).to_have_text("1")
    got = {
        name: await counts.locator(f'[data-count="{name}"]').inner_text()
        for name in ("Rows", "Valid contacts", "Duplicates", "Invalid", "Deliverable")
    }
    assert got == {
        "Rows": "5",
        "Valid contacts": "3",
        "Duplicates": "1",
        "Invalid": "1",
        "Deliverable": "2",
    }
    suppressed = dialog.locator("#dryrun-suppressed tbody tr")
    await expect(suppressed).to_have_count(1)
    cells = await suppressed.first.locator("td").all_inner_texts()
    assert cells[:5] == ["2", LISTED, "All channels", "All senders", "Added manually"]
    await expect(dialog.locator("#dryrun-invalid")).to_contain_text("Row 4: “not a number”")

    # Any sender: PROMO's SMS entry counts too; the column by number works as well.
    await dialog.get_by_label("Sender (optional)").fill("")
    await dialog.get_by_label("Contact column").fill("2")
    await dialog.get_by_role("button", name="Run").click()
    await expect(counts.locator('[data-count="Suppressed"]')).to_have_text("2")
    await expect(suppressed).to_have_count(2)

    # Nothing was written; another account suppresses nothing.
    assert (await tenant.entries())["total"] == 2
    await dialog.get_by_label("Account").select_option(globex)
    await dialog.get_by_role("button", name="Run").click()
    await expect(counts.locator('[data-count="Suppressed"]')).to_have_text("0")

    # A column the file does not have is said next to the column field.
    await dialog.get_by_label("Contact column").fill("mobile")
    await dialog.get_by_role("button", name="Run").click()
    await expect(dialog.locator("#dryrun-column-error")).to_contain_text(
        "is not a column of the header row"
    )
    await dialog.get_by_role("button", name="Close").click()
    await expect(page.get_by_role("button", name="Dry run")).to_be_focused()
