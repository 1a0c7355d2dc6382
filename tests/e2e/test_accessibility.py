"""Accessibility (issue 17): an axe-core audit of every state of the page — signed out,
the list, filters open, the add row, each import step, a check result, the dialogs — with
no serious or critical violation, at desktop (1440 px) and phone (390 px) widths, in the
light theme and in the dark one (the system's setting, which the page follows)."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, csv_bytes, rows, sign_in

BAD = ("serious", "critical")


async def audit(page: Page, state: str, found: dict[str, list[str]]) -> None:
    """axe-core on the page as it is now; serious and critical violations kept by state.
    Audited once the list has loaded (while it loads it is dimmed on purpose)."""
    await expect(page.locator("#entries")).not_to_have_attribute("aria-busy", "true")
    results = await Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    for v in violations:
        if v.get("impact") in BAD:
            targets = [str(n["target"]) for n in v["nodes"][:5]]
            found.setdefault(state, []).append(f"{v['id']} ({v['impact']}): {targets}")


@pytest.mark.parametrize(
    ("width", "scheme"), [(1440, "light"), (390, "light"), (1440, "dark"), (390, "dark")]
)
async def test_every_state_of_the_page_passes_axe(
    page: Page, tenant: Tenant, width: int, scheme: Literal["light", "dark"]
) -> None:
    acme, globex = tenant.accounts
    await tenant.add("447700900971", channel="SMS", sender="ACME", accounts=[acme])
    await tenant.add("jane@example.com", accounts=[globex])
    await page.set_viewport_size({"width": width, "height": 900})
    await page.emulate_media(color_scheme=scheme)
    found: dict[str, list[str]] = {}

    await page.goto("/")
    await expect(page.get_by_label("API key")).to_be_visible()
    # The theme is the system's: a dark page on a dark system, a light one otherwise.
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(20, 23, 29)" if scheme == "dark" else "rgb(255, 255, 255)")
    await audit(page, "signed out", found)
    await page.get_by_role("button", name="Sign in").click()  # no key: a field error
    await audit(page, "sign-in error", found)

    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(2)
    await audit(page, "list", found)
    await rows(page).first.get_by_role("checkbox").check()
    await audit(page, "a row selected", found)

    await page.get_by_role("button", name="Add filter").click()
    await audit(page, "filters open", found)
    await page.locator("#filter-form").get_by_label("Value").fill("4477*")
    await page.get_by_role("button", name="Add value").click()
    await expect(page.locator("#filter-list li")).to_have_count(1)
    await audit(page, "a filter chip", found)
    await page.get_by_role("button", name="Remove the Contact information filter").click()

    await page.get_by_role("button", name="Add new").click()
    await audit(page, "add row", found)
    await page.locator(".add-row").get_by_role("button", name="Save").click()  # errors shown
    await audit(page, "add row with an error", found)
    await page.locator(".add-row").get_by_role("button", name="Cancel").click()

    form = page.locator("#check-form")
    await form.get_by_label("Contact information").fill("447700900971")
    await form.get_by_role("button", name="Check").click()
    await expect(page.locator("#check-result .verdict")).to_be_visible()
    await audit(page, "check result", found)

    await rows(page).first.get_by_role("button", name="Delete").click()
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await audit(page, "delete dialog", found)
    await page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()

    await page.get_by_role("button", name="Import").click()
    wizard = page.get_by_role("dialog", name="Import contacts")
    await audit(page, "import: file", found)
    data = csv_bytes("Name,Phone", "Ann,447700900972", "Bob,12ab")
    await wizard.get_by_label("File", exact=True).set_input_files(
        {"name": "a.csv", "mimeType": "text/csv", "buffer": data}
    )
    await wizard.get_by_role("button", name="Next").click()
    await wizard.get_by_label("Column 2", exact=True).select_option("contact")
    await wizard.get_by_label("Skip rows").fill("1")
    await audit(page, "import: map", found)
    await wizard.get_by_role("button", name="Analyze").click()
    await expect(wizard.get_by_role("heading", name="Analysis")).to_be_visible()
    await audit(page, "import: analysis", found)
    await wizard.get_by_label(acme).check()
    await wizard.get_by_role("button", name="Import", exact=True).click()
    await expect(page.locator("#notice")).to_contain_text("Import finished")
    await audit(page, "import: done", found)
    await wizard.get_by_role("button", name="Close").click()

    await page.get_by_role("button", name="Dry run").click()
    dialog = page.locator("#dryrun-dialog")
    await dialog.get_by_label("Audience file").set_input_files(
        {"name": "a.csv", "mimeType": "text/csv", "buffer": data}
    )
    await dialog.get_by_label("Contact column").fill("2")
    await dialog.get_by_label("Skip rows").fill("1")
    await dialog.get_by_label("Account").select_option(acme)
    await dialog.get_by_role("button", name="Run").click()
    await expect(dialog.locator("#dryrun-counts")).to_be_visible()
    await audit(page, "dry run result", found)

    assert found == {}, "\n".join(f"{s}: {v}" for s, vs in found.items() for v in vs)
