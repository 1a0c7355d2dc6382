"""The heartbeat stands for per-partition progress: never a fresh heartbeat with a stuck
partition, unless the role fails closed for a reason its metric shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import TopicPartition

from dnc.kafka.progress import Heartbeat, ProgressWatch, stuck

A, B = TopicPartition("t.outbound", 0), TopicPartition("t.outbound", 1)


def test_a_partition_is_stalled_once_its_records_waited_longer_than_the_bound() -> None:
    watch = ProgressWatch(stall_after_s=60)
    watch.waiting(A, now=100)
    watch.waiting(A, now=130)  # still the same wait: it began at 100
    assert watch.stalled(now=160) == []
    assert watch.stalled(now=160.5) == [A]


def test_a_committed_batch_ends_the_wait() -> None:
    watch = ProgressWatch(stall_after_s=60)
    watch.waiting(A, now=100)
    watch.done(A)
    assert watch.stalled(now=1000) == []
    watch.waiting(A, now=1000)  # new records: a new wait
    assert watch.stalled(now=1059) == []


def test_progress_that_is_not_finished_restarts_the_clock() -> None:
    watch = ProgressWatch(stall_after_s=60)
    watch.waiting(A, now=0)  # a catch-up began
    watch.progressed(A, now=50)  # a chunk applied
    assert watch.stalled(now=100) == []
    assert watch.stalled(now=111) == [A]
    watch.progressed(B, now=111)  # nothing waited for B: nothing to restart
    assert watch.stalled(now=111) == [A]


def test_a_revoked_partition_is_forgotten_and_stalled_ones_come_oldest_first() -> None:
    watch = ProgressWatch(stall_after_s=10)
    watch.waiting(B, now=0)
    watch.waiting(A, now=5)
    assert watch.stalled(now=20) == [B, A]
    watch.forget(B)
    assert watch.stalled(now=20) == [A]


@pytest.mark.parametrize(
    "reason", ["index_incomplete", "index_behind", "redis_unreachable", "kafka_unreachable"]
)
def test_a_reason_the_fail_closed_metric_shows_explains_the_wait(reason: str) -> None:
    assert stuck([A], reason) == []


def test_without_a_reason_a_stalled_partition_is_stuck() -> None:
    assert stuck([A, B], None) == [A, B]
    assert stuck([], None) == []


def test_the_heartbeat_is_touched_when_due_and_never_while_a_partition_is_stuck(
    tmp_path: Path,
) -> None:
    path = tmp_path / "beat"
    beat = Heartbeat("gate", str(path), interval_s=5)
    assert beat.beat(now=100, stuck=[])
    assert path.exists()
    assert not beat.beat(now=102, stuck=[])  # not due yet
    path.unlink()
    assert not beat.beat(now=110, stuck=[A])
    assert not path.exists()
    assert beat.beat(now=111, stuck=[])  # moving again: touched at once
    assert path.exists()


def test_forget_removes_a_file_left_by_a_previous_process(tmp_path: Path) -> None:
    path = tmp_path / "beat"
    path.touch()
    Heartbeat("gate", str(path), interval_s=5).forget()
    assert not path.exists()
    off = Heartbeat("gate", "", interval_s=5)  # no file configured
    off.forget()
    assert not off.beat(now=0, stuck=[])
