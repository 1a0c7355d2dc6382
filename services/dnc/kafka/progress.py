"""The heartbeat file, and the per-partition progress it stands for.

Exec probes restart a ``dnc ingest|listwriter|gate`` process whose heartbeat file is too
old. The pipeline's loop keeps turning while Kafka or Redis are down (poll time-outs,
records put back, back-off), so a loop that turns is not enough: a partition whose records
are put back for ever (no producer, a handler that never accepts it, a catch-up that hangs)
would keep a fresh heartbeat and never be noticed. So the file is touched only while every
owned partition either has nothing waiting, or made progress within
``Settings.stall_after_s``, or waits for a reason ``dnc_fail_closed`` shows (Redis or Kafka
unreachable, the index incomplete or behind: an outage, which never restarts pods).

``ProgressWatch`` keeps, per partition, since when records have waited without a batch of
them committed (or a catch-up chunk applied); it reads no clock, the caller says ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from aiokafka import TopicPartition

log = logging.getLogger(__name__)

# While a partition is stuck, how often to say so again.
STUCK_LOG_EVERY_S = 30.0


class ProgressWatch:
    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        # Partition → since when its records have waited with no progress.
        self._waiting: dict[TopicPartition, float] = {}

    def waiting(self, tp: TopicPartition, now: float) -> None:
        """Records of ``tp`` are waiting (fetched, put back, or its catch-up started)."""
        self._waiting.setdefault(tp, now)

    def progressed(self, tp: TopicPartition, now: float) -> None:
        """Work on ``tp`` moved on (a catch-up chunk applied) but is not finished."""
        if tp in self._waiting:
            self._waiting[tp] = now

    def done(self, tp: TopicPartition) -> None:
        """What waited of ``tp`` was committed (or caught up): nothing known waits."""
        self._waiting.pop(tp, None)

    def forget(self, tp: TopicPartition) -> None:
        """Revoked: its records are the new owner's."""
        self._waiting.pop(tp, None)

    def stalled(self, now: float) -> list[TopicPartition]:
        """Partitions whose records have waited longer than the bound, oldest first."""
        bound = self.stall_after_s
        late = [(since, tp.topic, tp.partition) for tp, since in self._waiting.items()]
        return [TopicPartition(t, p) for since, t, p in sorted(late) if now - since > bound]


def stuck(
    stalled: Sequence[TopicPartition], fail_closed_reason: str | None
) -> list[TopicPartition]:
    """The stalled partitions nothing explains: while the role fails closed for a reason
    the metric shows, waiting is what it should do (and an outage never restarts pods)."""
    return [] if fail_closed_reason is not None else list(stalled)


class Heartbeat:
    """The file exec probes check the age of; touched at most every ``interval_s``, and
    not at all while a partition is stuck."""

    def __init__(self, role: str, path: str, interval_s: float) -> None:
        self.role = role
        self.path = Path(path) if path else None
        self.interval_s = interval_s
        self._beat_at = -interval_s
        self._warned_at = -STUCK_LOG_EVERY_S

    def forget(self) -> None:
        # A file left by a previous container must not pass the next start-up probe.
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def beat(self, now: float, stuck: Sequence[TopicPartition]) -> bool:
        """Touch the file if it is due and nothing is stuck; True if it was touched."""
        if self.path is None or now - self._beat_at < self.interval_s:
            return False
        if stuck:
            if now - self._warned_at >= STUCK_LOG_EVERY_S:
                self._warned_at = now
                log.error(
                    "%s: %s: records waiting and nothing committed for too long, with no "
                    "reason in dnc_fail_closed; the heartbeat file is no longer touched, so "
                    "the liveness probe restarts this process",
                    self.role,
                    ", ".join(f"{tp.topic}:{tp.partition}" for tp in stuck),
                )
            return False
        self._beat_at = now
        try:
            self.path.touch()
        except OSError as exc:
            log.warning("%s: cannot touch heartbeat file %s: %s", self.role, self.path, exc)
            return False
        return True
