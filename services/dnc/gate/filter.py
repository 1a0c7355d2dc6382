"""The gate's in-process filter: which contacts *might* have an entry.

A Bloom filter over every contact of the index: the compiled check's own
(``dnc_hotpath.Bloom``) where that runs, rbloom's otherwise; the gate chooses once
(``dnc.gate.native.bloom_class``). "Not in the filter" is certain,
so most messages never reach Redis; "maybe" goes to Redis, where the answer is exact.

It may only say "certainly absent" about an index state it has fully seen. It is built
from a scan of the index's lookup sets taken *after* noting the id of the last entry of
the index's additions stream, and every lookup round trip also returns the additions
after the filter's id, read in the same Lua script as the lookup. So after adding those,
the filter holds every contact the index held at the moment of the lookup, and the gate
re-checks any message whose contact was among the just-added ones. If the stream was
trimmed past the filter's id, or the index was re-initialised, the filter is unusable
until rebuilt. It is never deleted from; removed contacts leave when it is rebuilt.

On a Redis Cluster every node has its own additions stream, and the filter's position
(``version``) names one id per node; a node it does not name makes it unusable.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

from dnc.index import Index
from dnc.index.layout import filter_key
from dnc.index.meta import IndexMeta

log = logging.getLogger(__name__)


class BloomFilter(Protocol):
    """What the filter needs of a Bloom filter of ints (rbloom's and dnc_hotpath's)."""

    def __init__(self, capacity: int, error_rate: float, /) -> None: ...
    def __contains__(self, key: int, /) -> bool: ...
    def update(self, keys: Iterable[int], /) -> None: ...


class ContactFilter:
    def __init__(
        self,
        capacity: int,
        error_rate: float,
        rebuild_every_s: float = 900.0,
        *,
        bloom_class: type[BloomFilter],
    ) -> None:
        self.capacity = capacity
        self.error_rate = error_rate
        self.rebuild_every_s = rebuild_every_s
        self.bloom_class = bloom_class
        self._bloom: BloomFilter | None = None
        self.version: bytes | None = None  # stream id the filter has seen up to
        self.epoch: str | None = None
        self.built_at = 0.0
        self.added_since_build = 0

    @property
    def usable(self) -> bool:
        return self._bloom is not None

    @property
    def bloom(self) -> BloomFilter | None:
        """The filter itself, for a caller that tests a whole batch (``key in bloom``
        without a method call per message); None while unusable."""
        return self._bloom

    def might_contain(self, key: int) -> bool:
        bloom = self._bloom
        return bloom is None or key in bloom

    def invalidate(self, why: str) -> None:
        if self._bloom is not None:
            log.info("gate: contact filter dropped (%s)", why)
        self._bloom, self.version, self.epoch = None, None, None

    def needs_rebuild(self) -> bool:
        if self._bloom is None:
            return True
        age = time.monotonic() - self.built_at
        return age > self.rebuild_every_s or self.added_since_build > self.capacity // 2

    def check_meta(self, meta: IndexMeta) -> None:
        """Drop the filter if it cannot vouch for this index any more."""
        if self._bloom is None or self.version is None:
            return
        if meta.epoch != self.epoch:
            self.invalidate("index re-initialised")
        elif meta.adds_trimmed(self.version):
            self.invalidate("additions stream trimmed past the filter")

    def add(
        self, adds: Sequence[tuple[bytes, bytes]] | None, version: bytes | None = None
    ) -> set[int]:
        """Add stream entries (id, blob); return the keys they carried. ``version``: the
        position after them (``LookupResult.version``; on a cluster one per node)."""
        if self._bloom is None:
            return set()
        if version is not None:
            self.version = version
        if not adds:
            return set()
        keys: set[int] = set()
        for _id, blob in adds:
            for bucket, member in struct.iter_unpack("<Ii", blob):
                keys.add(filter_key(bucket, member))
        self._bloom.update(keys)
        self.added_since_build += len(keys)
        if version is None:
            self.version = adds[-1][0]
        return keys

    async def rebuild(self, index: Index) -> None:
        """Build a new filter from the index; swap it in when complete."""
        started = time.monotonic()
        meta = await index.meta()
        version = await index.last_add_id()
        # Sized before the scan (the count may grow meanwhile: twice it leaves room), and
        # filled a few buckets at a time: this runs on the gate's event loop, between
        # its batches.
        count = await index.contact_count()
        bloom = self.bloom_class(max(self.capacity, 2 * count), self.error_rate)
        added = 0
        async for keys in index.filter_keys():
            bloom.update(keys)
            added += len(keys)
        self._bloom, self.version, self.epoch = bloom, version, meta.epoch
        self.built_at, self.added_since_build = time.monotonic(), 0
        log.info(
            "gate: contact filter built from %d contacts in %.2fs",
            added,
            time.monotonic() - started,
        )
