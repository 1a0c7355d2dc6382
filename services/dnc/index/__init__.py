"""The Redis index: where every contact's entries live, for the gate's lookups.

``Index`` (``base``) is the one interface the roles and the API use; ``make_index`` picks
its implementation once, from the settings: ``SingleIndex`` (``single``) on one Redis,
``ClusterIndex`` (``cluster``, with ``topology``) on a Redis Cluster. Both run the same
Lua scripts (``scripts``, ``lua/``) over the same key layout (``layout``), and report
what the index says about itself as ``meta.IndexMeta``. ``replay`` turns changelog
records into what the list writer's catch-up writes; ``connections`` packs Redis
commands in C.
"""

from __future__ import annotations

from dnc.index.base import Index
from dnc.index.cluster import ClusterIndex
from dnc.index.layout import contact_ids
from dnc.index.single import SingleIndex
from dnc.settings import Settings


def make_index(settings: Settings) -> Index:
    """The deployment's index: on a Redis Cluster when ``DNC_INDEX__CLUSTER`` says so."""
    kind = ClusterIndex if settings.index.cluster else SingleIndex
    return kind(settings.index, settings.redis_url, contact_ids(settings))


__all__ = ["ClusterIndex", "Index", "SingleIndex", "make_index"]
