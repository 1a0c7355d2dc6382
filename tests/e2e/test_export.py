"""Export: the selected rows, or everything the current filters match, as CSV or XLSX;
the downloaded files hold exactly those entries with the list's columns."""

from __future__ import annotations

import csv
import io

import openpyxl
from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in

HEADER = ["Contact information", "Sender", "Source", "Channel", "Account", "Added", "Expires"]
A, B, C = "447700900401", "447700900402", "jane@example.com"


async def download(page: Page, button: str, format: str) -> tuple[str, list[list[str]]]:
    await page.get_by_label("Export as").select_option(format)
    async with page.expect_download() as info:
        await page.get_by_role("button", name=button).click()
    done = await info.value
    path = await done.path()
    data = path.read_bytes()
    if format == "csv":
        assert data.startswith(b"\xef\xbb\xbf")  # a BOM, for Excel
        table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
        table = [
            ["" if c is None else str(c) for c in r] for r in sheet.iter_rows(values_only=True)
        ]
    assert table[0] == HEADER
    return done.suggested_filename, table[1:]


def keys(table: list[list[str]]) -> list[tuple[str, ...]]:
    return sorted((r[0], r[1], r[2], r[3], r[4]) for r in table)


async def test_export_selected_and_filtered_as_csv_and_xlsx(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await tenant.add(A, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.add(B, accounts=[acme])
    await tenant.add(C, channel="EMAIL", accounts=[globex])
    a = (A, "ACME", "Added manually", "SMS", acme)
    b = (B, "All senders", "Added manually", "All channels", acme)
    c = (C, "All senders", "Added manually", "Email", globex)

    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(3)
    await expect(page.get_by_role("button", name="Export selected")).to_be_disabled()

    # The selected rows (A and C), in both formats.
    await rows(page).filter(has_text=A).get_by_role("checkbox").check()
    await rows(page).filter(has_text=C).get_by_role("checkbox").check()
    name, table = await download(page, "Export selected (2)", "csv")
    assert name.startswith("dnc-export-") and name.endswith(".csv")
    assert keys(table) == sorted([a, c])
    await expect(page.locator("#notice")).to_have_text("Exported 2 selected contacts as CSV.")
    name, table = await download(page, "Export selected (2)", "xlsx")
    assert name.endswith(".xlsx")
    assert keys(table) == sorted([a, c])
    assert all(r[5].endswith("Z") for r in table)

    # Everything the filters match (account = acme: A and B), in both formats.
    await page.get_by_role("button", name="Add filter").click()
    await page.get_by_label("Filter on").select_option("account")
    await page.locator("#filter-form").get_by_label("Value").select_option(acme)
    await page.get_by_role("button", name="Add value").click()
    await expect(rows(page)).to_have_count(2)
    name, table = await download(page, "Export all matching", "csv")
    assert name.endswith(".csv")
    assert keys(table) == sorted([a, b])
    assert [r[0] for r in table] == [B, A]  # newest first, as listed
    await expect(page.locator("#notice")).to_have_text("Exported 2 contacts as CSV.")
    name, table = await download(page, "Export all matching", "xlsx")
    assert name.endswith(".xlsx")
    assert keys(table) == sorted([a, b])


async def test_exports_follow_the_sort_order_of_the_page(page: Page, tenant: Tenant) -> None:
    acme, _ = tenant.accounts
    # Added in this order, so newest first is the reverse of the contacts' A–Z order.
    for contact, sender in ((A, "Mike"), (B, "alpha"), (C, "Zeta")):
        await tenant.add(contact, sender=sender, accounts=[acme])
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(3)
    _, table = await download(page, "Export all matching", "csv")
    assert [r[0] for r in table] == [C, B, A]  # newest first, as listed

    await page.get_by_label("Sort by").select_option("-sender")
    await expect(rows(page).first.locator("td.contact")).to_have_text(C)
    _, table = await download(page, "Export all matching", "csv")
    assert [r[1] for r in table] == ["Zeta", "Mike", "alpha"]  # without case, as the page

    await page.get_by_label("Sort by").select_option("contact")
    await expect(rows(page).first.locator("td.contact")).to_have_text(A)
    await page.get_by_role("checkbox", name="Select every contact on this page").check()
    _, table = await download(page, "Export selected (3)", "xlsx")
    assert [r[0] for r in table] == [A, B, C]
