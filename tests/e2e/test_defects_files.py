"""Defects a new user hit with files (issue 17): a file too large or empty is refused in
the browser before any upload, naming the file and the limit; the server's own size
messages name them too; messages say "Skip rows" and "WhatsApp", not API names."""

from __future__ import annotations

from playwright.async_api import Page, Request, expect

from tests.e2e.conftest import Tenant, csv_bytes, sign_in

MB = 1024 * 1024


def uploads(page: Page) -> list[str]:
    """The URLs of the file uploads the page sends (none must go out for a refused file)."""
    sent: list[str] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and any(p in request.url for p in ("/imports", "/audience")):
            sent.append(request.url)

    page.on("request", seen)
    return sent


async def test_too_large_and_empty_files_are_refused_before_uploading(
    page: Page, tenant: Tenant
) -> None:
    await sign_in(page, tenant)
    sent = uploads(page)
    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    file = wizard.get_by_label("File", exact=True)
    error = wizard.locator("#import-file-error")

    await file.set_input_files(
        {"name": "big list.csv", "mimeType": "text/csv", "buffer": b"4" * int(15.5 * MB)}
    )
    await expect(error).to_have_text(
        "“big list.csv” is 15.5 MB, more than the 15 MB limit for a file: compress it into "
        "a .zip (with this one file inside) and upload the .zip."
    )  # said as soon as it is chosen
    await wizard.get_by_role("button", name="Next").click()
    await expect(error).to_contain_text("“big list.csv” is 15.5 MB")
    await expect(wizard.get_by_role("heading", name="Choose the file")).to_be_visible()

    await file.set_input_files({"name": "empty.csv", "mimeType": "text/csv", "buffer": b""})
    await wizard.get_by_role("button", name="Next").click()
    await expect(error).to_have_text("“empty.csv” is empty: choose a file with the contacts in it.")
    await expect(wizard.get_by_role("heading", name="Map your data")).to_be_hidden()
    assert sent == []

    # The dry run too.
    await wizard.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Dry run").click()
    dialog = page.locator("#dryrun-dialog")
    await dialog.get_by_label("Audience file").set_input_files(
        {"name": "audience.zip", "mimeType": "application/zip", "buffer": b"P" * (16 * MB)}
    )
    await dialog.get_by_role("button", name="Run").click()
    await expect(dialog.locator("#dryrun-file-error")).to_have_text(
        "“audience.zip” is 16 MB, more than the 15 MB limit for a file: split the list "
        "into several files."
    )
    assert sent == []


async def test_the_servers_size_messages_name_the_file_and_the_limit(tenant: Tenant) -> None:
    # 15.5 MB: read, then refused by name.
    r = await tenant.client.post(
        "/v1/imports/preview", files={"file": ("big list.csv", b"4" * int(15.5 * MB))}
    )
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["value"] == "big list.csv"
    assert body["reason"].startswith("is 15.5 MB, more than the 15 MB limit")
    # Over the body limit (file + 1 MB of envelope): the limit named is the file's.
    r = await tenant.client.post(
        "/v1/imports/preview", files={"file": ("huge.csv", b"4" * (17 * MB))}
    )
    assert r.status_code == 413, r.text
    assert r.json()["value"] == "huge.csv"
    assert "15 MB limit for a file" in r.json()["error"]
    assert "16 MB" not in r.json()["error"]
    # Empty: said so, not "0 columns".
    r = await tenant.client.post("/v1/imports/preview", files={"file": ("empty.csv", b"")})
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "is empty: there is nothing to import"


async def test_messages_use_the_pages_words(page: Page, tenant: Tenant) -> None:
    acme, _globex = tenant.accounts
    await sign_in(page, tenant)
    sent = uploads(page)

    # Dry run: a column by its header text needs the header row skipped; said at once.
    await page.get_by_role("button", name="Dry run").click()
    dialog = page.locator("#dryrun-dialog")
    await expect(dialog.locator("#dryrun-column-help")).to_contain_text(
        "then Skip rows must include the header row"
    )
    audience = csv_bytes("name,phone", "Ann,447700900701")
    await dialog.get_by_label("Audience file").set_input_files(
        {"name": "audience.csv", "mimeType": "text/csv", "buffer": audience}
    )
    await dialog.get_by_label("Contact column").fill("phone")
    await dialog.get_by_label("Account").select_option(acme)
    await dialog.get_by_role("button", name="Run").click()
    await expect(dialog.locator("#dryrun-column-error")).to_contain_text(
        "set Skip rows to include the header row"
    )
    assert sent == []
    await dialog.get_by_role("button", name="Close").click()

    # Import: channel rules name channels as the page does.
    data = csv_bytes("cat@example.com,SMS", "447700900702,WhatsApp", "447700900703,fax")
    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    await wizard.get_by_label("File", exact=True).set_input_files(
        {"name": "rules.csv", "mimeType": "text/csv", "buffer": data}
    )
    await wizard.get_by_role("button", name="Next").click()
    await wizard.get_by_label("Column 1", exact=True).select_option("contact")
    await wizard.get_by_label("Column 2", exact=True).select_option("channel")
    await wizard.get_by_role("button", name="Analyze").click()
    invalid = wizard.locator("#import-invalid tbody")
    await expect(invalid.locator("tr")).to_have_count(3)
    text = await invalid.inner_text()
    assert "choose Email or leave the channel blank" in text
    assert "valid: SMS, MMS, Voice, Viber, WhatsApp, RCS, Email" in text
    for code in ("EMAIL", "WHATSAPP", "VOICE", "skip_rows", "default_country"):
        assert code not in text, (code, text)
    assert (await invalid.locator("tr td:nth-child(2)").all_inner_texts()) == ["Channel"] * 3
