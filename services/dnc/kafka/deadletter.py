"""Dead letters: input records a role can never process, kept with the reason.

Each goes to ``dnc.dead-letter`` in the same transaction as the input's offset (so it is
written exactly once), with the field and the problem, and a copy of the original: text
if it is UTF-8, base64 otherwise (contract addition: ``value_encoding``, ``key`` and
``key_encoding``).
"""

from __future__ import annotations

import base64
import hashlib
import re

import orjson
from aiokafka.structs import ConsumerRecord

from dnc.kafka.batches import BatchWriter

# Beyond this a dead letter carries a reference to the original, not a copy (the original
# stays in its topic): an input topic configured with a larger limit must not stop a role.
DEAD_LETTER_COPY_LIMIT = 4 * 1024 * 1024


class DeadLetters:
    """Where one role's dead letters go. ``partitions``: of the dead-letter topic, known
    once the role has started."""

    def __init__(self, topic: str, partitions: int = 1) -> None:
        self.topic = topic
        self.partitions = partitions

    def append(
        self,
        out: BatchWriter,
        record: ConsumerRecord[bytes, bytes],
        error: str,
        kind: str = "invalid_record",
    ) -> None:
        """Add the dead letter of ``record`` to its input partition's transaction.
        ``kind``: a short, bounded name of the error (a metric label)."""
        out.dead[kind] = out.dead.get(kind, 0) + 1
        out.tally["dead_lettered"] = out.tally.get("dead_lettered", 0) + 1
        out.append(
            self.topic,
            record.partition % self.partitions,
            record.key,
            dead_letter_value(
                record.topic, record.partition, record.offset, error, record.value, key=record.key
            ),
        )


def error_kind(exc: BaseException) -> str:
    """The metric label of an error: its class, in snake case (``InvalidValue`` →
    ``invalid_value``), so bounded by the classes of ``dnc.errors``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def dead_letter_value(
    topic: str, partition: int, offset: int, error: str, value: bytes | None, *, key: bytes | None
) -> bytes:
    """The contract's dead-letter record: the original value as text, or base64."""
    record: dict[str, object] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "error": error,
    }
    if value is not None and len(value) > DEAD_LETTER_COPY_LIMIT:
        record.update(
            value=None,
            value_encoding=None,
            value_omitted=f"{len(value)} bytes, too large to copy: the original stays at "
            f"{topic}/{partition}/{offset}",
            value_sha256=hashlib.sha256(value).hexdigest(),
        )
    else:
        text, encoding = _as_text(value)
        record.update(value=text, value_encoding=encoding)
    key_text, key_encoding = _as_text(key[:DEAD_LETTER_COPY_LIMIT] if key else key)
    record.update(key=key_text, key_encoding=key_encoding)
    return orjson.dumps(record)


def _as_text(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
