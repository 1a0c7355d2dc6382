"""Uploads kept between Analyze and Import, and imports running in the background.

An upload is kept in Redis (under the index prefix, one hour) so that any API instance can
start it. An import runs as an asyncio task of the instance that accepted it: it reads the
file again, submits list commands in chunks (source IMPORT, ``Command.ref`` = import id),
records its progress in Redis, waits until the list writer has processed every command
(effective at the gate), publishes ``import.completed`` and marks itself finished.

Adding is idempotent (rule 1), so an import that failed half-way, or whose instance
stopped, is finished by importing the same file again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from dnc.api.commands import Positions, merge
from dnc.api.context import ApiContext
from dnc.api.imports.commands import CommandBuilder
from dnc.api.observe import ImportMetrics
from dnc.domain.entries import Command
from dnc.domain.events import ImportCompleted
from dnc.domain.timestamps import format_ms, now_ms
from dnc.errors import IndexUnavailable, InvalidValue
from dnc.files.imports import Chunk, ImportOptions, Invalid, chunks, count_rows, resolve_expiry
from dnc.files.read import ImportFile, Limits, open_upload

log = logging.getLogger(__name__)

UPLOAD_TTL_S = 3600
JOB_TTL_S = 7 * 24 * 3600  # as long as the list writer keeps the ref counters
STALE_AFTER_S = 60.0  # a running job updates its heartbeat far more often than this
CHUNK_ROWS = 20_000
INVALID_KEPT = 100
_ID = re.compile(r"(imp|upl)-[A-Za-z0-9_-]{1,40}")  # what this module hands out
WAIT_POLL_S = 0.1
HEARTBEAT_S = 2.0


def limits_of(context: ApiContext) -> Limits:
    api = context.settings.api
    return Limits(api.import_max_bytes, api.import_max_uncompressed_bytes)


@dataclass(frozen=True, slots=True)
class Upload:
    upload_id: str
    name: str
    data: bytes
    owner: str
    options: ImportOptions
    rows: int | None  # rows the analysis counted with ``options``


@dataclass(frozen=True, slots=True)
class _Job:
    import_id: str
    owner: str  # the API key's name
    file: ImportFile
    options: ImportOptions
    accounts: list[str]
    rows: int | None  # None: count them first
    chunks: Iterator[Chunk]  # started by the caller, see _first_chunk
    expires_at: int | None  # of every entry the import adds (epoch ms)


def _ts(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)


class ImportJobs:
    """Uploads and imports of one API instance (state shared through Redis)."""

    def __init__(self, context: ApiContext, metrics: ImportMetrics) -> None:
        self.ctx = context
        self.metrics = metrics
        self.prefix = context.settings.index.prefix
        self._tasks: set[asyncio.Task[None]] = set()
        context.on_stop(self.stop)

    async def stop(self) -> None:
        """Shutdown: cancel running imports before the writer closes. An import cut short
        shows as failed once its heartbeat is stale; running it again is safe, because
        adding an entry that exists changes nothing."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- uploads ----------------------------------------------------------------------

    def _upload_key(self, upload_id: str) -> str:
        return f"{self.prefix}:upload:{upload_id}"

    def _job_key(self, import_id: str) -> str:
        return f"{self.prefix}:import:{import_id}"

    async def keep_upload(
        self, *, name: str, data: bytes, owner: str, options: ImportOptions, rows: int
    ) -> tuple[str, str]:
        """Store an analysed upload; return (upload_id, expires_at)."""
        upload_id = "upl-" + secrets.token_urlsafe(16)
        fields: dict[FieldT, EncodableT] = {
            "name": name,
            "data": data,
            "owner": owner,
            "options": options.model_dump_json(),
            "rows": rows,
        }
        async with self._redis() as redis:
            pipe = redis.pipeline(transaction=True)
            pipe.hset(self._upload_key(upload_id), mapping=fields)
            pipe.expire(self._upload_key(upload_id), UPLOAD_TTL_S)
            await pipe.execute()
        return upload_id, format_ms(now_ms() + UPLOAD_TTL_S * 1000)

    async def reanalysed(self, upload_id: str, options: ImportOptions, rows: int) -> str:
        """Remember the options of the latest analysis; keep the upload another hour."""
        key = self._upload_key(upload_id)
        async with self._redis() as redis:
            pipe = redis.pipeline(transaction=True)
            pipe.hset(key, mapping={"options": options.model_dump_json(), "rows": rows})
            pipe.expire(key, UPLOAD_TTL_S)
            await pipe.execute()
        return format_ms(now_ms() + UPLOAD_TTL_S * 1000)

    async def upload(self, upload_id: str, owner: str) -> Upload | None:
        """The upload, if it exists and this key made it (else None: same answer)."""
        if not _ID.fullmatch(upload_id):
            return None
        async with self._redis() as redis:
            raw = await redis.hgetall(self._upload_key(upload_id))
        d = {_b(k).decode(): _b(v) for k, v in raw.items()}
        if not d or d["owner"].decode() != owner:
            return None
        return Upload(
            upload_id,
            d["name"].decode(),
            d["data"],
            owner,
            ImportOptions.model_validate_json(d["options"]),
            int(d["rows"]),
        )

    # --- jobs -------------------------------------------------------------------------

    async def start(
        self, upload: Upload, accounts: Sequence[str], options: ImportOptions | None
    ) -> str:
        """Check the file and options, record the job and start it; return its id."""
        chosen = upload.options if options is None else options
        expires = resolve_expiry(chosen.expires_at, chosen.ttl_days, now_ms())
        f = await asyncio.to_thread(open_upload, upload.name, upload.data, limits_of(self.ctx))
        # Fails now (422) rather than in the background when a mapped header is missing.
        first = await asyncio.to_thread(_first_chunk, f, chosen)
        rows = upload.rows if chosen == upload.options else None
        import_id = "imp-" + secrets.token_hex(8)
        now = now_ms()
        state: dict[FieldT, EncodableT] = {
            "state": "running",
            "phase": "reading",
            "owner": upload.owner,
            "accounts": orjson.dumps(list(accounts)),
            "file": orjson.dumps(f.describe()),
            "options": chosen.model_dump_json(),
            "rows_total": "" if rows is None else rows,
            "rows_done": 0,
            "rejected": 0,
            "submitted": 0,
            "created_at": now,
            "heartbeat": now,
        }
        async with self._redis() as redis:
            pipe = redis.pipeline(transaction=True)
            pipe.hset(self._job_key(import_id), mapping=state)
            pipe.expire(self._job_key(import_id), JOB_TTL_S)
            await pipe.execute()
        task = asyncio.create_task(
            self._run(
                _Job(import_id, upload.owner, f, chosen, list(accounts), rows, first, expires)
            ),
            name=import_id,
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return import_id

    async def status(self, import_id: str, granted: frozenset[str]) -> dict[str, Any] | None:
        """Progress of an import, or None when it does not exist or the key may not see
        every account it imports into (one answer for both)."""
        if not _ID.fullmatch(import_id):
            return None
        async with self._redis() as redis:
            raw = await redis.hgetall(self._job_key(import_id))
            counts = await self.ctx.index.progress(import_id) if raw else {}
        d = {_b(k).decode(): _b(v).decode() for k, v in raw.items()}
        if not d:
            return None
        accounts: list[str] = orjson.loads(d["accounts"])
        if not set(accounts) <= granted:
            return None
        state, error = d["state"], d.get("error") or None
        heartbeat = int(d["heartbeat"])
        if state == "running" and now_ms() - heartbeat > STALE_AFTER_S * 1000:
            state = "failed"
            error = (
                f"the API instance running this import stopped (last seen {format_ms(heartbeat)}); "
                "the rows submitted so far are imported, import the same file again to finish"
            )
        rows_total = int(d["rows_total"]) if d.get("rows_total") else None
        rejected = int(d["rejected"])
        added, present = counts.get("added", 0), counts.get("already_present", 0)
        return {
            "import_id": import_id,
            "state": state,
            "phase": d["phase"],
            "accounts": accounts,
            "file": orjson.loads(d["file"]),
            "options": orjson.loads(d["options"]),
            "rows_total": rows_total,
            "rows_done": int(d["rows_done"]),
            "rejected": rejected,
            "entries_submitted": int(d["submitted"]),
            "added": added,
            "already_present": present,
            # Entries are rows × accounts; a rejected row counts once per account.
            "entries_expected": None if rows_total is None else rows_total * len(accounts),
            "entries_done": added + present + rejected * len(accounts),
            "invalid_rows": orjson.loads(d.get("invalid_rows") or "[]"),
            "created_at": _ts(int(d["created_at"])),
            "finished_at": _ts(int(d["finished_at"])) if d.get("finished_at") else None,
            "error": error,
            # Not answered as is: the route turns it into "listed" (see list_changes).
            "list_changes": {int(p): o for p, o in orjson.loads(d.get("changes") or "{}").items()},
        }

    async def _run(self, job: _Job) -> None:
        import_id, key, rows = job.import_id, self._job_key(job.import_id), job.rows
        self.metrics.begun()
        started, outcome = time.monotonic(), "failed"
        try:
            if rows is None:
                rows = await asyncio.to_thread(count_rows, job.file, job.options)
                await self._update(key, rows_total=rows)
            positions = await self._submit(key, job)
            await self._update(key, phase="applying")
            last_beat = time.monotonic()
            # Not wait_effective: it polls every 10 ms, which over the minute a big import
            # may take costs CPU the list view and other requests need.
            while not await self.ctx.writer.processed(positions):
                await asyncio.sleep(WAIT_POLL_S)
                if time.monotonic() - last_beat > HEARTBEAT_S:
                    await self._update(key)
                    last_beat = time.monotonic()
            # Where the changelog is once the import is effective: the list view of the
            # instance a page asks shows the import once it has read that far.
            meta = await self.ctx.index.meta()
            changes = {str(p): meta.changes[p] for p in positions if p in meta.changes}
            counts = await self.ctx.index.progress(import_id)
            async with self._redis() as redis:
                rejected = int(await redis.hget(key, "rejected") or 0)
            finished = now_ms()
            event = ImportCompleted(
                type="import.completed",
                import_id=import_id,
                accounts=job.accounts,
                added=counts.get("added", 0),
                already_present=counts.get("already_present", 0),
                rejected=rejected,
                finished_at=format_ms(finished),
            )
            await self._publish(import_id, event)
            await self._update(
                key,
                state="finished",
                phase="done",
                finished_at=finished,
                changes=orjson.dumps(changes),
            )
            log.info("import %s finished: %s", import_id, event.model_dump_json())
            outcome = "finished"
        except asyncio.CancelledError:
            outcome = "cancelled"
            with contextlib.suppress(Exception):
                await self._update(key, state="failed", error="the API stopped during the import")
            raise
        except Exception as exc:
            log.exception("import %s failed", import_id)
            why = str(exc) if isinstance(exc, InvalidValue) else f"{type(exc).__name__}: {exc}"
            error = f"{why}; the rows submitted so far are imported, importing again is safe"
            with contextlib.suppress(Exception):
                await self._update(key, state="failed", error=error, finished_at=now_ms())
        finally:
            self.metrics.ended(outcome, time.monotonic() - started)

    async def _submit(self, key: str, job: _Job) -> Positions:
        """Read and submit chunk after chunk; the next chunk is read (in a thread) while
        the broker acknowledges the previous one."""
        writer = self.ctx.writer
        origin = {"kind": "import", "import_id": job.import_id, "key": job.owner}
        build = CommandBuilder(job.accounts, job.import_id, origin, writer.partition_of)
        build.stored, build.expires_at = self.ctx.contacts.stored, job.expires_at
        source = job.chunks
        positions: Positions = {}
        kept: list[dict[str, Any]] = []

        def produce() -> tuple[int, list[Invalid], list[Command]] | None:
            chunk = next(source, None)
            if chunk is None:
                return None
            return chunk.rows, chunk.invalid, build(chunk.valid, chunk.senders_shown)

        pending = asyncio.create_task(asyncio.to_thread(produce))
        try:
            while (item := await pending) is not None:
                pending = asyncio.create_task(asyncio.to_thread(produce))
                n_rows, invalid, commands = item
                self.metrics.read(n_rows, len(invalid))
                if commands:
                    positions = merge(positions, await writer.submit(commands))
                room = INVALID_KEPT - len(kept)
                kept.extend(i.to_dict() for i in invalid[: max(room, 0)])
                await self._update(
                    key,
                    incr={
                        "rows_done": n_rows,
                        "rejected": len(invalid),
                        "submitted": sum(len(c.ops) for c in commands),
                    },
                    invalid_rows=orjson.dumps(kept) if invalid and room > 0 else None,
                )
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
        return positions

    async def _update(
        self, key: str, incr: dict[str, int] | None = None, **fields: str | int | bytes | None
    ) -> None:
        values: dict[FieldT, EncodableT] = {k: v for k, v in fields.items() if v is not None}
        values["heartbeat"] = now_ms()
        async with self._redis() as redis:
            pipe = redis.pipeline(transaction=True)
            for name, n in (incr or {}).items():
                pipe.hincrby(key, name, n)
            pipe.hset(key, mapping=values)
            await pipe.execute()

    async def _publish(self, import_id: str, event: ImportCompleted) -> None:
        await self.ctx.writer.send(
            self.ctx.settings.topics.notifications,
            import_id.encode(),
            event.model_dump_json().encode(),
        )

    @contextlib.asynccontextmanager
    async def _redis(self) -> AsyncIterator[aioredis.Redis]:
        try:
            yield self.ctx.index.redis
        except (RedisError, OSError) as exc:
            raise IndexUnavailable(f"redis: {exc}") from exc


def _first_chunk(f: ImportFile, options: ImportOptions) -> Iterator[Chunk]:
    """The chunks of an import, started: reading the skipped rows resolves the column
    mapping, whose errors the caller wants before it answers."""
    source = chunks(f, options, CHUNK_ROWS)
    head = next(source, None)
    if head is None:
        return iter(())

    def joined() -> Iterator[Chunk]:
        yield head
        yield from source

    return joined()


def _b(value: bytes | str) -> bytes:
    """The client returns bytes (decode_responses is off); narrow the declared union."""
    return value if isinstance(value, bytes) else value.encode()
