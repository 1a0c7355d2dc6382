"""Delete: the ✕ on a row, or several selected rows → Delete; each asks first (a modal
dialog that can be cancelled), and what is deleted is gone from the list and the gate."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in

A, B, C, D = "447700900301", "447700900302", "447700900303", "jane@example.com"


async def test_delete_one_with_the_cross_and_several_selected(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await tenant.add(A, channel="SMS", accounts=[acme])
    await tenant.add(B, accounts=[acme, globex])
    await tenant.add(C, sender="ACME", accounts=[acme])
    await tenant.add(D, channel="EMAIL", accounts=[globex])
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(5)
    dialog = page.get_by_role("dialog")

    # ✕ then Cancel: nothing happens, focus goes back to the ✕.
    cross = page.get_by_role("button", name=f"Delete {A} · SMS · All senders · {acme}")
    await cross.click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Delete this contact from the list?")
    await expect(dialog).to_contain_text(f"{A} · SMS · All senders · {acme}")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(cross).to_be_focused()
    assert A in await tenant.contacts()

    # ✕ then Delete.
    await cross.click()
    await dialog.get_by_role("button", name="Delete").click()
    await expect(page.locator("#notice")).to_have_text("Deleted 1 contact from the list.")
    await expect(rows(page)).to_have_count(4)
    await expect(page.locator("#rows")).not_to_contain_text(A)
    assert await tenant.contacts() == {B, C, D}
    assert (await tenant.check(acme, A))["blocked"] is False

    # Select several → Delete selected, confirmed.
    for name in (
        f"{B} · All channels · All senders · {globex}",
        f"{D} · Email · All senders · {globex}",
        f"{C} · All channels · ACME · {acme}",
    ):
        await page.get_by_role("checkbox", name=f"Select {name}").check()
    delete = page.get_by_role("button", name="Delete selected (3)")
    await delete.click()
    await expect(dialog).to_contain_text("Delete 3 contacts from the list?")
    await expect(dialog.locator("li")).to_have_count(3)
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(delete).to_be_focused()
    assert (await tenant.entries())["total"] == 4

    await delete.click()
    await dialog.get_by_role("button", name="Delete 3").click()
    await expect(page.locator("#notice")).to_have_text("Deleted 3 contacts from the list.")
    await expect(rows(page)).to_have_count(1)
    remaining = await rows(page).first.locator("td").all_inner_texts()
    assert remaining[1:6] == [B, "All senders", "Added manually", "All channels", acme]
    await expect(page.get_by_role("button", name="Delete selected")).to_be_disabled()
    entries = (await tenant.entries())["entries"]
    assert [(e["contact"], e["account"]) for e in entries] == [(B, acme)]
    assert (await tenant.check(globex, D))["blocked"] is False

    # "Select every contact on this page" selects the rest.
    await page.get_by_label("Select every contact on this page").check()
    await page.get_by_role("button", name="Delete selected (1)").click()
    await dialog.get_by_role("button", name="Delete", exact=True).click()
    await expect(page.locator("#list-summary")).to_have_text("No contacts")
    assert (await tenant.entries())["total"] == 0
