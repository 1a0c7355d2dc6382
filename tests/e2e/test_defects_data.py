"""Defects a new user hit in what the list shows (issue 17): senders as entered, exports
with the page's words and a said-before .zip, and the list updated when an import ends."""

from __future__ import annotations

import csv
import io
import zipfile

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, csv_bytes, rows, sign_in
from tests.e2e.test_export import download

A, B, C, E = "447700900601", "447700900602", "jane@example.com", "447700900605"


async def test_senders_are_shown_as_entered(page: Page, tenant: Tenant) -> None:
    acme, _globex = tenant.accounts
    await tenant.add(A, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.stop_message(E, acme, to="InfoSender")  # an end user's STOP to InfoSender
    await tenant.wait_total(2)
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(2)
    await expect(rows(page).filter(has_text=A).locator("td").nth(2)).to_have_text("ACME")
    await expect(rows(page).filter(has_text=E).locator("td").nth(2)).to_have_text("InfoSender")

    # The check result too (the index keeps "acme"; the page says how it was entered).
    await page.get_by_label("Contact information", exact=True).first.fill(A)
    await page.get_by_role("button", name="Check", exact=True).click()
    entries = page.locator("#check-result table.check-entries tbody tr")
    await expect(entries).to_have_count(1)
    await expect(entries.locator("td").nth(1)).to_have_text("ACME")
    await expect(page.locator("#check-history")).to_contain_text("SMS · ACME")

    # And the export.
    _name, table = await download(page, "Export all matching", "csv")
    assert sorted(r[1] for r in table) == ["ACME", "InfoSender"]


async def test_exports_use_the_pages_words_and_say_when_they_are_a_zip(
    page: Page, tenant: Tenant
) -> None:
    acme, globex = tenant.accounts
    await tenant.add(B, accounts=[acme])  # every channel, every sender
    await tenant.add(C, channel="EMAIL", accounts=[globex])
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(2)

    _name, table = await download(page, "Export all matching", "csv")
    by_contact = {r[0]: [*r[1:5], r[6]] for r in table}
    assert by_contact == {
        B: ["All senders", "Added manually", "All channels", acme, "Never"],
        C: ["All senders", "Added manually", "Email", globex, "Never"],
    }

    # CSV with history is a .zip: said before the download and after it.
    note = page.locator("#export-note")
    await expect(note).to_be_hidden()
    await page.get_by_label("With history").check()
    await expect(note).to_have_text(
        "CSV with history downloads a .zip holding entries.csv and history.csv."
    )
    await page.get_by_label("Export as").select_option("xlsx")
    await expect(note).to_be_hidden()
    await page.get_by_label("Export as").select_option("csv")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export all matching").click()
    done = await info.value
    assert done.suggested_filename.endswith(".zip")
    await expect(page.locator("#notice")).to_contain_text("as a .zip of two CSV files")
    with zipfile.ZipFile(await done.path()) as z:
        history = z.read("history.csv").decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(history, newline="")))
    assert {tuple(r[1:2] + r[4:7]) for r in lines[1:]} == {
        ("Added", "All channels", "All senders", "Added manually"),
        ("Added", "Email", "All senders", "Added manually"),
    }


async def test_the_list_shows_an_import_when_its_notice_does(page: Page, tenant: Tenant) -> None:
    acme, _globex = tenant.accounts
    await tenant.add(A, accounts=[acme])
    await sign_in(page, tenant)
    await expect(page.locator("#list-summary")).to_have_text("Showing 1–1 of 1 contact")

    n = 3000
    data = csv_bytes(*(f"4477009{i:05d}" for i in range(10_000, 10_000 + n)))
    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    await wizard.get_by_label("File", exact=True).set_input_files(
        {"name": "many.csv", "mimeType": "text/csv", "buffer": data}
    )
    await wizard.get_by_role("button", name="Next").click()
    await wizard.get_by_label("Column 1", exact=True).select_option("contact")
    await wizard.get_by_role("button", name="Analyze").click()
    await wizard.get_by_label(acme).check()
    await wizard.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator("#notice")).to_contain_text(
        f"Import finished: {n} added, 0 already on the list", timeout=60_000
    )
    # At once, not "eventually": the notice and the new total come together.
    summary = await page.locator("#list-summary").inner_text()
    assert summary == f"Showing 1–25 of {n + 1} contacts", summary
