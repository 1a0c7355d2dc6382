"""The Prometheus metrics of a role, defined in one place; served on ``DNC_METRICS_PORT``.

Each role object builds its own ``RoleMetrics`` (its own registry: nothing is registered
at import time, and several roles in one test process do not collide). Labels are
bounded by the deployment: role, topic, partition, outcome, reason, error kind; never a
contact or an account.

The hot path pays per batch, never per message: the roles tally outcomes into the
batch's writer (``tally``), and the pipeline adds the tallies to the counters once the
partition's transaction committed, so a batch that is redone is counted once. What is a
state rather than an event (up, ready, failing closed and since when) is read when
Prometheus scrapes, from plain attributes the event loop keeps current.

``DNC_METRICS_ENABLED=false`` turns a role's metrics off: every family is then a no-op
(``_Off``) and nothing is served; the states above are still kept, because the role
itself reads them (readiness, the heartbeat's stall check).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from threading import Thread
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Why a role holds records back (the gate: forwards nothing). Bounded: the label's values.
FAIL_CLOSED_REASONS = ("index_incomplete", "index_behind", "redis_unreachable", "kafka_unreachable")

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Opt-out → effective: the target is well under a second; outages show in the long tail.
_DELAY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300)


class FailClosed:
    """Whether the role is holding records back, why, and for how long. Kept by the event
    loop (``enter``/``clear``), read by the scrape thread (one tuple: read atomically)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: tuple[str | None, float] = (None, 0.0)
        self._totals: dict[str, float] = dict.fromkeys(FAIL_CLOSED_REASONS, 0.0)

    @property
    def reason(self) -> str | None:
        return self._state[0]

    def enter(self, reason: str) -> None:
        assert reason in self._totals, reason
        current, since = self._state
        if current == reason:
            return
        now = self._clock()
        if current is not None:
            self._totals[current] += now - since
        self._state = (reason, now)

    def clear(self) -> None:
        current, since = self._state
        if current is None:
            return
        self._totals[current] += self._clock() - since
        self._state = (None, 0.0)

    def snapshot(self) -> tuple[str | None, float, dict[str, float]]:
        """(reason, seconds in it, total seconds per reason including the current period)."""
        current, since = self._state
        totals = dict(self._totals)
        period = 0.0
        if current is not None:
            period = max(self._clock() - since, 0.0)
            totals[current] += period
        return current, period, totals


class _Off:
    """A metric family or child that records nothing (metrics turned off)."""

    def labels(self, *labels: str) -> _Off:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def set(self, value: float) -> None:
        return None

    def observe(self, value: float) -> None:
        return None

    def remove(self, *labels: str) -> None:
        return None


_OFF = _Off()


class RoleMetrics:
    def __init__(self, role: str, *, enabled: bool = True) -> None:
        self.role = role
        self.enabled = enabled
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = False
        self.ready = False
        self.fail_closed = FailClosed()
        Counter, Gauge, Histogram = self.families()  # noqa: N806 - stand-ins for the classes
        self.records = Counter(
            "dnc_records_consumed",
            "input records processed and committed, by what became of them",
            ["role", "topic", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "dnc_dead_letters",
            "input records sent to the dead-letter topic, by input topic and error kind",
            ["role", "topic", "kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "dnc_batch_duration_seconds",
            "one batch: handling, producing and committing every partition's transaction",
            ["role"],
            buckets=_SECONDS,
            registry=r,
        ).labels(role)
        self.transaction_seconds = Histogram(
            "dnc_transaction_duration_seconds",
            "the transaction step of a batch: flush, offsets and commit",
            ["role"],
            buckets=_SECONDS,
            registry=r,
        ).labels(role)
        self.consumer_lag = Gauge(
            "dnc_consumer_lag_records",
            "records of an input partition not processed yet (last stable offset − the "
            "next offset to process), as of the last batch fetched from it",
            ["role", "topic", "partition"],
            registry=r,
        )
        self.producers_replaced = Counter(
            "dnc_producers_replaced",
            "transactional producers replaced after a failed transaction step or fencing",
            ["role"],
            registry=r,
        ).labels(role)
        self.producer_start_failures = Counter(
            "dnc_producer_start_failures",
            "failed starts of a partition's transactional producer (retried with back-off; "
            "after DNC_PRODUCER_START_LIMIT_S with the brokers answering, the role exits)",
            ["role"],
            registry=r,
        ).labels(role)
        self.producers_failing = Gauge(
            "dnc_producers_failing",
            "owned partitions whose transactional producer is failing to start",
            ["role"],
            registry=r,
        ).labels(role)
        self.partitions_stalled = Gauge(
            "dnc_partitions_stalled",
            "owned partitions with records waiting and no batch committed for "
            "DNC_STALL_AFTER_S, without a reason in dnc_fail_closed (while above 0 the "
            "heartbeat file is not touched)",
            ["role"],
            registry=r,
        ).labels(role)
        r.register(_States(self))
        self._children: dict[Any, Any] = {}
        self._server: Any = None
        self._thread: Thread | None = None
        self.port: int | None = None

    # --- the pipeline's per-batch calls ----------------------------------------------

    def committed(self, topic: str, tally: Mapping[str, int], dead: Mapping[str, int]) -> None:
        """A partition's transaction committed: add its batch's tallies."""
        for outcome, n in tally.items():
            if n:
                self._child(self.records, topic, outcome).inc(n)
        for kind, n in dead.items():
            self._child(self.dead_letters, topic, kind).inc(n)

    def lag(self, topic: str, partition: int, records: int) -> None:
        self._child(self.consumer_lag, topic, str(partition)).set(max(records, 0))

    def forget(self, topic: str, partition: int) -> None:
        """A partition revoked: its lag is the new owner's to report (a stale series here
        would add up in sums and keep alerts firing)."""
        _remove(self.consumer_lag, self.role, topic, str(partition))
        self._children.pop((id(self.consumer_lag), (topic, str(partition))), None)

    def families(self) -> tuple[Any, Any, Any]:
        """Counter, Gauge and Histogram, or stand-ins that record nothing (turned off)."""
        if self.enabled:
            return Counter, Gauge, Histogram
        off = _off_family
        return off, off, off

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(self.role, *labels)
        return child

    # --- serving ---------------------------------------------------------------------

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """``/metrics`` on ``port`` (0: any free port, see ``self.port``), in a thread."""
        if self._server is not None or not self.enabled:
            return
        self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        self.port = self._server.server_port

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def _off_family(*args: Any, **kwargs: Any) -> _Off:
    return _OFF


def _remove(family: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        family.remove(*labels)


class ListWriterMetrics(RoleMetrics):
    def __init__(self, role: str = "listwriter", *, enabled: bool = True) -> None:
        super().__init__(role, enabled=enabled)
        r = self.registry
        Counter, Gauge, Histogram = self.families()  # noqa: N806
        self.index_lag = Gauge(
            "dnc_index_lag_records",
            "changelog records of a partition the Redis index has not applied yet",
            ["role", "partition"],
            registry=r,
        )
        self.catch_up_remaining = Gauge(
            "dnc_catch_up_remaining_records",
            "changelog records a partition's catch-up (index rebuild or replay) still has "
            "to apply; 0 when caught up",
            ["role", "partition"],
            registry=r,
        )
        self.catch_ups = Counter(
            "dnc_catch_ups",
            "catch-ups of a partition from the changelog (assignment, a Redis that lost data)",
            ["role"],
            registry=r,
        ).labels(role)
        self.effective_delay = Histogram(
            "dnc_optout_effective_delay_seconds",
            "list writer: from a command's record time to its changes being applied to the "
            "index (effective at the gate); observed once per partition batch, for its "
            "oldest command",
            buckets=_DELAY,
            registry=r,
        )

    def forget_changelog(self, partition: int) -> None:
        """A list partition revoked: its index lag and catch-up are the new owner's."""
        _remove(self.index_lag, self.role, str(partition))
        _remove(self.catch_up_remaining, self.role, str(partition))


class GateMetrics(RoleMetrics):
    def __init__(self, role: str = "gate", *, enabled: bool = True) -> None:
        super().__init__(role, enabled=enabled)
        r = self.registry
        Counter, Gauge, _ = self.families()  # noqa: N806
        self.filter_rebuilds = Counter(
            "dnc_gate_filter_rebuilds",
            "rebuilds of the gate's in-process contact filter",
            registry=r,
        )
        self.lookups = Counter(
            "dnc_gate_lookups",
            "messages the gate's filter could not rule out, looked up in Redis",
            registry=r,
        )
        self.lookup_hits = Counter(
            "dnc_gate_lookup_hits",
            "lookups that found entries for the contact (1 − hits/lookups approximates the "
            "filter's false-positive rate)",
            registry=r,
        )
        self.filter_contacts = Gauge(
            "dnc_gate_filter_contacts",
            "contacts added to the gate's filter since it was last built",
            registry=r,
        )
        self.filter_usable = Gauge(
            "dnc_gate_filter_usable", "1 while the gate's contact filter is usable", registry=r
        )
        self.check_impl = Gauge(
            "dnc_gate_check_impl",
            "1 for the implementation of the per-message check in use: native (compiled) or python",
            ["impl"],
            registry=r,
        )


class _States(Collector):
    """What is read at scrape time: up, ready, failing closed and for how long."""

    def __init__(self, metrics: RoleMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        m, role = self.m, self.m.role
        up = GaugeMetricFamily("dnc_role_up", "1 while the role is started", labels=["role"])
        up.add_metric([role], float(m.up))
        yield up
        ready = GaugeMetricFamily(
            "dnc_role_ready",
            "1 while the role owns partitions and processes them (producers open, caught "
            "up, not failing closed)",
            labels=["role"],
        )
        ready.add_metric([role], float(m.up and m.ready))
        yield ready
        reason, period, totals = m.fail_closed.snapshot()
        state = GaugeMetricFamily(
            "dnc_fail_closed",
            "1 while the role holds records back for this reason (the gate: forwards nothing)",
            labels=["role", "reason"],
        )
        current = GaugeMetricFamily(
            "dnc_fail_closed_period_seconds",
            "seconds the role has been failing closed for this reason, this time",
            labels=["role", "reason"],
        )
        total = CounterMetricFamily(
            "dnc_fail_closed_seconds",
            "seconds spent failing closed, by reason, since the process started",
            labels=["role", "reason"],
        )
        for r in FAIL_CLOSED_REASONS:
            state.add_metric([role, r], float(r == reason))
            current.add_metric([role, r], period if r == reason else 0.0)
            total.add_metric([role, r], totals[r])
        yield state
        yield current
        yield total
