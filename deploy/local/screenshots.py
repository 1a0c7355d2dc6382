"""README screenshots of the page, from a seeded demo list: `make screenshots`.

Against a running API (after `make run`: http://127.0.0.1:8080 with the development key),
it adds a small demo list — by hand and by an import, so the list shows several sources,
channels and senders — then signs in with Debian's Chromium and saves, in docs/screenshots:
the list at desktop width, on a phone and in the dark theme, and the import wizard's
analysis.
Seeding twice is harmless: entries already listed stay as they are.

    python deploy/local/screenshots.py [--url URL] [--key KEY] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright, expect

CHROMIUM = os.environ.get("DNC_CHROMIUM", "/usr/bin/chromium")
DEV_KEY = "dnc_dev_local_only_key"
ROOT = Path(__file__).resolve().parents[2]

# (contact, channel, sender): fictional numbers (Ofcom's drama range) and example.com.
BY_HAND = [
    ("447700900101", "SMS", "ACME"),
    ("447700900102", None, None),
    ("jane.doe@example.com", "EMAIL", "news@acme.example"),
    ("447700900104", "VIBER", "AcmeShop"),
    ("447700900105", "SMS", "PROMO"),
    ("447700900106", "VOICE", None),
    ("sam@example.com", None, None),
    ("447700900108", "RCS", "ACME"),
]
IMPORTED = [
    "Phone,Channel,Sender",
    "+44 7700 900201,SMS,ACME",
    "+44 7700 900202,,",
    "+44 7700 900203,Viber,AcmeShop",
    "+44 7700 900204,SMS,PROMO",
    "+44 7700 900205,,",
    "ann@example.com,Email,",
]


async def seed(client: httpx.AsyncClient, accounts: list[str]) -> None:
    for i, (contact, channel, sender) in enumerate(BY_HAND):
        body = {
            "contact": contact,
            "channel": channel,
            "sender": sender,
            "accounts": [accounts[i % len(accounts)]],
        }
        r = await client.post("/v1/entries", json=body)
        r.raise_for_status()
    data = ("\r\n".join(IMPORTED) + "\r\n").encode()
    options = '{"skip_rows": 1, "mapping": {"0": "contact", "1": "channel", "2": "sender"}}'
    r = await client.post(
        "/v1/imports/analyze",
        files={"file": ("fair.csv", data)},
        data={"options": options},
    )
    r.raise_for_status()
    body: dict[str, Any] = {
        "upload_id": r.json()["upload_id"],
        "accounts": accounts[:1],
        "options": {"skip_rows": 1, "mapping": {"0": "contact", "1": "channel", "2": "sender"}},
    }
    r = await client.post("/v1/imports", json=body)
    r.raise_for_status()
    import_id = r.json()["import_id"]
    for _ in range(300):
        state = (await client.get(f"/v1/imports/{import_id}")).json()
        if state["state"] != "running" and state.get("listed", True):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the demo import {import_id} did not finish")


async def sign_in(page: Page, key: str) -> None:
    await page.goto("/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#list-summary")).to_contain_text("Showing")
    await page.evaluate("document.activeElement.blur()")


async def shoot(url: str, key: str, out: Path) -> list[Path]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        me = await client.get("/v1/me")
        me.raise_for_status()
        await seed(client, me.json()["accounts"])
    saved: list[Path] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            desktop = await browser.new_page(
                base_url=url, viewport={"width": 1440, "height": 900}, color_scheme="light"
            )
            await sign_in(desktop, key)
            saved.append(out / "list-desktop.png")
            await desktop.screenshot(path=saved[-1])

            phone = await browser.new_page(
                base_url=url,
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                color_scheme="light",
            )
            await sign_in(phone, key)
            await phone.locator("#list-section").scroll_into_view_if_needed()
            saved.append(out / "list-phone.png")
            await phone.screenshot(path=saved[-1])

            # The dark theme, as a system set to dark shows it.
            dark = await browser.new_page(
                base_url=url, viewport={"width": 1440, "height": 900}, color_scheme="dark"
            )
            await sign_in(dark, key)
            await dark.locator("#list-section").scroll_into_view_if_needed()
            saved.append(out / "list-dark.png")
            await dark.screenshot(path=saved[-1])

            await desktop.get_by_role("button", name="Import").click()
            wizard = desktop.get_by_role("dialog", name="Import contacts")
            data = ("\r\n".join(IMPORTED[:4]) + "\r\n12ab,SMS,\r\n").encode()
            await wizard.get_by_label("File", exact=True).set_input_files(
                {"name": "fair.csv", "mimeType": "text/csv", "buffer": data}
            )
            await wizard.get_by_role("button", name="Next").click()
            await wizard.get_by_label("Skip rows").fill("1")
            await wizard.get_by_label("Column 1", exact=True).select_option("contact")
            await wizard.get_by_label("Column 2", exact=True).select_option("channel")
            await wizard.get_by_label("Column 3", exact=True).select_option("sender")
            await wizard.get_by_role("button", name="Analyze").click()
            await expect(wizard.get_by_role("heading", name="Analysis")).to_be_visible()
            saved.append(out / "import-desktop.png")
            await desktop.screenshot(path=saved[-1])
        finally:
            await browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("DNC_API_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--key", default=os.environ.get("DNC_API_KEY", DEV_KEY))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(shoot(args.url, args.key, args.out)):
        sys.stdout.write(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}\n")


if __name__ == "__main__":
    main()
