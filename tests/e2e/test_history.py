"""The page's additions: the history below a checked contact's entries, "Erase this
person" (confirmed, explaining that the suppression stays), the Expires column and field,
and export with the history."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in

PHONE = "447700900701"
LATER = "447700900702"


async def test_history_and_erasure_in_the_check_panel(page: Page, tenant: Tenant) -> None:
    acme, _globex = tenant.accounts
    await tenant.add(PHONE, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.stop_message(PHONE, acme, to="PROMO")
    deadline = time.monotonic() + 20
    while len((await tenant.check(acme, PHONE))["entries"]) < 2:
        assert time.monotonic() < deadline, "the STOP never reached the index"
        await asyncio.sleep(0.1)

    await sign_in(page, tenant)
    form = page.locator("#check-form")
    result = page.locator("#check-result")
    await form.get_by_label("Contact information").fill(PHONE)
    await form.get_by_role("button", name="Check").click()
    history = result.locator("#check-history")
    await expect(history.locator("caption")).to_have_text("History, newest first")
    await expect(history.locator("tbody tr")).to_have_count(2)
    lines = [
        await r.locator("td").all_inner_texts() for r in await history.locator("tbody tr").all()
    ]
    assert [line[1:4] for line in lines] == [
        ["Added", acme, "SMS · PROMO · Message from end user"],
        ["Added", acme, "SMS · ACME · Added manually"],
    ]
    assert lines[0][4].startswith("Message from end user (message mo-")
    assert lines[0][4].endswith(": “STOP”)")
    assert lines[1][4] == f"By hand or API (key {tenant.name})"
    assert all(line[0].endswith(" UTC") for line in lines)

    # Erase: a confirmation that says what goes and what stays; Cancel changes nothing.
    erase = result.get_by_role("button", name="Erase this person")
    await erase.click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog.locator("#confirm-h")).to_have_text("Erase this person?")
    await expect(dialog.locator("#confirm-text")).to_contain_text("The suppression stays")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(erase).to_be_focused()
    await expect(history.locator("tbody tr")).to_have_count(2)

    await erase.click()
    await dialog.get_by_role("button", name="Erase").click()
    await expect(page.locator("#notice")).to_contain_text(
        "Erased: 2 history records deleted; 2 entries keep blocking as h1:"
    )
    await expect(history.locator("tbody tr")).to_have_count(1)
    erased = await history.locator("tbody tr td").all_inner_texts()
    assert erased[1:4] == ["Erased", acme, "Data and history erased; the suppression stays"]
    assert erased[4] == f"Erasure request (key {tenant.name})"
    await expect(result.locator(".verdict")).to_have_text(
        f"{PHONE} is on the Do Not Contact list: messages are blocked in {acme}."
    )
    assert (await tenant.check(acme, PHONE, channel="SMS", sender="PROMO"))["blocked"] is True

    # The list shows the kept entries masked, and they can still be deleted.
    await expect(rows(page)).to_have_count(2)
    shown = await rows(page).locator("td.contact").all_inner_texts()
    assert len(set(shown)) == 1
    assert shown[0].startswith("h1:")
    assert shown[0].endswith("…")
    assert PHONE not in await page.locator("#rows").inner_text()
    await rows(page).first.get_by_role("button", name=f"Delete {shown[0]}", exact=False).click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    await expect(page.locator("#notice")).to_have_text("Deleted 1 contact from the list.")
    await expect(rows(page)).to_have_count(1)


async def test_expiry_and_export_with_history(page: Page, tenant: Tenant) -> None:
    acme, _globex = tenant.accounts
    await tenant.add(PHONE, accounts=[acme])
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(1)
    assert (await rows(page).first.locator("td").all_inner_texts())[7] == "Never"

    await page.get_by_role("button", name="Add new").click()
    add = page.locator("#add-rows")
    await add.get_by_role("textbox", name="Contact information").fill(LATER)
    await add.get_by_label("Expires (optional)").fill("2099-06-30T12:00")
    await add.get_by_label(acme).check()
    await add.get_by_role("button", name="Save").click()
    await expect(page.locator("#notice")).to_have_text(f"{LATER}: added to {acme}.")
    first = await rows(page).first.locator("td").all_inner_texts()
    assert first[1] == LATER
    assert first[7].startswith("2099-06-30 ")
    assert first[7].endswith(" UTC")
    entry = (await tenant.entries(contact=LATER))["entries"][0]
    assert entry["expires_at"].startswith("2099-06-30T")

    # An expiry in the past is refused next to the field.
    await page.get_by_role("button", name="Add new").click()
    await add.get_by_role("textbox", name="Contact information").fill("447700900703")
    await add.get_by_label("Expires (optional)").fill("2001-01-01T00:00")
    await add.get_by_label(acme).check()
    await add.get_by_role("button", name="Save").click()
    await expect(page.locator("#add-expires-error")).to_contain_text("is not in the future")
    await add.get_by_role("button", name="Cancel").click()

    # Export with the history: CSV comes as a .zip of entries.csv and history.csv.
    await page.get_by_label("With history").check()
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Export all matching").click()
    done = await info.value
    assert done.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO((await done.path()).read_bytes())) as z:
        assert z.namelist() == ["entries.csv", "history.csv"]
        history = z.read("history.csv").decode("utf-8-sig").splitlines()
    assert history[0].startswith("At,Action,Account,Contact information")
    assert sorted(line.split(",")[3] for line in history[1:]) == [PHONE, LATER]
    await expect(page.locator("#notice")).to_have_text(
        "Exported 2 contacts with their history as a .zip of two CSV files "
        "(entries.csv, history.csv)."
    )
