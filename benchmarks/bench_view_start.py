"""How long a new API instance on the PostgreSQL list view takes to answer its first list
request: ``ApiContext`` built and started (Kafka clients, the index, the readers' pool),
then ``GET /v1/entries``. A view writer runs beside it, in a namespace of its own.

    DNC_POSTGRES_URL=postgresql://dnc@127.0.0.1:15432/dnc \\
      .venv/bin/python -m benchmarks.bench_view_start --instances 5

The view's size does not enter: the first page is an index range read (see
``bench_view.py`` for pages at 10M entries).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import httpx
from pydantic import SecretStr
from tests import kit
from tests.apikit import SECRET_A, auth, key

from dnc.api.app import create_app
from dnc.api.context import ApiContext
from dnc.settings import ApiSettings, ViewSettings


async def main(instances: int) -> None:
    server = os.environ.get("DNC_POSTGRES_URL")
    if not server:
        raise SystemExit("needs DNC_POSTGRES_URL (make up-postgres)")
    settings = kit.unique_settings(
        os.environ.get("DNC_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
        os.environ.get("DNC_REDIS_URL", "redis://127.0.0.1:16379/0"),
        view=ViewSettings(backend="postgres", postgres_url=SecretStr(server)),
        api=ApiSettings(
            keys=[key("ops", SECRET_A, ["acme"])],
            view_path=str(Path("/tmp") / "bench-view-start-unused.sqlite3"),
        ),
    )
    await kit.create_topics(settings)
    try:
        async with kit.running(settings, "viewwriter"):
            await asyncio.sleep(3)  # the writer has made the view's tables
            for n in range(instances):
                t = time.perf_counter()
                ctx = ApiContext.build(settings)
                await ctx.start()
                try:
                    transport = httpx.ASGITransport(app=create_app(ctx))
                    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                        r = await c.get("/v1/entries", params={"account": "acme"}, headers=auth())
                    ms = (time.perf_counter() - t) * 1000
                    print(
                        f"new API instance {n + 1}: first list request {r.status_code}, {ms:.0f} ms"
                    )
                finally:
                    await ctx.stop()
    finally:
        await kit.drop_view_schema(settings)
        await kit.drop_redis_keys(settings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=3)
    asyncio.run(main(parser.parse_args().instances))
