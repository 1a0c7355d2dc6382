"""The Redis index: key layout, entry packing, and the atomic scripts that read and write it.

Layout (``<p>`` = prefix, ``<b>`` = bucket; the braces are a Redis Cluster hash tag, so
everything one lookup touches lives in one slot):

- ``<p>:g:{<b>}`` SET of int32 members, intset-encoded (4 bytes per contact): which
  (account, contact) pairs of the bucket have at least one entry. The gate's lookup
  structure. The member is 32 bits of a 64-bit hash, so two contacts may share one;
  ``<p>:gc:{<b>}`` counts the extra holders so removing one never hides the other, and a
  hit is always confirmed against the exact field below.
- ``<p>:m:{<b>}`` HASH, listpack-encoded: field ``account␟<16-byte contact id>`` (see
  ``dnc.contactids``; Redis never holds a contact) → the contact's entries packed as
  ``channel␟sender␟source␟added_at␟expires_at`` records separated by ␞.
- ``<p>:meta`` HASH: ``epoch`` (new each time an empty index is initialised), ``layout``,
  ``parts``, and per changelog partition ``chg:<n>`` (next changelog offset to apply) and
  ``cmd:<n>`` (next command offset to process). Offsets change in the same script as data
  (``apply.lua`` for the list writer's commands, ``replay.lua`` for its catch-up).
- ``<p>:adds`` STREAM of contacts that gained their first entry (last 10 minutes), which
  keeps the gates' in-process filters exact without reading the changelog.
"""

from __future__ import annotations

import secrets
import struct
from array import array
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
import xxhash
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dnc.contactids import ContactIds
from dnc.entries import Entry, EntryKey, Source
from dnc.errors import ConfigurationError, IndexDiverged, IndexUnavailable
from dnc.settings import IndexSettings, Settings

SEP = "\x1f"  # between fields of a record (and in ``account␟contact``)
REC = "\x1e"  # between records

CHANNEL_CODE = {
    "SMS": "S",
    "MMS": "M",
    "VOICE": "V",
    "VIBER": "B",
    "WHATSAPP": "W",
    "RCS": "R",
    "EMAIL": "E",
    None: "*",
}
CODE_CHANNEL = {v: k for k, v in CHANNEL_CODE.items()}
SOURCE_CODE = {
    Source.END_USER_MESSAGE: "U",
    Source.CAMPAIGN_ACTION: "C",
    Source.URL_OPT_OUT: "L",
    Source.MANUAL: "M",
    Source.IMPORT: "I",
    Source.CHANNEL_SIGNAL: "D",
}
CODE_SOURCE = {v: k for k, v in SOURCE_CODE.items()}

_PARTITION_SEED = 0x5EED
_SEP_BYTES = SEP.encode()


def contact_field(account: str, cid: bytes) -> bytes:
    """The index field of a contact: the account and its contact id (``dnc.contactids``).
    No contact is ever stored in Redis, in either mode."""
    return account.encode() + _SEP_BYTES + cid


def account_prefix(account: str) -> bytes:
    return account.encode() + _SEP_BYTES


def fingerprint(field_bytes: bytes) -> int:
    return xxhash.xxh3_64_intdigest(field_bytes)


def filter_key(bucket: int, member: int) -> int:
    """See ``Index.filter_key``."""
    return ((member + 0x80000000) << 32) | bucket


def list_partition(field_bytes: bytes, partitions: int) -> int:
    """Partition of ``dnc.commands`` / ``dnc.changes`` that owns a contact (by its field,
    so a contact and its stored id land in the same partition)."""
    return xxhash.xxh3_64_intdigest(field_bytes, _PARTITION_SEED) % partitions


def entry_slot(channel: str | None, sender: str | None) -> str:
    """The start of a packed entry that identifies it within its contact."""
    return f"{CHANNEL_CODE[channel]}{SEP}{sender or ''}{SEP}"


def pack_entries(entries: Iterable[Entry]) -> bytes:
    """The lower-case source code marks an entry stored under the contact's id."""
    out = []
    for e in entries:
        k = e.key
        code = SOURCE_CODE[e.source]
        out.append(  # entry_slot() inline: this runs per entry of every changed contact
            f"{CHANNEL_CODE[k.channel]}{SEP}{k.sender or ''}{SEP}"
            f"{code.lower() if e.stored_as_id else code}"
            f"{SEP}{e.added_at}{SEP}{'' if e.expires_at is None else e.expires_at}"
        )
    return REC.join(out).encode()


def unpack_entries(
    account: str, contact: str, raw: bytes, stored_id: str | None = None
) -> list[Entry]:
    """The entries of a contact. ``stored_id`` (the contact's id as the changelog stores
    it) becomes the key of entries stored under the id; without it they keep
    ``contact``."""
    entries = []
    for rec in raw.decode().split(REC):
        ch, sender, src, added, expires = rec.split(SEP)
        as_id = src.islower()
        entries.append(
            Entry(
                EntryKey(
                    account,
                    stored_id if as_id and stored_id else contact,
                    CODE_CHANNEL[ch],
                    sender or None,
                ),
                CODE_SOURCE[src.upper()],
                int(added),
                None,
                int(expires) if expires else None,
                as_id,
            )
        )
    return entries


@dataclass(slots=True)
class IndexMeta:
    """What the index says about itself. ``epoch`` None = empty index."""

    epoch: str | None = None
    layout: str | None = None
    parts: int | None = None
    changes: dict[int, int] = field(default_factory=dict)
    commands: dict[int, int] = field(default_factory=dict)
    adds_floor: int = 0

    @classmethod
    def from_flat(cls, flat: Sequence[bytes]) -> IndexMeta:
        meta = cls()
        for i in range(0, len(flat), 2):
            name, value = flat[i].decode(), flat[i + 1].decode()
            if name == "epoch":
                meta.epoch = value
            elif name == "layout":
                meta.layout = value
            elif name == "parts":
                meta.parts = int(value)
            elif name.startswith("chg:"):
                meta.changes[int(name[4:])] = int(value)
            elif name.startswith("cmd:"):
                meta.commands[int(name[4:])] = int(value)
            elif name == "adds_floor":
                meta.adds_floor = int(value)
        return meta

    def complete(self) -> bool:
        """Every changelog partition has been applied at least up to its start."""
        return (
            self.epoch is not None
            and self.parts is not None
            and all(p in self.changes for p in range(self.parts))
        )


@dataclass(slots=True)
class ContactUpdate:
    """The new packed entries of one contact ("" = no entries left)."""

    bucket: int
    member: int
    field: bytes
    value: bytes


@dataclass(slots=True)
class LookupResult:
    meta: IndexMeta
    hits: dict[int, bytes]  # position in the batch → packed entries
    adds: list[tuple[bytes, bytes]] | None  # (stream id, blob) after the requested id


class Layout:
    """Where a contact lives: its field, bucket, member and list partition. Pure (no
    Redis), so the roles that only produce commands use it too."""

    def __init__(self, settings: IndexSettings, ids: ContactIds | None = None) -> None:
        if settings.buckets & (settings.buckets - 1):
            raise ConfigurationError(
                f"index buckets must be a power of two, not {settings.buckets}"
            )
        self.settings = settings
        self.ids = ids or ContactIds([])
        self._mask = settings.buckets - 1
        # The key chain is part of the layout: a role with other contact-id keys would
        # look up other fields, so the index refuses it (see init.lua / Gate._trust).
        probe = self.ids.cid("dnc layout probe").hex()[:12]
        self.layout = f"v2;buckets={settings.buckets};ids={probe}"

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.index, contact_ids(settings))

    def field(self, account: str, contact: str) -> bytes:
        return contact_field(account, self.ids.cid(contact))

    def partition(self, account: str, contact: str, partitions: int) -> int:
        return list_partition(self.field(account, contact), partitions)

    def locate(self, account: str, contact: str) -> tuple[int, int, bytes]:
        """(bucket, member, field) of a contact."""
        f = self.field(account, contact)
        fp = xxhash.xxh3_64_intdigest(f)
        return fp & self._mask, (fp >> 32) - 0x80000000, f

    def filter_key(self, bucket: int, member: int) -> int:
        """The integer the gates' in-process filter stores for a contact: the bits of its
        fingerprint the index keeps, i.e. ``fingerprint & filter_mask``, so the gate gets
        it from a fingerprint with one AND."""
        return filter_key(bucket, member)

    @property
    def mask(self) -> int:
        return self._mask

    @property
    def filter_mask(self) -> int:
        return 0xFFFFFFFF00000000 | self._mask


def contact_ids(settings: Settings) -> ContactIds:
    """The deployment's contact ids: every role must build them the same way."""
    return ContactIds(
        [k.get_secret_value() for k in settings.privacy.keys], required=settings.privacy.enabled
    )


class Index(Layout):
    """Async access to the index. One instance per process; ``start``/``stop`` idempotent."""

    def __init__(
        self, settings: IndexSettings, redis_url: str, ids: ContactIds | None = None
    ) -> None:
        super().__init__(settings, ids)
        self.prefix = settings.prefix
        self._redis_url = redis_url
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self.meta_key = f"{self.prefix}:meta"

    @classmethod
    def from_settings(cls, settings: Settings) -> Index:
        return cls(settings.index, settings.redis_url, contact_ids(settings))

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        timeout = self.settings.redis_timeout_s
        self._client = aioredis.Redis.from_url(
            self._redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
        )
        for name in ("apply", "init", "load", "lookup", "replay"):
            text = resources.files("dnc").joinpath("lua", f"{name}.lua").read_text()
            self._scripts[name] = self._client.register_script(text)

    async def stop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> Index:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def redis(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("Index is not started")
        return self._client

    # --- operations -----------------------------------------------------------------

    async def _call(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self._scripts[name](keys=keys, args=args)
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("DIVERGED"):
                raise IndexDiverged(text) from None
            if text.startswith("LAYOUT"):
                raise ConfigurationError(
                    f"{text}: every role must use the same DNC_INDEX__BUCKETS and "
                    "DNC_PRIVACY__KEYS; to change them, build a new index under a new "
                    "DNC_INDEX__PREFIX (it is rebuilt from dnc.changes) and switch the roles"
                ) from None
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        except RedisError as exc:
            if "LOADING" in str(exc) or "BUSY" in str(exc):
                raise IndexUnavailable(f"redis: {exc}") from exc
            raise

    async def init(self, parts: int) -> str:
        """Initialise an empty index (or accept an existing one); return its epoch."""
        epoch = await self._call(
            "init", [self.meta_key], [secrets.token_hex(8), self.layout, parts]
        )
        return bytes(epoch).decode()

    async def meta(self) -> IndexMeta:
        try:
            flat = await self.redis.hgetall(self.meta_key)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        return IndexMeta.from_flat([_b(x) for kv in flat.items() for x in kv])

    async def load(
        self, fields: Sequence[tuple[int, bytes]]
    ) -> tuple[IndexMeta, list[bytes | None]]:
        args: list[Any] = [self.prefix]
        for bucket, f in fields:
            args.append(bucket)
            args.append(f)
        flat, values = await self._call("load", [self.meta_key], args)
        return IndexMeta.from_flat(flat), [v or None for v in values]

    async def apply(
        self,
        *,
        epoch: str,
        partition: int,
        expected: int | None,
        new_offset: int,
        new_command_offset: int | None,
        updates: Sequence[ContactUpdate],
        now: int,
        counters: Mapping[tuple[str, str], int] | None = None,
        expiry: Sequence[tuple[bytes, int | None]] = (),
    ) -> None:
        blob = bytearray()
        progress = _progress(counters)
        args: list[Any] = [
            self.prefix,
            epoch,
            partition,
            "" if expected is None else expected,
            new_offset,
            "" if new_command_offset is None else new_command_offset,
            now,
            b"",
            progress,
            _expiry(expiry),
        ]
        for u in updates:
            args += (u.bucket, u.member, u.field, u.value)
            if u.value:
                blob += struct.pack("<Ii", u.bucket, u.member)
        # Every contact that now has entries is announced (a superset of "new" ones is
        # harmless: the gates' filters only ever grow between rebuilds).
        args[7] = bytes(blob)
        await self._call("apply", [self.meta_key], args)

    async def replay(
        self,
        *,
        epoch: str,
        partition: int,
        expected: int | None,
        new_offset: int,
        records: list[Any],
        now: int,
        counters: Mapping[tuple[str, str], int] | None = None,
        expiry: Sequence[tuple[bytes, int | None]] = (),
    ) -> None:
        """Merge changelog records into the index (``replay.lua``), with chg:partition =
        new_offset. ``records``: 5 items per record, in changelog order: bucket, member,
        field, ``entry_slot(channel, sender)``, the packed entry or "" (removed)."""
        args: list[Any] = [
            self.prefix,
            epoch,
            partition,
            "" if expected is None else expected,
            new_offset,
            now,
            _progress(counters),
            _expiry(expiry),
        ]
        args += records
        await self._call("replay", [self.meta_key], args)

    async def lookup(
        self,
        buckets: array[int],
        members: array[int],
        lengths: array[int],
        fields: bytes,
        adds_after: bytes | None,
    ) -> LookupResult:
        meta_flat, hits_flat, adds = await self._call(
            "lookup",
            [self.meta_key],
            [
                self.prefix,
                buckets.tobytes(),
                members.tobytes(),
                lengths.tobytes(),
                fields,
                adds_after or b"",
            ],
        )
        hits = {int(hits_flat[i]): hits_flat[i + 1] for i in range(0, len(hits_flat), 2)}
        add_list = None
        if adds_after is not None:
            add_list = [(eid, kv[1]) for eid, kv in adds]
        return LookupResult(IndexMeta.from_flat(meta_flat), hits, add_list)

    async def entries_of(self, account: str, contact: str) -> list[Entry]:
        """All entries of one contact in one account (the check endpoint)."""
        bucket, _member, f = self.locate(account, contact)
        try:
            raw = await self.redis.hget(f"{self.prefix}:m:{{{bucket}}}", f)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        return unpack_entries(account, contact, _b(raw)) if raw else []

    async def entries_of_many(
        self, account: str, contacts: Sequence[str], chunk: int = 5000
    ) -> list[list[Entry]]:
        """Entries of many contacts of one account (audience dry run, batch check): one
        round trip per ``chunk`` contacts, through the same script the list writer reads
        with. Contacts must be canonical (``dnc.contacts``) or stored ids."""
        out: list[list[Entry]] = []
        for start in range(0, len(contacts), chunk):
            part = contacts[start : start + chunk]
            located = [self.locate(account, c) for c in part]
            _meta, values = await self.load([(b, f) for b, _m, f in located])
            out.extend(
                unpack_entries(account, c, raw) if raw else []
                for c, raw in zip(part, values, strict=True)
            )
        return out

    async def expiring(self, partition: int, now: int, limit: int = 500) -> list[bytes]:
        """Changelog keys of partition's entries that have expired by ``now``."""
        try:
            keys = await self.redis.zrangebyscore(
                f"{self.prefix}:x:{partition}", "-inf", now, start=0, num=limit
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc
        return [k if isinstance(k, bytes) else str(k).encode() for k in keys]

    async def progress(self, ref: str) -> dict[str, int]:
        raw = await self.redis.hgetall(f"{self.prefix}:ref:{ref}")
        return {_b(k).decode(): int(v) for k, v in raw.items()}

    async def last_add_id(self) -> bytes:
        last = await self.redis.xrevrange(f"{self.prefix}:adds", count=1)
        return _b(last[0][0] or b"0-0") if last else b"0-0"

    async def contact_count(self, chunk: int = 4096) -> int:
        """How many contacts the lookup sets hold (sizes a gate's filter)."""
        total = 0
        buckets = self.settings.buckets
        for start in range(0, buckets, chunk):
            pipe = self.redis.pipeline(transaction=False)
            for b in range(start, min(start + chunk, buckets)):
                pipe.scard(f"{self.prefix}:g:{{{b}}}")
            total += sum(await pipe.execute())
        return total

    async def filter_keys(self, chunk: int = 256) -> AsyncIterator[list[int]]:
        """Every contact of the index as filter keys, a few buckets at a time (a gate's
        filter is built from them without holding 10M Python ints at once)."""
        buckets = self.settings.buckets
        for start in range(0, buckets, chunk):
            pipe = self.redis.pipeline(transaction=False)
            for b in range(start, min(start + chunk, buckets)):
                pipe.smembers(f"{self.prefix}:g:{{{b}}}")
            out: list[int] = []
            for bucket, members in enumerate(await pipe.execute(), start):
                # filter_key(bucket, m), inlined: this runs once per contact of the list.
                out.extend(((int(m) + 0x80000000) << 32) | bucket for m in members)
            yield out


def _expiry(changes: Sequence[tuple[bytes, int | None]]) -> bytes:
    return b"\x1e".join(
        k + b"\x1f" + (b"" if ms is None else str(ms).encode()) for k, ms in changes
    )


def _progress(counters: Mapping[tuple[str, str], int] | None) -> str:
    return REC.join(f"{ref}{SEP}{name}{SEP}{n}" for (ref, name), n in (counters or {}).items())


def _b(value: bytes | str) -> bytes:
    """The client returns bytes (decode_responses is off); narrow the declared union."""
    return value if isinstance(value, bytes) else value.encode()
