"""``dnc gate``: every outbound message is checked against the list, exactly once.

Per batch (``getmany``, all assigned partitions): parse only the five fields the rule
needs, normalise the destination (fast path for canonical numbers), ask the in-process
filter, and send the messages it cannot rule out to Redis in ONE Lua call that also
returns the index's offsets and the contacts added since the filter last looked. Then
per input partition, in one Kafka transaction with the consumer offset:

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
import json
import logging
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc import kafka
from dnc.contactfilter import ContactFilter
from dnc.contacts import destination_key, normalise_sender, parse_channel
from dnc.entries import Entry, blocking_entries
from dnc.errors import (
    DuplicateField,
    IndexNotReady,
    IndexUnavailable,
    InvalidValue,
    MissingField,
    NotJson,
)
from dnc.events import account_ok
from dnc.index import Index, IndexMeta, unpack_entries
from dnc.kafka import BatchWriter, Sent
from dnc.pipeline import TransactionalPipeline
from dnc.settings import Settings
from dnc.timestamps import format_ms, now_ms

log = logging.getLogger(__name__)

_REQUIRED = ("message_id", "account", "channel", "sender", "destination")
_KEY_PATTERNS = tuple(f'"{f}"'.encode() for f in _REQUIRED)
_CHANNELS = {c: c for c in ("SMS", "MMS", "VOICE", "VIBER", "WHATSAPP", "RCS", "EMAIL")}
_CACHE_LIMIT = 100_000

# account, channel, sender, contact (all canonical), bucket, member, field
Parsed = tuple[str, str, str, str, int, int, bytes]


class Gate:
    def __init__(self, settings: Settings, index: Index | None = None) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.index = index or Index(settings.index, settings.redis_url)
        gs = settings.gate
        self.filter = (
            ContactFilter(gs.filter_capacity, gs.filter_error_rate) if gs.filter_enabled else None
        )
        self.pipeline = TransactionalPipeline(
            settings,
            "gate",
            [settings.topics.outbound],
            self,
            max_records=gs.max_batch,
            poll_timeout_ms=gs.poll_timeout_ms,
            retry_backoff_s=0.05,
            max_backoff_s=0.5,
        )
        self.partitions: dict[str, int] = {}
        self._offsets: AIOKafkaConsumer | None = None
        # Fail-closed state: the index must reach `_floor` before we trust it, and its
        # offsets must never go below what we have already seen.
        self._floor: dict[int, int] | None = None
        self._seen: dict[int, int] = {}
        self._epoch: str | None = None
        self._rebuild: asyncio.Task[None] | None = None
        self._senders: dict[str, str | None] = {}
        self._accounts: set[str] = set()
        self.counts = {"allowed": 0, "blocked": 0, "dead_letter": 0, "redis_lookups": 0}

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        t = self.topics
        names = [t.allowed, t.blocked, t.dead_letter, t.changes]
        if t.allowed_template:
            names += [t.allowed_template.format(channel=c.lower()) for c in _CHANNELS]
        self.partitions = await kafka.topic_partitions(self.settings, *names)
        await self.index.start()
        self._offsets = kafka.make_consumer(self.settings, group_id=None)
        await self._offsets.start()
        await self.pipeline.start()

    async def run(self) -> None:
        await self.pipeline.run()

    def request_stop(self) -> None:
        self.pipeline.request_stop()

    async def stop(self) -> None:
        await self.pipeline.stop()
        if self._rebuild is not None:
            self._rebuild.cancel()
            await asyncio.gather(self._rebuild, return_exceptions=True)
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None
        await self.index.stop()

    async def __aenter__(self) -> Gate:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- Handler ------------------------------------------------------------------------

    def accepts(self, tp: TopicPartition) -> bool:
        return True

    async def assigned(self, tps: set[TopicPartition]) -> None:
        log.info("gate: assigned partitions %s", sorted(tp.partition for tp in tps))

    async def revoked(self, tps: set[TopicPartition]) -> None:
        log.info("gate: revoked partitions %s", sorted(tp.partition for tp in tps))

    async def committed(self, tp: TopicPartition, records: Sequence[Any], sent: list[Sent]) -> None:
        return None

    async def idle(self) -> None:
        self._maybe_rebuild_filter()

    async def handle(
        self,
        batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        writers: Mapping[TopicPartition, BatchWriter],
    ) -> None:
        if self._floor is None:
            self._floor = await self._changelog_end()
        locate = self.index.locate
        filt = self.filter if self.filter is not None and self.filter.usable else None
        parsed: list[Parsed | str] = []  # per record: fields, or the error text
        ask: list[int] = []  # positions that must be looked up in Redis
        for records in batch.values():
            for r in records:
                try:
                    account, channel, sender, contact = self._parse(r.value)
                except (InvalidValue, NotJson) as exc:
                    parsed.append(str(exc))
                    continue
                bucket, member, field = locate(account, contact)
                if filt is None or filt.might_contain((bucket << 32) | (member & 0xFFFFFFFF)):
                    ask.append(len(parsed))
                parsed.append((account, channel, sender, contact, bucket, member, field))
        hits = await self._lookup(parsed, ask, filt)
        self._write(batch, writers, parsed, hits)

    # --- steps --------------------------------------------------------------------------

    def _parse(self, raw: bytes | None) -> tuple[str, str, str, str]:
        """The five fields the rule needs, checked as ``events.OutboundMessage`` checks
        them, normalised as ``dnc.contacts`` does at write time."""
        if raw is None:
            raise NotJson("value: is empty (null record)")
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            d = _loads_fallback(raw, exc)
        if type(d) is not dict:
            raise NotJson(f"value: must be a JSON object, not {type(d).__name__}")
        if b"\\u" in raw or any(raw.count(p) > 1 for p in _KEY_PATTERNS):
            _refuse_duplicate_fields(raw)
        values = []
        for name in _REQUIRED:
            v = d.get(name)
            if v is None:
                raise MissingField(name)
            if type(v) is not str:
                raise InvalidValue(name, v, f"must be a string, not {type(v).__name__}")
            values.append(v)
        message_id, account, channel, sender, destination = values
        if not 0 < len(message_id) <= 256:
            raise InvalidValue("message_id", message_id, "must be 1-256 characters")
        if account not in self._accounts:
            if not account_ok(account):
                raise InvalidValue(
                    "account", account, "must be 1-128 printable characters without spaces"
                )
            if len(self._accounts) < _CACHE_LIMIT:
                self._accounts.add(account)
        ch = _CHANNELS.get(channel)
        if ch is None:
            parsed_channel = parse_channel(channel, allow_all=False)
            assert parsed_channel is not None
            ch = parsed_channel.value
        s = self._senders.get(sender, "")
        if s == "":
            s = normalise_sender(sender)
            if s is None:
                raise InvalidValue("sender", sender, "must not be empty")
            if len(self._senders) >= _CACHE_LIMIT:
                self._senders.clear()
            self._senders[sender] = s
        assert s is not None
        return account, ch, s, destination_key(destination)

    async def _lookup(
        self, parsed: list[Parsed | str], ask: list[int], filt: ContactFilter | None
    ) -> dict[int, bytes]:
        """One round trip (two in the rare case the filter learned about one of this
        batch's contacts in the same trip). Raises if the index cannot be trusted."""
        version = filt.version if filt is not None else None
        result = await self._query(parsed, ask, version)
        self._trust(result.meta)
        hits = {ask[i]: v for i, v in result.hits.items()}
        if filt is not None:
            filt.check_meta(result.meta)
            if not filt.usable:
                # Dropped in the middle: we cannot vouch for the messages it ruled out.
                rest = [
                    i for i, p in enumerate(parsed) if not isinstance(p, str) and i not in set(ask)
                ]
                again = await self._query(parsed, rest, None)
                self._trust(again.meta)
                hits.update({rest[i]: v for i, v in again.hits.items()})
                self._maybe_rebuild_filter()
                return hits
            new = filt.add(result.adds)
            if new:
                asked = set(ask)
                late = [
                    i
                    for i, p in enumerate(parsed)
                    if not isinstance(p, str)
                    and i not in asked
                    and ((p[4] << 32) | (p[5] & 0xFFFFFFFF)) in new
                ]
                if late:
                    again = await self._query(parsed, late, None)
                    self._trust(again.meta)
                    hits.update({late[i]: v for i, v in again.hits.items()})
        return hits

    async def _query(
        self, parsed: list[Parsed | str], positions: list[int], version: bytes | None
    ) -> Any:
        buckets, members, lengths = array("I"), array("i"), array("H")
        fields = []
        for i in positions:
            p = parsed[i]
            assert not isinstance(p, str)
            buckets.append(p[4])
            members.append(p[5])
            lengths.append(len(p[6]))
            fields.append(p[6])
        self.counts["redis_lookups"] += len(positions)
        try:
            return await self.index.lookup(buckets, members, lengths, b"".join(fields), version)
        except IndexUnavailable:
            self._floor = None  # after Redis comes back, catch up with the changelog first
            raise

    def _trust(self, meta: IndexMeta) -> None:
        """Raise IndexNotReady unless the index is complete, not behind where it must be,
        and has not gone backwards."""
        if not meta.complete():
            self._floor = None
            raise IndexNotReady("index is empty or being rebuilt; waiting")
        if self._epoch is not None and meta.epoch != self._epoch:
            log.warning(
                "gate: index epoch changed (%s → %s): waiting for it to catch up",
                self._epoch,
                meta.epoch,
            )
            self._epoch, self._floor, self._seen = meta.epoch, None, {}
            raise IndexNotReady("index was re-initialised; waiting for it to catch up")
        for p, offset in meta.changes.items():
            if offset < self._seen.get(p, 0):
                log.warning(
                    "gate: index went back on partition %d (%d < %d): it lost data",
                    p,
                    offset,
                    self._seen[p],
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
            raise IndexNotReady(f"index behind the changelog: {behind}")
        self._epoch = meta.epoch
        for p, offset in meta.changes.items():
            if offset > self._seen.get(p, 0):
                self._seen[p] = offset

    def _write(
        self,
        batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        writers: Mapping[TopicPartition, BatchWriter],
        parsed: list[Parsed | str],
        hits: dict[int, bytes],
    ) -> None:
        t, parts = self.topics, self.partitions
        now = now_ms()
        checked_at = format_ms(now).encode()
        template = t.allowed_template
        i = 0
        for tp, records in batch.items():
            out = writers[tp]
            for r in records:
                p = parsed[i]
                raw = hits.get(i)
                i += 1
                if isinstance(p, str):
                    self.counts["dead_letter"] += 1
                    out.append(
                        t.dead_letter,
                        r.partition % parts[t.dead_letter],
                        r.key,
                        kafka.dead_letter_value(
                            tp.topic, tp.partition, r.offset, p, r.value, key=r.key
                        ),
                    )
                    continue
                entry = _blocking(p, raw, now) if raw is not None else None
                if entry is None:
                    self.counts["allowed"] += 1
                    topic = template.format(channel=p[1].lower()) if template else t.allowed
                    out.append(topic, r.partition % parts[topic], r.key, r.value, r.headers)
                else:
                    self.counts["blocked"] += 1
                    assert r.value is not None
                    value = (
                        b'{"message":'
                        + r.value
                        + b',"reason":"DO_NOT_CONTACT","entry":'
                        + orjson.dumps(entry.to_dict(origin=False))
                        + b',"checked_at":"'
                        + checked_at
                        + b'"}'
                    )
                    out.append(t.blocked, r.partition % parts[t.blocked], r.key, value, r.headers)

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
        self._rebuild = asyncio.create_task(self._rebuild_filter(), name="filter-rebuild")

    async def _rebuild_filter(self) -> None:
        assert self.filter is not None
        try:
            await self.filter.rebuild(self.index)
        except IndexUnavailable as exc:
            log.warning("gate: filter rebuild postponed: %s", exc)


def _blocking(p: tuple[Any, ...], raw: bytes, now: int) -> Entry | None:
    account, channel, sender, contact = p[0], p[1], p[2], p[3]
    found = blocking_entries(unpack_entries(account, contact, raw), channel, sender, now)
    return found[0] if found else None


def _loads_fallback(raw: bytes, exc: orjson.JSONDecodeError) -> Any:
    """orjson refuses integers beyond 64 bits, which are valid JSON; the stdlib does not."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise NotJson(f"value: is not valid JSON ({exc.msg} at position {exc.pos})") from None


def _refuse_duplicate_fields(raw: bytes) -> None:
    """A field given twice (possibly spelled with \\u escapes) is ambiguous: a sender might
    read the other value than we checked. Such a message is never forwarded."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [k for k, _ in pairs if k in _REQUIRED]
        if len(names) != len(set(names)):
            dup = next(n for n in names if names.count(n) > 1)
            raise DuplicateField(dup)
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except InvalidValue:
        raise
    except (ValueError, RecursionError):
        raise NotJson("value: is not valid JSON") from None
