"""Defects a new user hit in the filters (issue 17): a value the API would refuse never
becomes a chip, and its message names the value."""

from __future__ import annotations

from urllib.parse import urlparse

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in
from tests.e2e.test_filters import add_filter, expect_shown

A, B = "447700900501", "447700900502"


async def test_an_invalid_contact_filter_is_refused_naming_the_value(
    page: Page, tenant: Tenant
) -> None:
    await tenant.add(A)
    await tenant.add(B)
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(2)

    await add_filter(page, "contact", "bob")
    error = page.locator("#filter-error")
    await expect(error).to_contain_text("“bob”")
    await expect(page.locator("#filter-value")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#filter-list li")).to_have_count(0)  # no chip
    assert urlparse(page.url).query == ""
    await expect_shown(page, {A, B})  # the list is untouched, no red alert
    await expect(page.locator("#alert")).to_be_empty()

    # The next filter works and the error is gone, not moved under the next field.
    await add_filter(page, "contact", A)
    await expect_shown(page, {A})
    await expect(error).to_be_empty()
    await add_filter(page, "sender", "ACME")
    await expect(error).to_be_empty()
    await expect(page.locator("#filter-list li")).to_have_count(2)
