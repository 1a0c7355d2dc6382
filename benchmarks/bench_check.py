"""Latency of ``GET /v1/check`` at a fixed request rate, against a real ``dnc api``.

    .venv/bin/python -m benchmarks.bench_check --rate 500 --seconds 30

Starts ``dnc listwriter`` and ``dnc api`` as processes in a namespace of their own, loads
``--entries`` entries through the list writer, then sends checks open-loop (request i is
due at start + i / rate, whatever happened to the ones before) over keep-alive
connections. Latency is counted from the moment a request was due, so a stalled server
cannot hide its queue (no coordinated omission). 5% of the checks hit a listed contact.

The checks start as soon as the entries are effective at the gate, while the API's list
view is still applying them (as after an import). Then ``GET /healthz`` is sent the same
way at the same rate: the baseline of the server, the connections and this load generator
on the same machine, without the check's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import shutil
import statistics
import time

from tests.ports import free_port

from benchmarks.common import (
    bench_settings,
    create_topics,
    drop_run,
    new_run_id,
    role_process,
)
from dnc.api.commands import CommandWriter
from dnc.domain.entries import Command, EntryKey, Op, Source
from dnc.index import make_index
from dnc.settings import ApiKey, ApiSettings, Settings

SECRET = "bench-check-key"


async def _load_entries(settings: Settings, n: int) -> None:
    index = make_index(settings)
    writer = CommandWriter(settings, index)
    await index.start()
    await writer.start()
    try:
        commands = [
            Command([Op("add", EntryKey("acme", f"447{i:09d}", None, None), Source.IMPORT)], 1)
            for i in range(n)
        ]
        positions = {}
        for start in range(0, n, 10_000):
            positions.update(await writer.submit(commands[start : start + 10_000]))
        if not await writer.wait_effective(positions, 300):
            raise SystemExit("the list writer did not process the entries in time")
    finally:
        await writer.stop()
        await index.stop()


async def _wait_ready(port: int) -> None:
    for _ in range(600):
        with contextlib.suppress(OSError, ValueError):
            status, _body = await _get_once(port, "/readyz")
            if status == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the API did not become ready")


async def _get_once(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _get(reader, writer, path)
    finally:
        writer.close()


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive GET. Hand-written: a general client costs more CPU per
    request than the server under test, and would measure itself."""
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {SECRET}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def _measure(port: int, args: argparse.Namespace, *, warmup: bool, route: str) -> None:
    seconds = 3 if warmup else args.seconds
    total = int(args.rate * seconds)
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await due.get()) is not None:
                i, at = item
                if route == "/healthz":
                    status, body = await _get(reader, writer, route)
                    errors += status != 200
                    latencies.append((time.perf_counter() - at) * 1000)
                    continue
                listed = i % 20 == 0
                contact = f"447{i % args.entries:09d}" if listed else f"336{i:08d}"
                path = f"{route}?account=acme&contact={contact}&channel=SMS&sender=ACME"
                status, body = await _get(reader, writer, path)
                blocked = b'"blocked":true' in body
                if status != 200 or blocked is not listed:
                    errors += 1
                latencies.append((time.perf_counter() - at) * 1000)
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(args.connections)]
    start = time.perf_counter() + 0.1
    for i in range(total):
        at = start + i / args.rate
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        due.put_nowait((i, at))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    if warmup:
        return
    latencies.sort()
    q = statistics.quantiles(latencies, n=1000)
    print(
        f"GET {route:9} at {args.rate:g}/s for {seconds:g}s ({total} requests, {errors} errors, "
        f"{args.entries} entries, {args.connections} connections): p50 {q[499]:.2f} ms  "
        f"p99 {q[989]:.2f} ms  p99.9 {q[998]:.2f} ms  max {latencies[-1]:.2f} ms"
    )


async def _run(args: argparse.Namespace) -> None:
    run_id = new_run_id()
    port = free_port()
    base = bench_settings(run_id, index="list", app="api")
    settings = base.model_copy(
        update={
            "log_level": "INFO",
            "api": ApiSettings(
                port=port,
                keys=[
                    ApiKey(
                        name="bench",
                        sha256=hashlib.sha256(SECRET.encode()).hexdigest(),
                        accounts=["acme"],
                    )
                ],
                view_path=f"/tmp/{run_id}/view.sqlite3",
            ),
        }
    )
    await create_topics(settings)
    try:
        with role_process(settings, "listwriter"), role_process(settings, "api"):
            await _load_entries(settings, args.entries)
            await _wait_ready(port)
            await _measure(port, args, warmup=True, route="/v1/check")
            await _measure(port, args, warmup=False, route="/v1/check")
            await _measure(port, args, warmup=False, route="/healthz")
            _status, text = await _get_once(port, "/metrics")
            print(_server_side(text.decode()))
    finally:
        await drop_run(run_id)
        shutil.rmtree(f"/tmp/{run_id}", ignore_errors=True)


def _server_side(metrics: str) -> str:
    """The API's own latency histogram for the check (time inside the process, without
    the kernel's and the load generator's share)."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith("dnc_api_request_seconds_bucket") and 'route="/v1/check"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    if not buckets:
        return "server side: no samples"
    total = buckets[-1][1]
    shown = ", ".join(f"<= {le * 1000:g} ms: {n / total:.2%}" for le, n in buckets if le <= 0.05)
    return f"server side ({total:.0f} checks incl. warm-up): {shown}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
