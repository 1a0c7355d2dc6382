"""The index on one Redis: every operation is one script or one command (or pipeline).

The key layout and the operations are described in ``dnc.index.base``; the cluster
counterpart is ``dnc.index.cluster``.
"""

from __future__ import annotations

import secrets
import struct
from array import array
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from dnc.domain.contactids import ContactIds
from dnc.errors import IndexUnavailable
from dnc.index import scripts
from dnc.index.base import Index
from dnc.index.connections import connection_options
from dnc.index.layout import as_bytes, expiry_arg, progress_arg
from dnc.index.meta import ContactUpdate, IndexMeta, LookupResult, script_error
from dnc.settings import IndexSettings

T = TypeVar("T")


class SingleIndex(Index):
    def __init__(
        self, settings: IndexSettings, redis_url: str, ids: ContactIds | None = None
    ) -> None:
        super().__init__(settings, redis_url, ids)
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self.meta_key = f"{self.prefix}:meta"
        self.adds_key = f"{self.prefix}:adds"

    async def start(self) -> None:
        if self._client is not None:
            return
        timeout = self.settings.redis_timeout_s
        self._client = aioredis.Redis.from_url(
            self.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
            **connection_options(self.redis_url),
        )
        self._scripts = scripts.register(self._client)

    async def stop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    @property
    def redis(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("Index is not started")
        return self._client

    async def _call(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        return await self._command(self._scripts[name](keys=keys, args=args))

    async def _command(self, call: Awaitable[T]) -> T:
        """``call``, with Redis' errors as the index's (``dnc.errors``)."""
        try:
            return await call
        except RedisError as exc:
            mapped = script_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        except OSError as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc

    # --- the list writer ----------------------------------------------------------------

    async def init(self, parts: int) -> str:
        epoch = await self._call(
            "init", [self.meta_key], [secrets.token_hex(8), self.layout, parts]
        )
        return bytes(epoch).decode()

    async def meta(self) -> IndexMeta:
        flat = await self._command(self.redis.hgetall(self.meta_key))
        return IndexMeta.from_flat([as_bytes(x) for kv in flat.items() for x in kv])

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
        args: list[Any] = [
            self.prefix,
            epoch,
            partition,
            "" if expected is None else expected,
            new_offset,
            "" if new_command_offset is None else new_command_offset,
            now,
            b"",
            progress_arg(counters),
            expiry_arg(expiry),
            "",  # no slot fingerprint: a single Redis
        ]
        for u in updates:
            args += (u.bucket, u.member, u.field, u.value)
            if u.value:
                blob += struct.pack("<Ii", u.bucket, u.member)
        # Every contact that now has entries is announced (a superset of "new" ones is
        # harmless: the gates' filters only ever grow between rebuilds).
        args[7] = bytes(blob)
        await self._call("apply", self._write_keys(partition), args)

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
        args: list[Any] = [
            self.prefix,
            epoch,
            partition,
            "" if expected is None else expected,
            new_offset,
            now,
            progress_arg(counters),
            expiry_arg(expiry),
            "",  # no slot fingerprint: a single Redis
        ]
        args += records
        await self._call("replay", self._write_keys(partition), args)

    def _write_keys(self, partition: int) -> list[Any]:
        return [self.meta_key, self.adds_key, f"{self.prefix}:x:{partition}"]

    async def expiring(self, partition: int, now: int, limit: int = 500) -> list[bytes]:
        keys = await self._command(
            self.redis.zrangebyscore(
                f"{self.prefix}:x:{partition}", "-inf", now, start=0, num=limit
            )
        )
        return [k if isinstance(k, bytes) else str(k).encode() for k in keys]

    # --- the gate -----------------------------------------------------------------------

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
            [self.meta_key, self.adds_key],
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
        if adds_after is None:
            return LookupResult(IndexMeta.from_flat(meta_flat), hits, None, None)
        add_list = [(eid, kv[1]) for eid, kv in adds]
        version = add_list[-1][0] if add_list else adds_after
        return LookupResult(IndexMeta.from_flat(meta_flat), hits, add_list, version)

    async def last_add_id(self) -> bytes:
        last = await self._command(self.redis.xrevrange(self.adds_key, count=1))
        return as_bytes(last[0][0] or b"0-0") if last else b"0-0"

    async def _members(self, command: str, start: int, stop: int) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for b in range(start, stop):
            pipe.execute_command(command, f"{self.prefix}:g:{{{b}}}")
        return await self._command(pipe.execute())

    # --- the API ------------------------------------------------------------------------

    async def _packed_entries(self, bucket: int, field: bytes) -> bytes | None:
        raw = await self._command(self.redis.hget(f"{self.prefix}:m:{{{bucket}}}", field))
        return as_bytes(raw) if raw else None

    async def progress(self, ref: str) -> dict[str, int]:
        raw = await self._command(self.redis.hgetall(f"{self.prefix}:ref:{ref}"))
        return {as_bytes(k).decode(): int(v) for k, v in raw.items()}
