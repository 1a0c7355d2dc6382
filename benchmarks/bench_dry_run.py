"""Audience dry run of a large audience through a real ``dnc api``.

    .venv/bin/python -m benchmarks.bench_dry_run --audience 1000000 --entries 200000

Starts ``dnc listwriter`` and ``dnc api`` as processes in a namespace of their own, loads
``--entries`` entries through the list writer, then times ``POST /v1/audience/dry-run``
for an audience of ``--audience`` contacts (5% of them on the list, the rest French
mobile numbers no list holds), sent as a CSV file (as the CLI and the page send it) and
as JSON, with every suppressed contact in the answer. The time is the client's: upload,
reading and normalising, the index lookups, the decisions and the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import random
import shutil
import time
from typing import Any

import httpx
import orjson
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

SECRET = "bench-dry-run-key"
OPS_PER_COMMAND = 1000


def listed(i: int) -> EntryKey:
    """Entry i: SMS or all channels, ACME or all senders: every one blocks SMS from ACME."""
    return EntryKey("acme", f"447{i:09d}", None if i % 3 else "SMS", None if i % 2 else "acme")


async def _load_entries(settings: Settings, n: int) -> float:
    index = make_index(settings)
    writer = CommandWriter(settings, index)
    await index.start()
    await writer.start()
    started = time.perf_counter()
    try:
        groups: dict[int, list[Op]] = {}
        commands = []
        for i in range(n):
            key = listed(i)
            ops = groups.setdefault(writer.partition_of(key.account, key.contact), [])
            ops.append(Op("add", key, Source.IMPORT))
            if len(ops) >= OPS_PER_COMMAND:
                commands.append(Command(list(ops), 1, {"kind": "bench"}))
                ops.clear()
        commands += [Command(ops, 1, {"kind": "bench"}) for ops in groups.values() if ops]
        positions: dict[int, int] = {}
        for start in range(0, len(commands), 200):
            for p, o in (await writer.submit(commands[start : start + 200])).items():
                positions[p] = max(positions.get(p, -1), o)
        if not await writer.wait_effective(positions, 900):
            raise SystemExit("the list writer did not process the entries in time")
    finally:
        await writer.stop()
        await index.stop()
    return time.perf_counter() - started


def audience(n: int, entries: int, seed: int = 11) -> tuple[list[str], int]:
    """n distinct contacts, every 20th a listed one; (contacts, how many are listed)."""
    rng = random.Random(seed)
    on_list = rng.sample(range(entries), min(entries, n // 20))
    out: list[str] = []
    hits = iter(on_list)
    for j in range(n):
        hit = next(hits, None) if j % 20 == 0 else None
        out.append(f"447{hit:09d}" if hit is not None else f"336{j:08d}")
    return out, len(on_list)


async def _wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(1200):
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the API did not become ready")


async def _time(
    client: httpx.AsyncClient, label: str, expected: int, n: int, **request: Any
) -> float:
    started = time.perf_counter()
    r = await client.post(
        "/v1/audience/dry-run",
        params={"suppressed_limit": 1_000_000},
        **request,
    )
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise SystemExit(f"{label}: {r.status_code} {r.text[:500]}")
    body = orjson.loads(r.content)
    counts = body["counts"]
    if counts["suppressed"] != expected or len(body["suppressed"]) != expected:
        raise SystemExit(f"{label}: expected {expected} suppressed, got {counts}")
    print(
        f"{label:28} {n:>9,} contacts  {elapsed:6.2f} s  ({n / elapsed:,.0f} contacts/s)  "
        f"suppressed {counts['suppressed']:,}  answer {len(r.content) / 1e6:.1f} MB"
    )
    return elapsed


async def _run(args: argparse.Namespace) -> None:
    run_id = new_run_id()
    port = free_port()
    base = bench_settings(run_id, index="list", app="api")
    key = ApiKey(
        name="bench", sha256=hashlib.sha256(SECRET.encode()).hexdigest(), accounts=["acme"]
    )
    settings = base.model_copy(
        update={"api": ApiSettings(port=port, keys=[key], view_path=f"/tmp/{run_id}/view.sqlite3")}
    )
    contacts, expected = audience(args.audience, args.entries)
    csv = ("\n".join(contacts) + "\n").encode()
    await create_topics(settings)
    try:
        with role_process(settings, "listwriter"), role_process(settings, "api"):
            loaded = await _load_entries(settings, args.entries)
            print(f"loaded {args.entries:,} entries through the list writer in {loaded:.1f} s")
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {SECRET}"},
                timeout=600,
            ) as client:
                await _wait_ready(client)
                form = {"account": "acme", "channel": "SMS", "sender": "ACME"}
                for attempt in range(args.repeat):
                    await _time(
                        client,
                        f"CSV file ({len(csv) / 1e6:.1f} MB) #{attempt + 1}",
                        expected,
                        len(contacts),
                        files={"file": ("audience.csv", csv)},
                        data=form,
                    )
                    await _time(
                        client,
                        f"JSON #{attempt + 1}",
                        expected,
                        len(contacts),
                        content=orjson.dumps({**form, "contacts": contacts}),
                        headers={"Content-Type": "application/json"},
                    )
    finally:
        await drop_run(run_id)
        shutil.rmtree(f"/tmp/{run_id}", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audience", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
