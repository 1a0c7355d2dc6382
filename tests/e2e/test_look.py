"""The page's look (issue 17, "Look"): source and channel as badges in the list, the
check and the overview; icons from the page's own inline SVG sprite beside the buttons'
words (no icon font, nothing from another origin); the favicon; and the theme the system
asks for. The axe audit (test_accessibility.py) checks the contrast of both themes."""

from __future__ import annotations

from playwright.async_api import Page, Request, expect

from tests.e2e.conftest import Stack, Tenant, rows, sign_in

PHONE = "447700901301"
EMAIL = "ann@example.com"


async def test_badges_icons_and_favicon(page: Page, tenant: Tenant, stack: Stack) -> None:
    acme = tenant.accounts[0]
    await tenant.add(PHONE, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.add(EMAIL, accounts=[acme])
    await tenant.stop_message("447700901302", acme)
    requested: list[str] = []

    def seen(request: Request) -> None:
        requested.append(request.url)

    page.on("request", seen)
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(3)

    # Source and channel are badges with the words, coloured by the code.
    row = rows(page).filter(has_text=PHONE)
    await expect(row.locator("td[data-label='Source'] .badge.source-MANUAL")).to_have_text(
        "Added manually"
    )
    await expect(row.locator("td[data-label='Channel'] .badge.channel")).to_have_text("SMS")
    every = rows(page).filter(has_text=EMAIL).locator("td[data-label='Channel'] .badge")
    await expect(every).to_have_text("All channels")
    await expect(every).to_have_class("badge channel all")
    stop = rows(page).filter(has_text="447700901302").locator(".badge.source-END_USER_MESSAGE")
    await expect(stop).to_have_text("Message from end user")
    colours = await page.evaluate(
        """() => [...document.querySelectorAll('#rows .badge[class*="source-"]')]
            .map((b) => getComputedStyle(b).backgroundColor)"""
    )
    assert len(set(colours)) == 2, colours  # two sources, two colours
    overview = page.locator("#overview-sources dt .badge.source-MANUAL")
    await expect(overview).to_have_text("Added manually")  # the overview uses the same badges

    # Icons: every one names a symbol of the page's sprite, and is hidden from screen
    # readers (the button's words name it); the row's delete button is named in words.
    missing = await page.evaluate(
        """() => [...document.querySelectorAll('svg.i use')]
            .map((u) => u.getAttribute('href'))
            .filter((href) => !href.startsWith('#') || !document.querySelector(href))"""
    )
    assert missing == []
    add = page.get_by_role("button", name="Add new", exact=True)
    await expect(add.locator("svg.i")).to_have_attribute("aria-hidden", "true")
    await expect(row.get_by_role("button", name=f"Delete {PHONE}", exact=False)).to_be_visible()
    await expect(row.locator("button.icon svg.i use")).to_have_attribute("href", "#i-trash")

    # The check shows the same badges.
    form = page.locator("#check-form")
    await form.get_by_label("Contact information").fill(PHONE)
    await form.get_by_role("button", name="Check").click()
    entries = page.locator("#check-result table.check-entries")
    await expect(entries.locator(".badge.source-MANUAL")).to_have_text("Added manually")
    await expect(entries.locator(".badge.channel")).to_have_text("SMS")

    # Only this origin was asked for anything; the favicon is served.
    assert requested
    assert all(url.startswith(stack.base_url) for url in requested), requested
    icon_href = await page.locator("link[rel='icon']").get_attribute("href")
    for path in (icon_href, "/favicon.ico"):
        icon = await page.request.get(f"{stack.base_url}{path}")
        assert icon.status == 200, path
        assert icon.headers["content-type"] == "image/svg+xml"
        assert (await icon.body()).startswith(b"<svg")


async def test_the_theme_follows_the_system_setting(page: Page, tenant: Tenant) -> None:
    await tenant.add(PHONE, channel="SMS")
    await page.emulate_media(color_scheme="dark")
    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(1)

    async def colours() -> list[str]:
        """Background / text colour of the page, the list's heading and a badge."""
        found: list[str] = await page.evaluate(
            """() => [document.body, document.querySelector('#list-h'),
                      document.querySelector('#rows .badge')]
                .map((e) => getComputedStyle(e))
                .map((s) => `${s.backgroundColor} / ${s.color}`)"""
        )
        return found

    dark = await colours()
    assert dark[0] == "rgb(20, 23, 29) / rgb(228, 231, 236)"
    # The system switches to light while the page is open: the page follows at once.
    await page.emulate_media(color_scheme="light")
    light = await colours()
    assert light[0] == "rgb(255, 255, 255) / rgb(29, 35, 48)"
    assert all(d != li for d, li in zip(dark, light, strict=True)), (dark, light)
