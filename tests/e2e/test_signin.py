"""Sign in with an API key: a wrong key is refused, the right one shows the key's name and
offers its accounts everywhere; the key lives in sessionStorage only (this tab), survives
a reload, and signing out forgets it."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.e2e.conftest import Stack, Tenant


async def test_sign_in_with_an_api_key(page: Page, tenant: Tenant, stack: Stack) -> None:
    response = await page.goto("/")
    assert response is not None and response.ok
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp

    # A wrong key: refused, the message is next to the field, nothing is kept.
    await page.get_by_label("API key").fill("not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#api-key-error")).to_have_text("This API key is not valid.")
    await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#app")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0

    # The right key (Enter submits): name and accounts shown, the list is there.
    await page.get_by_label("API key").fill(tenant.secret)
    await page.get_by_label("API key").press("Enter")
    await expect(page.locator("#who-name")).to_have_text(tenant.name)
    await expect(page.locator("#who-accounts")).to_have_text(", ".join(tenant.accounts))
    await expect(page.get_by_role("heading", name="Contacts")).to_be_visible()
    await expect(page.locator("#list-summary")).to_have_text("No contacts")
    assert await page.evaluate("sessionStorage.getItem('dnc.apiKey')") == tenant.secret
    assert await page.evaluate("localStorage.length") == 0
    assert tenant.secret not in page.url

    # Every place that asks for an account offers exactly the key's accounts.
    check_accounts = await page.locator("#check-account option").all_inner_texts()
    assert check_accounts == ["All my accounts", *tenant.accounts]
    await page.get_by_role("button", name="Add new").click()
    for account in tenant.accounts:
        await expect(page.locator("#add-accounts").get_by_label(account)).to_be_visible()
    await page.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Add filter").click()
    await page.get_by_label("Filter on").select_option("account")
    offered = await page.locator("#filter-value-select option").all_inner_texts()
    assert offered == tenant.accounts

    # A reload keeps the session (same tab); a new tab does not share it.
    await page.reload()
    await expect(page.locator("#who-name")).to_have_text(tenant.name)
    other = await page.context.new_page()
    await other.goto("/")
    await expect(other.get_by_label("API key")).to_be_visible()
    await expect(other.locator("#app")).to_be_hidden()
    await other.close()

    # Signing out forgets the key.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('dnc.apiKey')") is None
