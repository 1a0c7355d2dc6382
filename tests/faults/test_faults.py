"""Fault scenarios: bounce processes, then count (see ``harness`` for how, and for the
precise meaning of *effective* and *leaked*).

Every scenario runs the real roles as processes (``python -m dnc <role>``) against the
fault suite's own Kafka broker and a Redis of its own, while opt-outs and outbound
messages flow. Afterwards, by message id, read with read_committed:

- every outbound message is in exactly one of allowed / blocked / dead-letter (lost = in
  none, duplicated = in more than one or twice in one);
- no blockable message produced after its contact's opt-out became effective was allowed
  (leaked), and per contact nothing was allowed after something was blocked (reopened);
- nothing else was blocked (wrongly blocked), every opt-out is in the index and exactly
  once in dnc.changes and in dnc.commands;
- no role exited on its own (every role recovers by itself);
- where opt-outs are added through the api (``sigkill-api``): every add it acknowledged
  is in the index and in dnc.changes, and no contact was created twice (lost, duplicated).

``DNC_FAULT_ROUNDS`` sets the number of rounds (``make test-faults``: 10); the short
defaults keep ``make test`` within its time budget. ``@pytest.mark.long`` variants run
only in ``make test-faults``.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from dnc.settings import ApiKey, ApiSettings
from tests.faults.harness import (
    ACCOUNT,
    ROLES,
    SENDER,
    Report,
    adds_in_changes,
    missing_in_index,
    monotonic,
    rounds,
    scenario,
)
from tests.faults.proxy import ChaosProxy
from tests.faults.stack import FaultStack, RedisServer
from tests.kit import eventually
from tests.ports import free_port, port_open

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def assert_clean(report: Report) -> None:
    assert report.messages > 0 and report.allowed > 0 and report.blocked > 0
    assert report.dead_lettered > 0
    assert not report.problems(), f"{report.line()}\n{report.extra.get('exits', '')}"


# --- 1. SIGKILL each role at random moments --------------------------------------------------


async def kill_roles(
    stack: FaultStack, name: str, n: int, *, instances: int = 1, gap_s: tuple[float, float]
) -> Report:
    """Each round: SIGKILL one process (each role in turn, in random order; with several
    instances a random one of them) at a random moment, restart it after 0-1 s."""
    async with scenario(
        name,
        stack.kafka,
        roles_redis_url=stack.redis_url,
        watch_redis_url=stack.redis_url,
        planned_rounds=n,
        instances=instances,
    ) as run:
        order: list[str] = []
        for _ in range(n):
            if not order:
                order = list(ROLES)
                run.rng.shuffle(order)
            role = order.pop()
            victim = run.rng.choice([p for p in run.roles.procs if p.startswith(role)])
            await asyncio.sleep(run.rng.uniform(*gap_s))
            run.load.event(f"SIGKILL {victim}")
            run.roles.kill(victim)
            await asyncio.sleep(run.rng.uniform(0.0, 1.0))
            run.roles.restart(victim)
    return run.report


async def test_sigkill_each_role_at_random_moments(fault_stack: FaultStack) -> None:
    report = await kill_roles(fault_stack, "sigkill-roles", rounds(6), gap_s=(0.5, 4.0))
    assert_clean(report)
    assert set(report.kills) == set(ROLES) or report.rounds < len(ROLES)


@pytest.mark.long
async def test_sigkill_two_instances_of_each_role_in_quick_succession(
    fault_stack: FaultStack,
) -> None:
    """Two instances of every role (partitions move between them on every kill, zombie
    transactions are fenced), killed in quick succession, often while still starting."""
    report = await kill_roles(
        fault_stack, "sigkill-two-instances", max(rounds(12), 12), instances=2, gap_s=(0.2, 2.5)
    )
    assert_clean(report)


# --- 2. Redis killed and restarted empty -----------------------------------------------------

BROKEN_GATE = [sys.executable, "-m", "tests.faults.broken_gate"]


async def redis_restarted_empty(
    stack: FaultStack, workdir: Path, name: str, n: int, gate_argv: list[str] | None = None
) -> Report:
    """Each round: SIGKILL Redis (no persistence), restart it empty after 1.5-3 s. In
    every other round the list writer is also paused (SIGSTOP) across the outage and for
    2 s after it, so the index stays empty for a while, as a large rebuild would: the
    gate must wait until the index is rebuilt from dnc.changes."""
    redis = RedisServer(workdir / "redis")
    redis.start()
    try:
        async with scenario(
            name,
            stack.kafka,
            roles_redis_url=redis.url,
            watch_redis_url=redis.url,
            planned_rounds=n,
            argv={"gate": gate_argv} if gate_argv else None,
        ) as run:
            blind: list[str] = []
            waits = []
            for i in range(n):
                await asyncio.sleep(run.rng.uniform(1.0, 3.0))
                slow_rebuild = i % 2 == 0
                if slow_rebuild:
                    run.load.event("SIGSTOP listwriter")
                    run.roles["listwriter"].pause()
                t_kill = monotonic()
                run.load.event("SIGKILL redis")
                redis.kill()
                await asyncio.sleep(run.rng.uniform(1.5, 3.0))
                redis.start()
                run.load.event("redis restarted empty")
                if slow_rebuild:
                    await asyncio.sleep(2.0)
                    run.load.event("SIGCONT listwriter")
                    run.roles["listwriter"].resume()
                t_rebuild_possible = monotonic()
                # Nothing sent after the kill may be decided before the index could be
                # rebuilt (Redis down, then empty with its writer paused).
                blind += run.load.decided_between(t_kill, t_rebuild_possible)
                first = await run.load.resumed(
                    t_kill, 120, "the gate to resume after Redis came back"
                )
                waits.append(round(first - t_rebuild_possible, 2))
            run.report.extra["decided_while_blind"] = len(blind)
            run.report.extra["resumed_after_s"] = waits
            run.report.extra["redis_starts"] = redis.starts
    finally:
        redis.stop()
    return run.report


async def test_redis_killed_and_restarted_empty(fault_stack: FaultStack, tmp_path: Path) -> None:
    report = await redis_restarted_empty(fault_stack, tmp_path, "redis-restart-empty", rounds(2))
    assert_clean(report)
    assert report.extra["decided_while_blind"] == 0


async def test_the_checks_catch_a_gate_that_trusts_an_empty_index(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    """The same scenario with a gate whose ``_trust`` does nothing: the counts must show
    the leak (this proves the scenario can fail)."""
    report = await redis_restarted_empty(
        fault_stack, tmp_path, "mutant-gate-trusts-empty-index", 1, BROKEN_GATE
    )
    assert report.leaked > 0 or report.extra["decided_while_blind"] > 0, report.line()


# --- 3. Redis paused (SIGSTOP) for longer than the client time-outs ---------------------------


async def redis_paused(stack: FaultStack, workdir: Path, name: str, n: int) -> Report:
    redis = RedisServer(workdir / "redis")
    redis.start()
    try:
        async with scenario(
            name,
            stack.kafka,
            roles_redis_url=redis.url,
            watch_redis_url=redis.url,
            planned_rounds=n,
            redis_timeout_s=1.0,
        ) as run:
            blind: list[str] = []
            waits = []
            for _ in range(n):
                await asyncio.sleep(run.rng.uniform(1.0, 3.0))
                t_pause = monotonic()
                run.load.event("SIGSTOP redis")
                redis.pause()
                await asyncio.sleep(run.rng.uniform(2.5, 4.0))  # > redis_timeout_s
                t_resume = monotonic()
                run.load.event("SIGCONT redis")
                redis.resume()
                blind += run.load.decided_between(t_pause, t_resume)
                first = await run.load.resumed(
                    t_pause, 120, "the gate to resume after Redis was resumed"
                )
                waits.append(round(first - t_resume, 2))
            run.report.extra["decided_while_blind"] = len(blind)
            run.report.extra["resumed_after_s"] = waits
    finally:
        redis.stop()
    return run.report


async def test_redis_paused_longer_than_timeouts(fault_stack: FaultStack, tmp_path: Path) -> None:
    report = await redis_paused(fault_stack, tmp_path, "redis-sigstop", rounds(2))
    assert_clean(report)
    assert report.extra["decided_while_blind"] == 0


# --- 4. the Kafka broker restarted under load ------------------------------------------------


async def broker_restarts(stack: FaultStack, name: str, n: int) -> Report:
    async with scenario(
        name,
        stack.kafka,
        roles_redis_url=stack.redis_url,
        watch_redis_url=stack.redis_url,
        planned_rounds=n,
        decide_timeout_s=300,
    ) as run:
        downtimes, waits = [], []
        try:
            for i in range(n):
                await asyncio.sleep(run.rng.uniform(2.0, 4.0))
                sig = signal.SIGKILL if i % 2 == 0 else signal.SIGTERM
                t_down = monotonic()
                run.load.event(f"broker {sig.name}")
                await asyncio.to_thread(stack.kill_kafka, sig)
                await asyncio.sleep(run.rng.uniform(0.0, 2.0))
                await asyncio.to_thread(stack.start_kafka)
                await stack.wait_kafka_ready()
                t_up = monotonic()
                run.load.event("broker ready")
                downtimes.append(round(t_up - t_down, 1))
                # No role is restarted by the test: they must carry on by themselves.
                first = await run.load.resumed(
                    t_up, 180, "the gate to resume after the broker restart"
                )
                waits.append(round(first - t_up, 1))
        finally:
            await broker_running(stack)
        run.report.extra["broker_down_s"] = downtimes
        run.report.extra["resumed_after_s"] = waits
    return run.report


async def test_kafka_broker_restarted_under_load(fault_stack: FaultStack) -> None:
    report = await broker_restarts(fault_stack, "kafka-broker-restart", rounds(2))
    assert_clean(report)


# --- 4b. the broker lost between a batch's produce and its offset commit ---------------------


async def broker_lost_before_offset_commit(stack: FaultStack, workdir: Path, role: str) -> Report:
    """The role is restarted as ``tests.faults.broker_dies_at``: at its first transactional
    offset commit the broker is stopped while the group-coordinator lookup is in flight,
    then killed, so the lookup's connection closes under it (see that module). The test
    restarts the broker; the role must replace the partition's producer and redo the batch
    by itself, with nothing lost, duplicated or leaked."""
    marker = workdir / "broker-killed"
    name = f"broker-lost-before-offset-commit-{role}"
    async with scenario(
        name,
        stack.kafka,
        roles_redis_url=stack.redis_url,
        watch_redis_url=stack.redis_url,
        planned_rounds=1,
        decide_timeout_s=300,
    ) as run:
        proc = run.roles[role]
        try:
            run.roles.kill(role)
            proc.argv = [
                *(sys.executable, "-m", "tests.faults.broker_dies_at"),
                *("--pid-file", str(stack.kafka_pid_file), "--state", str(stack.state)),
                *("--marker", str(marker), role),
            ]
            run.roles.restart(role)
            await eventually(
                marker.exists, 120, f"the {role}'s first offset commit to kill the broker"
            )
            t_down = monotonic()
            run.load.event("broker SIGKILL during the group-coordinator lookup")
            await asyncio.to_thread(stack.wait_kafka_gone, int(marker.read_text()))
            await asyncio.to_thread(stack.start_kafka)
            await stack.wait_kafka_ready()
            t_up = monotonic()
            run.load.event("broker ready")
            first = await run.load.resumed(t_up, 180, "the gate to resume after the broker restart")
            run.report.extra["broker_down_s"] = round(t_up - t_down, 1)
            run.report.extra["resumed_after_s"] = round(first - t_up, 1)
        finally:
            # Whatever failed, the roles and the workload are stopped and counted against a
            # running broker (against a dead one they would wait for it).
            await broker_running(stack)
    log = proc.log_tail(100_000)
    # The fault must have hit the path it is about, and the role must have handled it by
    # replacing the producer (not by exiting and being restarted: assert_clean counts that).
    run.report.extra["hit"] = "Unexpected error during batch delivery" in log
    run.report.extra["replaced"] = "replacing its producer" in log
    return run.report


async def broker_running(stack: FaultStack) -> None:
    if not port_open(stack.kafka_port):
        await asyncio.to_thread(stack.start_kafka)
    await stack.wait_kafka_ready()


@pytest.mark.parametrize("role", ["gate", "listwriter"])
async def test_broker_lost_between_produce_and_offset_commit(
    fault_stack: FaultStack, tmp_path: Path, role: str
) -> None:
    report = await broker_lost_before_offset_commit(fault_stack, tmp_path, role)
    assert_clean(report)
    assert report.extra["hit"], "the broker was not lost where the test meant it to be"
    assert report.extra["replaced"], "the role did not replace the failed producer"


# --- 5. a slow, flapping network between the roles and Redis ---------------------------------


async def flaky_network(stack: FaultStack, workdir: Path, name: str, seconds: float) -> Report:
    redis = RedisServer(workdir / "redis")
    redis.start()
    proxy = ChaosProxy(redis.port, latency_s=(0.002, 0.03)).start()
    try:
        async with scenario(
            name,
            stack.kafka,
            roles_redis_url=proxy.url,
            watch_redis_url=redis.url,
            planned_rounds=0,
            redis_timeout_s=1.0,
        ) as run:
            await asyncio.to_thread(
                proxy.start_chaos, cut_every_s=(0.5, 2.0), stall_chance=0.25, stall_s=(1.5, 2.5)
            )
            await asyncio.sleep(seconds)  # the faults happen meanwhile, at random
            await asyncio.to_thread(proxy.stop_chaos)
            run.report.rounds = proxy.stats.cuts
            run.report.extra["proxy"] = {
                "connections": proxy.stats.connections,
                "cuts": proxy.stats.cuts - proxy.stats.stalls,
                "stalls": proxy.stats.stalls,
                "connections_cut": proxy.stats.connections_cut,
                "stalled_s": round(proxy.stats.stalled_s, 1),
            }
    finally:
        proxy.stop()
        redis.stop()
    return run.report


async def test_slow_flapping_network_to_redis(fault_stack: FaultStack, tmp_path: Path) -> None:
    report = await flaky_network(fault_stack, tmp_path, "flaky-redis-network", 2.0 * rounds(6))
    assert_clean(report)
    assert report.extra["proxy"]["connections_cut"] > 0


# --- 6. the api killed while opt-outs are added through it ----------------------------------

API_SECRET = "faults-api-key"


@dataclass
class Adds:
    """What the client of the api learnt."""

    tried: list[str] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)  # contact → outcome (or "pending")
    requests: int = 0  # that reached the api (a refused connection did not)
    unknown: int = 0  # cut off, timed out or 5xx: the add may or may not have happened
    refused: int = 0
    after_unknown: Counter[str] = field(default_factory=Counter)  # outcome of the retry


async def add_through_api(client: httpx.AsyncClient, adds: Adds, stop: asyncio.Event) -> None:
    """Add distinct contacts one at a time. After an unknown outcome, retry the same
    contact (as a client that wants at-least-once does) until the api acknowledges it."""
    while not stop.is_set():
        contact = f"4477009{20000 + len(adds.tried):05d}"  # not one of the workload's
        adds.tried.append(contact)
        body = {"contact": f"+{contact}", "channel": "SMS", "sender": SENDER, "accounts": [ACCOUNT]}
        retry = False
        while contact not in adds.acked:
            try:
                r = await client.post("/v1/entries", json=body)
            except httpx.ConnectError:  # refused: the api is down, nothing was sent
                adds.refused += 1
                await asyncio.sleep(0.05)
                continue
            except httpx.TransportError:  # the api died mid-request, or it timed out
                adds.requests += 1
                adds.unknown += 1
                retry = True
                continue
            adds.requests += 1
            if r.status_code >= 500:
                adds.unknown += 1
                retry = True
                await asyncio.sleep(0.1)
                continue
            assert r.status_code in (200, 201, 202), r.text
            outcome = "pending" if r.status_code == 202 else r.json()["results"][0]["outcome"]
            adds.acked[contact] = outcome
            if retry:
                adds.after_unknown[outcome] += 1


async def api_healthy(client: httpx.AsyncClient, timeout: float = 60) -> None:
    async def up() -> bool:
        try:
            return (await client.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(up, timeout, "the api to answer /healthz")


async def sigkill_api(stack: FaultStack, workdir: Path, name: str, n: int) -> Report:
    """Each round: SIGKILL the api at a random moment while a client adds opt-outs through
    it (usually mid-request: the command may or may not have been produced), restart it
    after 0-1 s, wait until it answers. The other roles run, and are counted, as usual."""
    port = free_port()
    digest = hashlib.sha256(API_SECRET.encode()).hexdigest()
    api = ApiSettings(
        port=port,
        keys=[ApiKey(name="faults", sha256=digest, accounts=[ACCOUNT])],
        view_path=str(workdir / "view.sqlite3"),
    )
    adds = Adds()
    async with (
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {API_SECRET}"},
            timeout=30,
        ) as client,
        scenario(
            name,
            stack.kafka,
            roles_redis_url=stack.redis_url,
            watch_redis_url=stack.redis_url,
            planned_rounds=n,
            extra_roles=["api"],
            api=api,
        ) as run,
    ):
        await api_healthy(client)
        stop = asyncio.Event()
        adding = asyncio.create_task(add_through_api(client, adds, stop))
        try:
            for _ in range(n):
                await asyncio.sleep(run.rng.uniform(0.5, 3.0))
                run.load.event(f"SIGKILL api ({len(adds.acked)} acked)")
                run.roles.kill("api")
                await asyncio.sleep(run.rng.uniform(0.0, 1.0))
                run.roles.restart("api")
                await api_healthy(client)
            await asyncio.sleep(1.0)
            stop.set()
            await adding
        finally:
            adding.cancel()
        # Every acknowledged add is in the index and in dnc.changes; none is there twice.
        acked, report = list(adds.acked), run.report
        missing = set(await missing_in_index(run.settings, stack.redis_url, acked))
        deadline = monotonic() + 60
        made = await adds_in_changes(run.settings)
        while not all(made[c] for c in acked) and monotonic() < deadline:
            await asyncio.sleep(0.5)
            made = await adds_in_changes(run.settings)
        missing |= {c for c in acked if not made[c]}
        report.requests, report.acked, report.unknown = adds.requests, len(acked), adds.unknown
        report.adds_lost = len(missing)
        report.adds_duplicated = sum(max(0, made[c] - 1) for c in adds.tried)
        report.extra["api"] = {
            "refused": adds.refused,
            "outcomes": dict(Counter(adds.acked.values())),
            "retried_after_unknown": dict(adds.after_unknown),
        }
    return run.report


async def test_sigkill_api_while_adding_opt_outs(fault_stack: FaultStack, tmp_path: Path) -> None:
    report = await sigkill_api(fault_stack, tmp_path, "sigkill-api", rounds(4))
    assert report.kills.get("api") == report.rounds
    assert report.acked > 0 and report.requests >= report.acked
    assert_clean(report)
