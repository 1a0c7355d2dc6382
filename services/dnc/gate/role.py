"""``dnc gate``: every outbound message is checked against the list, exactly once.

Per batch (``getmany``, all assigned partitions): read only the five fields the rule
needs and normalise the destination (``dnc.gate.reader``), ask the in-process filter, and
send the messages it cannot rule out to Redis in ONE Lua call that also returns the
index's offsets and the contacts added since the filter last looked. Then per input
partition, in one Kafka transaction with the consumer offset:

- allowed → ``messages.outbound.allowed`` (or the per-channel topic): the original key,
  value bytes and headers, untouched;
- blocked → ``messages.outbound.blocked``: the original object spliced byte for byte
  into the contract's wrapper, with the most specific blocking entry;
- invalid → ``dnc.dead-letter`` with the field and the problem.

Fails closed: until the index is complete and has caught up with the changelog as it
stood when the gate started (or last lost sight of Redis), and whenever Redis cannot be
read or its offsets go backwards (a restart that lost data, a flush), the batch is put
back and retried: nothing is forwarded unchecked and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import Mapping
from contextlib import AsyncExitStack

from aiokafka import AIOKafkaConsumer, TopicPartition

from dnc.domain.timestamps import format_ms, now_ms
from dnc.errors import (
    ConfigurationError,
    DncError,
    IndexBehind,
    IndexNotReady,
    IndexUnavailable,
)
from dnc.gate.decisions import Decision, Parsed
from dnc.gate.filter import ContactFilter
from dnc.gate.native import load as load_native
from dnc.gate.reader import OutboundReader, Records
from dnc.index import Index, make_index
from dnc.index.meta import IndexMeta, LookupResult
from dnc.kafka import clients as kafka
from dnc.kafka.batches import BatchWriter
from dnc.kafka.deadletter import DeadLetters
from dnc.kafka.failures import Failure, classify
from dnc.kafka.pipeline import TransactionalPipeline
from dnc.kafka.role import PipelineRole
from dnc.metrics import GateMetrics
from dnc.settings import Settings

log = logging.getLogger(__name__)

# While no messages arrive, the index is looked at this often, so that the fail-closed
# metric says within a second or two whether a message would be forwarded now.
PROBE_INTERVAL_S = 0.5


class Gate(PipelineRole):
    name = "gate"
    metrics: GateMetrics

    def __init__(self, settings: Settings, index: Index | None = None) -> None:
        super().__init__(GateMetrics(self.name, enabled=settings.metrics_enabled))
        self.settings = settings
        self.topics = settings.topics
        self.index = index or make_index(settings)
        gs = settings.gate
        native, self.check_impl = load_native(self.index.ids, gs.native_check)
        self.reader = OutboundReader(self.index.filter_mask, self.index.ids, native)
        self.filter = (
            ContactFilter(
                gs.filter_capacity, gs.filter_error_rate, bloom_class=self.reader.bloom_class
            )
            if gs.filter_enabled
            else None
        )
        self.pipeline = TransactionalPipeline(
            settings,
            self.name,
            [settings.topics.outbound],
            self,
            max_records=gs.max_batch,
            poll_timeout_ms=gs.poll_timeout_ms,
            retry_backoff_s=0.05,
            max_backoff_s=0.5,
            metrics=self.metrics,
        )
        self.dead_letters = DeadLetters(settings.topics.dead_letter)
        self.partitions: dict[str, int] = {}
        self._offsets: AIOKafkaConsumer | None = None
        # Fail-closed state: the index must reach `_floor` before we trust it, and its
        # offsets must never go below what we have already seen.
        self._floor: dict[int, int] | None = None
        self._seen: dict[tuple[str, int], int] = {}  # (node tag or "", partition)
        self._epoch: str | None = None
        self._rebuild: asyncio.Task[None] | None = None
        self.counts = {"allowed": 0, "blocked": 0, "dead_letter": 0, "redis_lookups": 0}
        self._probed_at = 0.0

    async def _open(self, exits: AsyncExitStack) -> None:
        self.report_check_impl()
        t = self.topics
        names = [t.allowed, t.blocked, t.dead_letter, t.changes, *kafka.channel_topics(t)]
        self.partitions = await kafka.topic_partitions(self.settings, *names)
        self.dead_letters.partitions = self.partitions[t.dead_letter]
        await self.index.start()
        exits.push_async_callback(self.index.stop)
        self._offsets = offsets = kafka.make_consumer(self.settings, group_id=None)
        await offsets.start()
        exits.push_async_callback(offsets.stop)
        await self.pipeline.start()
        exits.push_async_callback(self.pipeline.stop)

    def report_check_impl(self) -> None:
        """Which per-message check runs (never a silent difference): log and metric."""
        log.info("gate: per-message check: %s", self.check_impl)
        native = self.reader.native is not None
        self.metrics.check_impl.labels("native").set(float(native))
        self.metrics.check_impl.labels("python").set(float(not native))

    # --- Handler ------------------------------------------------------------------------

    async def idle(self) -> None:
        self._maybe_rebuild_filter()
        now = time.monotonic()
        if now - self._probed_at >= PROBE_INTERVAL_S:
            self._probed_at = now
            await self._probe()

    async def handle(self, batch: Records, writers: Mapping[TopicPartition, BatchWriter]) -> None:
        try:
            await self._handle(batch, writers)
        except Exception as exc:
            self._failing(exc)
            raise

    async def _handle(self, batch: Records, writers: Mapping[TopicPartition, BatchWriter]) -> None:
        if self._floor is None:
            self._floor = await self._changelog_end()
        filt = self.filter if self.filter is not None and self.filter.usable else None
        # With per-channel routing an allowed message needs its channel, so it keeps its
        # fields; without, a message the filter rules out is just None.
        compact = not self.topics.allowed_template
        bloom = filt.bloom if filt is not None else None
        decisions, ask, special = self.reader.check(batch, bloom, compact)
        hits = await self._lookup(batch, decisions, ask, special, filt)
        self._write(batch, writers, decisions, special, hits)

    # --- steps --------------------------------------------------------------------------

    def _parse(self, raw: bytes | None) -> Parsed:
        """One message, read carefully (see ``OutboundReader.parse``)."""
        return self.reader.parse(raw)

    async def _lookup(
        self,
        batch: Records,
        decisions: list[Decision],
        ask: list[int],
        special: list[int],
        filt: ContactFilter | None,
    ) -> dict[int, bytes]:
        """One round trip (two in the rare case the filter learned about one of this
        batch's contacts in the same trip). Raises if the index cannot be trusted."""
        version = filt.version if filt is not None else None
        result = await self._query(decisions, ask, version)
        self._trust(result.meta)
        hits = {ask[i]: v for i, v in result.hits.items()}
        if filt is None:
            return hits
        filt.check_meta(result.meta)
        if not filt.usable:
            # Dropped in the middle: we cannot vouch for the messages it ruled out.
            rest = self._ruled_out(batch, decisions, ask, special)
            hits.update(await self._requery(decisions, rest))
            self._maybe_rebuild_filter()
            return hits
        new = filt.add(result.adds, result.version)
        if new:
            keep = self.index.filter_mask
            late = []
            for i in self._ruled_out(batch, decisions, ask, special):
                p = decisions[i]
                assert isinstance(p, tuple)
                if p[4] & keep in new:
                    late.append(i)
            if late:
                hits.update(await self._requery(decisions, late))
        return hits

    def _ruled_out(
        self, batch: Records, decisions: list[Decision], ask: list[int], special: list[int]
    ) -> list[int]:
        """Positions of the messages the filter ruled out, their fields parsed again
        where they were not kept (rare: only when the filter may have been wrong)."""
        if len(special) < len(decisions):
            special[:] = range(len(decisions))
            flat = [r for records in batch.values() for r in records]
            for i, d in enumerate(decisions):
                if d is None:
                    decisions[i] = self._parse(flat[i].value)
        asked = set(ask)
        return [i for i, d in enumerate(decisions) if isinstance(d, tuple) and i not in asked]

    async def _requery(self, decisions: list[Decision], positions: list[int]) -> dict[int, bytes]:
        again = await self._query(decisions, positions, None)
        self._trust(again.meta)
        return {positions[i]: v for i, v in again.hits.items()}

    async def _query(
        self, decisions: list[Decision], positions: list[int], version: bytes | None
    ) -> LookupResult:
        buckets, members, lengths = array("I"), array("i"), array("H")
        fields = []
        mask = self.index.mask
        for i in positions:
            p = decisions[i]
            assert isinstance(p, tuple)
            fp, field = p[4], p[5]
            buckets.append(fp & mask)
            members.append((fp >> 32) - 0x80000000)  # as Layout.locate
            lengths.append(len(field))
            fields.append(field)
        self.counts["redis_lookups"] += len(positions)
        try:
            result = await self.index.lookup(buckets, members, lengths, b"".join(fields), version)
        except IndexUnavailable:
            self._floor = None  # after Redis comes back, catch up with the changelog first
            raise
        self.metrics.lookups.inc(len(positions))
        self.metrics.lookup_hits.inc(len(result.hits))
        return result

    def _trust(self, meta: IndexMeta) -> None:
        """Raise IndexNotReady unless the index is complete, not behind where it must be,
        and has not gone backwards."""
        if not meta.complete():
            self._floor = None
            raise IndexNotReady("index is empty or being rebuilt; waiting")
        if meta.layout != self.index.layout:
            # Other buckets or other contact-id keys: every lookup would miss. Stop loudly.
            raise ConfigurationError(
                f"the index at prefix {self.index.prefix!r} has layout {meta.layout!r}, this "
                f"gate computes {self.index.layout!r}: check DNC_INDEX__BUCKETS and "
                "DNC_PRIVACY__KEYS (all roles must share them)"
            )
        if self._epoch is not None and meta.epoch != self._epoch:
            log.warning(
                "gate: index epoch changed (%s → %s): waiting for it to catch up",
                self._epoch,
                meta.epoch,
            )
            self._epoch, self._floor, self._seen = meta.epoch, None, {}
            raise IndexNotReady("index was re-initialised; waiting for it to catch up")
        # Per node on a cluster: a node that lost its last writes is noticed even while
        # another node holds the partition's minimum.
        watermarks = meta.watermarks()
        seen = self._seen
        for where, offset in watermarks.items():
            if offset < seen.get(where, 0):
                log.warning(
                    "gate: index went back on partition %d%s (%d < %d): it lost data",
                    where[1],
                    f" of node {where[0]}" if where[0] else "",
                    offset,
                    seen[where],
                )
                self._floor = None
                raise IndexNotReady("index lost data; waiting for it to be replayed")
        floor = self._floor or {}
        behind = {
            p: (meta.changes.get(p, -1), need)
            for p, need in floor.items()
            if meta.changes.get(p, -1) < need
        }
        if behind:
            raise IndexBehind(f"index behind the changelog: {behind}")
        self._epoch = meta.epoch
        for where, offset in watermarks.items():
            if offset > seen.get(where, 0):
                seen[where] = offset

    def _write(
        self,
        batch: Records,
        writers: Mapping[TopicPartition, BatchWriter],
        decisions: list[Decision],
        special: list[int],
        hits: dict[int, bytes],
    ) -> None:
        t, parts = self.topics, self.partitions
        now = now_ms()
        checked_at = format_ms(now).encode()
        template = t.allowed_template
        allowed_topic = t.allowed
        blocked_topic, blocked_parts = t.blocked, parts[t.blocked]
        blocked = self.reader.blocked
        counts = self.counts
        base = 0  # position of the partition's first record in `decisions`
        k = 0  # next index into `special`
        for tp, records in batch.items():
            # Outcomes per partition (counted in metrics when its transaction commits).
            allowed0, blocked0 = counts["allowed"], counts["blocked"]
            append = writers[tp].append
            allowed_partition = tp.partition % parts[allowed_topic]
            end = base + len(records)
            done = 0  # records of this partition written so far
            while True:
                nxt = special[k] if k < len(special) else end
                stop = min(nxt, end) - base
                # The messages the filter ruled out, in a run: the common case.
                for r in records[done:stop]:
                    append(allowed_topic, allowed_partition, r.key, r.value, r.headers)
                counts["allowed"] += stop - done
                if nxt >= end:
                    break
                k += 1
                r = records[stop]
                done = stop + 1
                d = decisions[nxt]
                if isinstance(d, str):
                    counts["dead_letter"] += 1
                    self.dead_letters.append(writers[tp], r, d, "invalid_message")
                    continue
                assert d is not None
                raw = hits.get(nxt)
                assert r.value is not None
                value = None if raw is None else blocked(d, raw, r.value, now, checked_at)
                if value is None:
                    counts["allowed"] += 1
                    topic = template.format(channel=d[1].lower()) if template else allowed_topic
                    append(topic, r.partition % parts[topic], r.key, r.value, r.headers)
                else:
                    counts["blocked"] += 1
                    append(blocked_topic, tp.partition % blocked_parts, r.key, value, r.headers)
            base = end
            tally = writers[tp].tally
            tally["allowed"] = counts["allowed"] - allowed0
            tally["blocked"] = counts["blocked"] - blocked0

    # --- fail-closed state -----------------------------------------------------------

    def _failing(self, exc: BaseException) -> None:
        """Say in the fail-closed metric why the batch is held back."""
        closed = self.metrics.fail_closed
        if isinstance(exc, IndexUnavailable):
            closed.enter("redis_unreachable")
        elif isinstance(exc, IndexBehind):
            closed.enter("index_behind")
        elif isinstance(exc, IndexNotReady):
            closed.enter("index_incomplete")
        elif not isinstance(exc, DncError) and classify(exc) is Failure.RETRY:
            closed.enter("kafka_unreachable")  # the changelog's end could not be read

    async def _probe(self) -> None:
        """No messages: look at the index as the next batch would, and say in the
        fail-closed metric whether it would be forwarded (an error no wait can fix stops
        the role, as in a batch)."""
        try:
            if self._floor is None:
                self._floor = await self._changelog_end()
            try:
                meta = await self.index.meta()
            except IndexUnavailable:
                self._floor = None
                raise
            self._trust(meta)
        except Exception as exc:
            if classify(exc) is Failure.FATAL:
                raise
            self._failing(exc)
            return
        if not self.pipeline.producers.failing:
            self.metrics.fail_closed.clear()
        filt = self.filter
        if filt is not None:
            self.metrics.filter_usable.set(float(filt.usable))
            self.metrics.filter_contacts.set(filt.added_since_build)

    # --- helpers ------------------------------------------------------------------------

    async def _changelog_end(self) -> dict[int, int]:
        assert self._offsets is not None
        n = self.partitions[self.topics.changes]
        tps = [TopicPartition(self.topics.changes, p) for p in range(n)]
        ends = await self._offsets.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}

    def _maybe_rebuild_filter(self) -> None:
        if self.filter is None or (self._rebuild is not None and not self._rebuild.done()):
            return
        if self._floor is None or not self.filter.needs_rebuild():
            return
        self._rebuild = self.spawn(self._rebuild_filter(), "contact filter rebuild")

    async def _rebuild_filter(self) -> None:
        assert self.filter is not None
        try:
            await self.filter.rebuild(self.index)
        except DncError as exc:
            if not exc.retriable:
                raise
            log.warning("gate: filter rebuild postponed: %s", exc)
            return
        self.metrics.filter_rebuilds.inc()
