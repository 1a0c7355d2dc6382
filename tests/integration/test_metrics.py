"""The metrics of the running roles, scraped over HTTP as Prometheus would: the gate says
within seconds that it fails closed, and why, and says so no more once it forwards again."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dnc.index import make_index
from dnc.settings import IndexSettings, Settings
from tests.integration.test_recovery import messages, private_redis
from tests.kit import eventually, inbound, outbound, produce, reading, running
from tests.ports import free_port

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    def get() -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body: bytes = r.read()
        return body

    text = (await asyncio.to_thread(get)).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def closed(samples: Samples, reason: str, role: str = "gate") -> float:
    return samples["dnc_fail_closed", frozenset({("role", role), ("reason", reason)})]


def families(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def test_the_gate_reports_failing_closed_while_redis_is_down_and_loses_nothing(
    make_settings: object,
) -> None:
    port = free_port()
    settings: Settings = await make_settings(  # type: ignore[operator]
        redis_url=f"redis://127.0.0.1:{port}/0",
        index=IndexSettings(prefix="m", buckets=256, redis_timeout_s=0.5),
        metrics_port=0,  # each role its own free port
    )
    t = settings.topics
    stopped = "441111111111"
    with private_redis(port) as redis_proc:
        async with (
            running(settings, "ingest", "listwriter", "gate") as roles,
            reading(settings, t.allowed, t.blocked) as (allowed, blocked),
        ):
            gate, listwriter = roles["gate"].metrics.port, roles["listwriter"].metrics.port
            await produce(settings, t.inbound_messages, inbound("mo-1", stopped, "STOP"))
            async with make_index(settings) as index:

                async def effective() -> bool:
                    return bool(await index.entries_of("acme", stopped))

                await eventually(effective, timeout=30, what="the STOP to be effective")
            await produce(settings, t.outbound, outbound("before", stopped))
            await blocked.wait_for(1)

            async def open_() -> bool:
                s = await scrape(gate)
                return all(closed(s, r) == 0 for r in ("redis_unreachable", "index_incomplete"))

            await eventually(open_, timeout=10, what="the gate to forward")
            s = await scrape(gate)
            out = frozenset({("role", "gate"), ("topic", t.outbound), ("outcome", "blocked")})
            assert s["dnc_records_consumed_total", out] == 1
            assert s["dnc_role_up", frozenset({("role", "gate")})] == 1

            async def list_writer_families() -> bool:
                # The index lag is first set by the idle check, a moment after a write.
                return {
                    "dnc_optout_effective_delay_seconds_bucket",
                    "dnc_index_lag_records",
                    "dnc_catch_up_remaining_records",
                    "dnc_records_consumed_total",
                } <= families(await scrape(listwriter))

            await eventually(list_writer_families, timeout=10, what="the list writer's metrics")

            redis_proc.kill()  # Redis is gone, and with it the whole index
            redis_proc.wait()
            gone = time.monotonic()

            async def failing_closed() -> bool:
                return closed(await scrape(gate), "redis_unreachable") == 1

            await eventually(failing_closed, timeout=10, what="fail_closed{redis_unreachable}")
            took = time.monotonic() - gone
            assert took < 2.0, f"the gate said it fails closed {took:.1f}s after Redis stopped"

            await produce(
                settings,
                t.outbound,
                outbound("during-1", stopped),
                outbound("during-2", "442222222222"),
            )
            await asyncio.sleep(1.0)
            assert messages(allowed) == [] and len(blocked.records) == 1, "forwarded unchecked"
            s = await scrape(gate)
            assert closed(s, "redis_unreachable") == 1
            period = s[
                "dnc_fail_closed_period_seconds",
                frozenset({("role", "gate"), ("reason", "redis_unreachable")}),
            ]
            assert period > 0.5

            async def list_writer_waits() -> bool:
                s = await scrape(listwriter)
                return closed(s, "redis_unreachable", "listwriter") == 1

            await eventually(list_writer_waits, timeout=10, what="the list writer to say why")

            with private_redis(port):  # back, but empty: the list writer rebuilds the index

                async def forwarding() -> bool:
                    s = await scrape(gate)
                    return all(closed(s, r) == 0 for r in ("redis_unreachable", "index_incomplete"))

                await eventually(forwarding, timeout=30, what="fail_closed back to 0")

                async def list_writer_works() -> bool:
                    s = await scrape(listwriter)
                    return closed(s, "redis_unreachable", "listwriter") == 0

                await eventually(list_writer_works, timeout=30, what="the list writer to resume")
                await blocked.wait_for(2, timeout=30)
                await allowed.wait_for(2, timeout=30)  # during-2 and the STOP's confirmation
                await allowed.settle(1.0)
    assert [orjson.loads(r.value)["message"]["message_id"] for r in blocked.records] == [
        "before",
        "during-1",
    ]
    assert [orjson.loads(r.value)["message_id"] for r in messages(allowed)] == ["during-2"]
