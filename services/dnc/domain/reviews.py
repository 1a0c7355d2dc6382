"""The review queue's keys (contract addition): one review per inbound message and
account, in a compacted topic where each review's latest record is its state."""

from __future__ import annotations

import hashlib

import xxhash

REVIEW_PARTITIONS = 3  # when `dnc topics ensure` creates dnc.reviews; read back at run time
_SEED = 0x52455649  # "REVI": not the list partitions' seed, so the spreads are unrelated


def review_id(account: str, message_id: str) -> str:
    """Stable, so a redelivered message makes the same review, not a second one."""
    digest = hashlib.sha256(f"{account}\x1f{message_id}".encode()).hexdigest()
    return f"rv-{digest[:24]}"


def review_partition(review: str, partitions: int) -> int:
    """Every record of one review goes to one partition (ingest and API alike), so the
    compacted topic keeps exactly its latest state."""
    return xxhash.xxh3_64_intdigest(review.encode(), _SEED) % partitions
