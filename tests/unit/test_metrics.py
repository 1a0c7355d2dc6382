"""The metrics every role exports: valid for Prometheus, and served on DNC_METRICS_PORT."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dnc.api.observe import ApiMetrics
from dnc.errors import InvalidValue, MissingField, NotJson
from dnc.kafka.deadletter import error_kind
from dnc.lifecycle import Role
from dnc.metrics import (
    FAIL_CLOSED_REASONS,
    FailClosed,
    GateMetrics,
    ListWriterMetrics,
    RoleMetrics,
)
from dnc.settings import Settings


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("DNC_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is missing: `make tools` installs it (Debian package prometheus)")
        pytest.skip(
            "promtool is not installed (Debian package prometheus; `make test` installs it)"
        )
    return path


def exercised(metrics: RoleMetrics) -> RoleMetrics:
    """Metrics with a value in every family, as after some batches."""
    metrics.up = metrics.ready = True
    metrics.committed("t.outbound", {"allowed": 5, "blocked": 2, "dead_lettered": 1}, {"x": 1})
    metrics.lag("t.outbound", 0, 12)
    metrics.batch_seconds.observe(0.004)
    metrics.transaction_seconds.observe(0.002)
    metrics.producers_replaced.inc()
    metrics.producer_start_failures.inc()
    metrics.producers_failing.set(1)
    metrics.partitions_stalled.set(0)
    metrics.fail_closed.enter("redis_unreachable")
    if isinstance(metrics, ListWriterMetrics):
        metrics.index_lag.labels(metrics.role, "0").set(3)
        metrics.catch_up_remaining.labels(metrics.role, "0").set(0)
        metrics.catch_ups.inc()
        metrics.effective_delay.observe(0.08)
    if isinstance(metrics, GateMetrics):
        metrics.lookups.inc(7)
        metrics.lookup_hits.inc(2)
        metrics.filter_rebuilds.inc()
        metrics.filter_contacts.set(4)
        metrics.filter_usable.set(1)
    return metrics


@pytest.mark.parametrize(
    "metrics",
    [RoleMetrics("ingest"), ListWriterMetrics(), GateMetrics()],
    ids=["ingest", "listwriter", "gate"],
)
def test_every_role_s_metrics_pass_promtool(metrics: RoleMetrics) -> None:
    text = generate_latest(exercised(metrics).registry)
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert (done.stdout + done.stderr).strip() == b"", (done.stdout + done.stderr).decode()


def samples(metrics: RoleMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_outcomes_and_dead_letters_are_counted_by_topic_and_kind() -> None:
    m = RoleMetrics("gate")
    m.committed("out", {"allowed": 3, "blocked": 0}, {})
    m.committed("out", {"allowed": 2, "dead_lettered": 1}, {"invalid_message": 1})
    got = samples(m)
    labels = (("outcome", "allowed"), ("role", "gate"), ("topic", "out"))
    assert got["dnc_records_consumed_total", labels] == 5
    assert ("dnc_records_consumed_total", (("outcome", "blocked"), *labels[1:])) not in got
    kind = (("kind", "invalid_message"), ("role", "gate"), ("topic", "out"))
    assert got["dnc_dead_letters_total", kind] == 1


def test_fail_closed_reports_its_reason_and_the_seconds_in_it() -> None:
    now = [100.0]
    closed = FailClosed(clock=lambda: now[0])
    closed.enter("redis_unreachable")
    now[0] = 103.0
    closed.enter("index_incomplete")  # Redis back, empty: another reason, a new period
    now[0] = 104.5
    assert closed.snapshot() == (
        "index_incomplete",
        1.5,
        {
            **dict.fromkeys(FAIL_CLOSED_REASONS, 0.0),
            "redis_unreachable": 3.0,
            "index_incomplete": 1.5,
        },
    )
    closed.clear()
    now[0] = 200.0
    reason, period, totals = closed.snapshot()
    assert (reason, period, totals["index_incomplete"]) == (None, 0.0, 1.5)


def test_every_reason_is_exported_so_an_alert_can_tell_zero_from_missing() -> None:
    m = RoleMetrics("gate")
    m.fail_closed.enter("index_behind")
    got = samples(m)
    for reason in FAIL_CLOSED_REASONS:
        labels = (("reason", reason), ("role", "gate"))
        assert got["dnc_fail_closed", labels] == float(reason == "index_behind")


def test_dead_letter_kinds_are_the_error_classes() -> None:
    assert error_kind(InvalidValue("sender", "", "must not be empty")) == "invalid_value"
    assert error_kind(MissingField("channel")) == "missing_field"
    assert error_kind(NotJson("value: is empty")) == "not_json"


class _Idle(Role):
    name = "idle"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    async def _open(self, exits: AsyncExitStack) -> None:
        return None

    async def _serve(self) -> None:
        return None

    def request_stop(self) -> None:
        return None


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


async def test_a_role_serves_its_metrics_on_the_metrics_port_while_started() -> None:
    role = _Idle(Settings(metrics_port=0))  # 0: any free port
    await role.start()
    port = role.metrics.port
    assert port
    try:
        assert 'dnc_role_up{role="idle"} 1.0' in scrape(port)
    finally:
        await role.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(port)


async def test_no_metrics_port_no_server() -> None:
    role = _Idle(Settings(metrics_port=None))
    async with role:
        assert role.metrics.port is None
        assert role.metrics.up


def test_a_revoked_partition_s_gauges_go_with_it() -> None:
    m = ListWriterMetrics()
    m.lag("t.commands", 2, 500)
    m.index_lag.labels("listwriter", "2").set(2000)
    m.catch_up_remaining.labels("listwriter", "2").set(10)
    m.forget("t.commands", 2)
    m.forget_changelog(2)
    m.forget("t.commands", 3)  # never set: nothing to forget
    m.forget_changelog(3)
    names = {name for name, _ in samples(m)}
    assert not names & {
        "dnc_consumer_lag_records",
        "dnc_index_lag_records",
        "dnc_catch_up_remaining_records",
    }
    m.lag("t.commands", 2, 7)  # assigned again: reported again
    assert (
        samples(m)[
            "dnc_consumer_lag_records",
            (
                ("partition", "2"),
                ("role", "listwriter"),
                ("topic", "t.commands"),
            ),
        ]
        == 7
    )


@pytest.mark.parametrize("kind", [RoleMetrics, ListWriterMetrics, GateMetrics])
def test_metrics_turned_off_record_nothing_and_serve_nothing(kind: type[RoleMetrics]) -> None:
    m = exercised(kind("gate" if kind is RoleMetrics else kind().role, enabled=False))
    m.forget("t.outbound", 0)
    if isinstance(m, ListWriterMetrics):
        m.forget_changelog(0)
    # Only what is read at scrape time is left (the role reads those states itself).
    assert {name for name, _ in samples(m)} <= {
        "dnc_role_up",
        "dnc_role_ready",
        "dnc_fail_closed",
        "dnc_fail_closed_period_seconds",
        "dnc_fail_closed_seconds_total",
    }
    assert m.fail_closed.reason == "redis_unreachable"
    m.serve(0)
    assert m.port is None


def test_metrics_enabled_is_a_setting_the_roles_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNC_METRICS_ENABLED", "false")
    assert Settings().metrics_enabled is False
    monkeypatch.delenv("DNC_METRICS_ENABLED")
    assert Settings().metrics_enabled is True


def test_the_api_s_metrics_with_its_import_jobs_pass_promtool() -> None:
    view = SimpleNamespace(lag=lambda: 3, caught_up=True)
    reviews = SimpleNamespace(select_all_open=list, oldest_open_age_s=lambda: None)
    api = ApiMetrics(SimpleNamespace(view=view, reviews=reviews))  # type: ignore[arg-type]
    api.requests.labels("GET", "/v1/check", "200").inc()
    api.latency.labels("GET", "/v1/check").observe(0.002)
    imports = api.imports
    imports.begun()
    imports.read(20_000, 3)
    imports.ended("finished", 12.5)
    imports.begun()
    imports.ended("failed", 0.4)
    text = generate_latest(api.registry)
    done = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert (done.stdout + done.stderr).strip() == b"", (done.stdout + done.stderr).decode()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    assert got["dnc_api_imports_started_total", ()] == 2
    assert got["dnc_api_imports_finished_total", (("outcome", "failed"),)] == 1
    assert got["dnc_api_imports_finished_total", (("outcome", "cancelled"),)] == 0
    assert got["dnc_api_import_rows_total", (("result", "accepted"),)] == 19_997
    assert got["dnc_api_import_rows_total", (("result", "rejected"),)] == 3
    assert got["dnc_api_import_duration_seconds_count", (("outcome", "finished"),)] == 1
    assert got["dnc_api_imports_running", ()] == 0
