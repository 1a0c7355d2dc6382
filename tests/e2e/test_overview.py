"""The overview panel (issue 17): the chosen accounts' entries by source and by channel,
and a chart of entries added and removed per day over the last 90 days, from the API's
list view (``GET /v1/overview``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.conftest import Tenant, rows, sign_in
from tests.e2e.test_filters import add_filter

A, B, C, E = "447700900991", "447700900992", "jane@example.com", "447700900995"


async def overview_of(tenant: Tenant, **params: Any) -> dict[str, Any]:
    r = await tenant.client.get("/v1/overview", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_the_overview_counts_and_charts_the_chosen_accounts(
    page: Page, tenant: Tenant
) -> None:
    acme, globex = tenant.accounts
    await tenant.add(A, channel="SMS", sender="ACME", accounts=[acme])
    await tenant.add(B, accounts=[acme])
    await tenant.add(C, channel="EMAIL", accounts=[globex])
    await tenant.stop_message(E, acme)  # SMS, from the end user
    await tenant.wait_total(4)
    r = await tenant.client.request(
        "DELETE",
        "/v1/entries",
        json=[{"account": acme, "contact": B, "channel": None, "sender": None}],
    )
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while (today := (await overview_of(tenant))["days"][-1]) != {
        "day": today["day"],
        "added": 4,
        "removed": 1,
    }:
        assert time.monotonic() < deadline, f"the history never showed today's changes: {today}"
        await asyncio.sleep(0.2)
    body = await overview_of(tenant)
    assert body["total"] == 3
    assert body["by_source"] == {"MANUAL": 2, "END_USER_MESSAGE": 1}
    assert body["by_channel"] == {"SMS": 2, "EMAIL": 1}
    assert len(body["days"]) == 90

    await sign_in(page, tenant)
    await expect(rows(page)).to_have_count(3)
    panel = page.get_by_role("region", name="Overview")
    await expect(panel.locator("#overview-scope")).to_have_text(f"3 entries in {acme}, {globex}.")
    await expect(panel.locator('#overview-sources [data-count="Added manually"]')).to_have_text("2")
    await expect(
        panel.locator('#overview-sources [data-count="Message from end user"]')
    ).to_have_text("1")
    await expect(panel.locator('#overview-channels [data-count="SMS"]')).to_have_text("2")
    await expect(panel.locator('#overview-channels [data-count="Email"]')).to_have_text("1")
    chart = panel.get_by_role("img")
    await expect(chart).to_have_accessible_name(
        "Last 90 days: 4 entries added, 1 removed; at most 4 changes on one day."
    )
    await expect(chart.locator("rect.added")).to_have_count(90)
    await expect(chart.locator("rect.added").last.locator("title")).to_have_text(
        f"{today['day']}: 4 added, 1 removed"
    )

    # The list's Account filter chooses the accounts of the overview too.
    await add_filter(page, "account", acme)
    await expect(panel.locator("#overview-scope")).to_have_text(f"2 entries in {acme}.")
    await expect(panel.locator('#overview-channels [data-count="Email"]')).to_have_count(0)
    await expect(chart).to_have_accessible_name(
        "Last 90 days: 3 entries added, 1 removed; at most 3 changes on one day."
    )
