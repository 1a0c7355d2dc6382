"""No silent stall: a role's background work is retried or stops the role, loudly; stopping
finishes the work in flight before it cancels the background tasks, and drops no failure."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from dnc.errors import IndexUnavailable
from dnc.lifecycle import Role
from dnc.listwriter import expiry
from dnc.listwriter.expiry import ExpirySweeper
from dnc.settings import ExpirySettings, Settings

DEADLINE_S = 10.0


class _Role(Role):
    """A role whose background work and drain the test chooses."""

    name = "test"

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings()
        self.steps: list[str] = []
        self.on_open: list[Any] = []
        self.on_drain: list[Any] = []

    async def _open(self, exits: AsyncExitStack) -> None:
        exits.callback(self.steps.append, "closed")
        for work in self.on_open:
            self.spawn(work(), "work")

    async def _serve(self) -> None:
        return None

    def request_stop(self) -> None:
        self.steps.append("stop requested")

    async def _drain(self) -> None:
        self.steps.append("drained")
        for work in self.on_drain:
            self.spawn(work(), "late work")


async def test_a_task_that_fails_while_being_cancelled_makes_stop_raise() -> None:
    role = _Role()

    async def cleanup_fails() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("could not flush what it held") from None

    role.on_open.append(cleanup_fails)
    await role.start()
    await asyncio.sleep(0)  # the task is running
    with pytest.raises(RuntimeError, match="could not flush"):
        await role.stop()
    assert role.steps[-1] == "closed"  # closed all the same


async def test_a_failure_run_raised_is_not_raised_again_by_stop() -> None:
    role = _Role()
    failed = asyncio.Event()

    async def fails() -> None:
        failed.set()
        raise ValueError("boom")

    role.on_open.append(fails)
    await role.start()
    await asyncio.wait_for(failed.wait(), DEADLINE_S)
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="boom"):
        await role.run()
    await role.stop()


async def test_stop_drains_then_cancels_and_what_the_drain_starts_never_runs() -> None:
    role = _Role()
    ran: list[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            role.steps.append("background cancelled")
            raise

    async def started_by_the_last_batch() -> None:
        ran.append("late")  # e.g. a catch-up scheduled by the batch in flight

    role.on_open.append(background)
    role.on_drain.append(started_by_the_last_batch)
    await role.start()
    await asyncio.sleep(0)
    await role.stop()
    assert role.steps == ["stop requested", "drained", "background cancelled", "closed"]
    assert ran == []
    assert not role._tasks


# --- the expiry sweep ---------------------------------------------------------------------


class _Index:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)

    async def expiring(self, p: int, now: int) -> list[bytes]:
        if self.failures:
            raise self.failures.pop(0)
        return [orjson.dumps(["acme", "441234567890", "SMS", None])]


class _Producer:
    def __init__(self, log: list[Any], failures: list[BaseException]) -> None:
        self.log, self.failures = log, failures

    async def start(self) -> None:
        self.log.append(("start", self))

    async def stop(self) -> None:
        self.log.append(("stop", self))

    async def send_and_wait(self, topic: str, value: bytes, **kw: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.log.append(("sent", self))


def sweeper(
    monkeypatch: pytest.MonkeyPatch, index: _Index, *send_failures: BaseException
) -> tuple[ExpirySweeper, list[Any]]:
    log: list[Any] = []
    failures = list(send_failures)
    monkeypatch.setattr(expiry.kafka, "make_producer", lambda s: _Producer(log, failures))
    settings = Settings(expiry=ExpirySettings(sweep_interval_s=0.001))
    return ExpirySweeper(settings, index, lambda: [0]), log  # type: ignore[arg-type]


async def until_sent(task: asyncio.Task[None], log: list[Any]) -> None:
    async def sent() -> None:
        while not any(kind == "sent" for kind, _ in log):
            assert not task.done(), f"the sweep ended: {task.exception()!r}"
            await asyncio.sleep(0.001)

    await asyncio.wait_for(sent(), DEADLINE_S)


async def test_a_failed_send_gets_a_new_producer_and_the_next_sweep_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweep, log = sweeper(monkeypatch, _Index(), KafkaConnectionError("broker gone"))
    await sweep.start()
    task = asyncio.create_task(sweep.run())
    try:
        await until_sent(task, log)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sweep.stop()
    first, second = log[0][1], next(p for kind, p in log if kind == "sent")
    assert first is not second  # the failed producer was replaced
    assert ("stop", first) in log
    assert sweep.postponed == 1


async def test_redis_away_postpones_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep, log = sweeper(monkeypatch, _Index(IndexUnavailable("redis down")))
    await sweep.start()
    task = asyncio.create_task(sweep.run())
    try:
        await until_sent(task, log)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sweep.stop()
    assert sweep.postponed == 1


@pytest.mark.parametrize(
    ("index_failure", "send_failure"),
    [
        (None, TopicAuthorizationFailedError()),  # no retry can fix it
        (ValueError("changelog key is not a list"), None),  # a bug, or bad data
    ],
    ids=["not-authorised", "unexpected-error"],
)
async def test_an_error_no_wait_can_fix_ends_the_sweep_with_it(
    monkeypatch: pytest.MonkeyPatch,
    index_failure: BaseException | None,
    send_failure: BaseException | None,
) -> None:
    index = _Index(*([index_failure] if index_failure else []))
    sweep, _log = sweeper(monkeypatch, index, *([send_failure] if send_failure else []))
    await sweep.start()
    try:
        with pytest.raises(type(index_failure or send_failure)):
            await asyncio.wait_for(sweep.run(), DEADLINE_S)
    finally:
        await sweep.stop()
