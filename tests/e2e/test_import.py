"""The import wizard end to end: choose a file → skip rows → map columns (with undo) →
default country → Analyze (counts, invalid rows with reasons) → accounts → Import, with
progress to the end and a notice; then the entries are listed and the gate blocks them."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.apikit import gate_verdicts
from tests.e2e.conftest import Tenant, csv_bytes, rows, screenshot_path, sign_in
from tests.kit import outbound

FILE = csv_bytes(
    "Opt-outs collected at the fair,,,",
    "Name,Phone,Channel,Sender",
    "Ann,+44 7700 900111,SMS,ACME",
    "Bob,447700900222,,",
    "Cat,cat@example.com,Email,",
    "Dan,12ab,SMS,",
    "Eve,447700900333,WhatsApp,",
    "Fay,(415) 555-0143,Voice,",
)


async def test_import_wizard_end_to_end(page: Page, tenant: Tenant) -> None:
    acme, globex = tenant.accounts
    await sign_in(page, tenant)
    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    await expect(wizard).to_be_visible()

    # 1. Choose the file (nothing chosen: said next to the field).
    await wizard.get_by_role("button", name="Next").click()
    await expect(wizard.locator("#import-file-error")).to_have_text("Choose a file to import.")
    await wizard.get_by_label("File", exact=True).set_input_files(
        {"name": "fair.csv", "mimeType": "text/csv", "buffer": FILE}
    )
    await wizard.get_by_role("button", name="Next").click()
    await expect(wizard.get_by_role("heading", name="Map your data")).to_be_focused()
    await expect(wizard.locator("#import-file-name")).to_have_text("fair.csv: 4 columns.")
    preview = wizard.locator("#import-preview tbody tr")
    await expect(preview).to_have_count(8)
    assert await preview.nth(2).locator("td").all_inner_texts() == [
        "Ann",
        "+44 7700 900111",
        "SMS",
        "ACME",
    ]

    # 2. Skip the title and header rows; map columns, undoing two wrong choices.
    await wizard.get_by_label("Skip rows").fill("2")
    await expect(preview.nth(1)).to_have_class("skipped")
    await expect(preview.nth(2)).not_to_have_class("skipped")
    column = [wizard.get_by_label(f"Column {i}", exact=True) for i in range(1, 5)]
    undo = [
        wizard.get_by_role("button", name=f"Undo the mapping of Column {i}") for i in range(1, 5)
    ]
    await expect(undo[0]).to_be_disabled()
    await column[0].select_option("contact")  # the names column: wrong
    await expect(undo[0]).to_be_enabled()
    await undo[0].click()
    await expect(column[0]).to_have_value("")
    await column[1].select_option("contact")
    await column[2].select_option("channel")
    await column[0].select_option("sender")  # wrong again
    await column[3].select_option("sender")  # one column per field: column 1 lets go
    await expect(column[0]).to_have_value("")
    await expect(wizard.locator("#import-map-note")).to_have_text(
        "Sender was moved from Column 1 to Column 4."
    )
    await undo[3].click()  # column 4: unmapped again
    await expect(column[3]).to_have_value("")
    await undo[0].click()  # column 1: sender again, then unmapped
    await expect(column[0]).to_have_value("sender")
    await undo[0].click()
    await expect(column[0]).to_have_value("")
    await expect(undo[0]).to_be_disabled()
    await column[3].select_option("sender")
    assert [await c.input_value() for c in column] == ["", "contact", "channel", "sender"]

    # 3. Analyze: counts, and the invalid rows with their reasons. Without a default
    # country the national number is refused, and the hint says what to do.
    await wizard.get_by_role("button", name="Analyze").click()
    await expect(wizard.get_by_role("heading", name="Analysis")).to_be_focused()
    counts = wizard.locator("#import-counts")
    await expect(counts.locator("[data-count='Invalid']")).to_have_text("3")
    await expect(wizard.locator("#import-hints")).to_contain_text("default country")
    await wizard.get_by_role("button", name="Back").click()
    await expect(wizard.get_by_role("heading", name="Map your data")).to_be_focused()
    await wizard.get_by_label("Default country (optional)").fill("us")
    await wizard.get_by_role("button", name="Analyze").click()  # the kept upload, again
    await expect(counts.locator("[data-count='Rows']")).to_have_text("6")
    await expect(counts.locator("[data-count='Valid (to import)']")).to_have_text("4")
    await expect(counts.locator("[data-count='Invalid']")).to_have_text("2")
    await expect(counts.locator("[data-count='Skipped rows']")).to_have_text("2")
    invalid = wizard.locator("#import-invalid tbody tr")
    await expect(invalid).to_have_count(2)
    dan = await invalid.nth(0).locator("td").all_inner_texts()
    assert dan[:3] == ["6", "Contact information", "12ab"]
    assert "is not a phone number or e-mail address" in dan[3]
    eve = await invalid.nth(1).locator("td").all_inner_texts()
    assert eve[:2] == ["7", "Channel"]
    assert "“WhatsApp”" in eve[3] or eve[2] == "WhatsApp"
    assert "use a journey action" in eve[3]
    await page.screenshot(path=screenshot_path("import-analyze.png"), full_page=True)

    # 4. Accounts (none chosen: said so), then Import, with progress to the end.
    await wizard.get_by_role("button", name="Import", exact=True).click()
    await expect(wizard.locator("#import-accounts-error")).to_have_text(
        "Choose at least one account."
    )
    await wizard.get_by_label(acme).check()
    await wizard.get_by_role("button", name="Import", exact=True).click()
    bar = wizard.get_by_role("progressbar", name="Progress")
    await expect(bar).to_be_visible()
    await expect(page.locator("#notice")).to_have_text(
        "Import finished: 4 added, 0 already on the list, 2 rows rejected.", timeout=60_000
    )
    assert await bar.evaluate("b => b.value === b.max && b.hasAttribute('value')")
    await expect(wizard.locator("#import-progress-text")).to_contain_text(
        "Finished: 6 rows of 6 read, 4 added"
    )
    await wizard.get_by_role("button", name="Close").click()
    await expect(wizard).to_be_hidden()
    await expect(page.get_by_role("button", name="Import")).to_be_focused()

    # The entries are listed ...
    await expect(rows(page)).to_have_count(4)
    listed = {tuple((await r.locator("td").all_inner_texts())[1:6]) for r in await rows(page).all()}
    assert listed == {
        ("447700900111", "ACME", "Import", "SMS", acme),  # the sender as the file writes it
        ("447700900222", "All senders", "Import", "All channels", acme),
        ("cat@example.com", "All senders", "Import", "Email", acme),
        ("14155550143", "All senders", "Import", "Voice", acme),
    }
    # ... effective in the index the gate reads, in the chosen account only ...
    for contact, channel, sender in [
        ("447700900111", "SMS", "ACME"),
        ("447700900222", "VIBER", "SHOP"),
        ("cat@example.com", "EMAIL", "news@acme.com"),
        ("+1 415 555 0143", "VOICE", "14155550100"),
    ]:
        found = await tenant.check(acme, contact, channel=channel, sender=sender)
        assert found["blocked"] is True, found
        assert found["entry"]["source"] == "IMPORT"
        assert (await tenant.check(globex, contact))["blocked"] is False
    # ... and the gate blocks a message to an imported contact.
    verdicts = await gate_verdicts(
        tenant.settings,
        outbound("m-imported", "447700900222", account=acme, channel="SMS"),
        outbound("m-other-account", "447700900222", account=globex, channel="SMS"),
    )
    assert verdicts == {"m-imported": "blocked", "m-other-account": "allowed"}
