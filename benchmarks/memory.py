"""Redis memory of one index, two ways.

``MEMORY USAGE`` (with ``SAMPLES 0``: every element counted) summed over the index's own
keys, by kind: exact for our keys whatever else the shared Redis holds, and it includes
each key's own overhead (dict entry, key name, object header). The ``used_memory``
delta around loading the index is what the issue asks for; on a Redis that others use at
the same time it is only as good as their quiet, so both are reported.
"""

from __future__ import annotations

from collections import Counter

import redis.asyncio as aioredis

KINDS = ("g", "gc", "m", "meta", "adds", "ref")


async def used_memory(redis_url: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("memory")
        return int(info["used_memory"])
    finally:
        await client.aclose()


async def usage_by_kind(redis_url: str, prefix: str) -> dict[str, int]:
    """Bytes per kind of key (``<prefix>:<kind>...``) and their total (``all``)."""
    client = aioredis.Redis.from_url(redis_url)
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    try:
        keys: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
            keys.append(key)
        for start in range(0, len(keys), 2000):
            chunk = keys[start : start + 2000]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            for key, size in zip(chunk, await pipe.execute(), strict=True):
                kind = key.decode()[len(prefix) + 1 :].split(":")[0]
                sizes[kind] += int(size or 0)
                counts[kind] += 1
    finally:
        await client.aclose()
    out = {kind: sizes.get(kind, 0) for kind in KINDS}
    out["all"] = sum(sizes.values())
    out["keys"] = sum(counts.values())
    return out


async def encodings(redis_url: str, prefix: str, bucket: int = 0) -> dict[str, str]:
    """The encodings of one bucket's keys: intset and listpack are what the sizes assume."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        out = {}
        for kind in ("g", "m"):
            enc = await client.object("encoding", f"{prefix}:{kind}:{{{bucket}}}")
            out[kind] = enc.decode() if isinstance(enc, bytes) else str(enc)
        return out
    finally:
        await client.aclose()
