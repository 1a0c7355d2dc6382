"""The gate's baseline: the same exactly-once pipeline with a handler that forwards every
record unchanged, so the only difference to the gate is the check itself.

Same ``TransactionalPipeline`` (one transactional producer per input partition, offsets
in the transaction), same batch size and poll timeout as ``GateSettings``, same producer
settings (acks=all, idempotence, linger, batch size), same output partitioning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.kafka import clients as kafka
from dnc.kafka.batches import BatchWriter, Sent
from dnc.kafka.pipeline import TransactionalPipeline
from dnc.metrics import RoleMetrics
from dnc.settings import Settings


class Passthrough:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        gs = settings.gate
        self.pipeline = TransactionalPipeline(
            settings,
            "gate",
            [settings.topics.outbound],
            self,
            max_records=gs.max_batch,
            poll_timeout_ms=gs.poll_timeout_ms,
            retry_backoff_s=0.05,
            max_backoff_s=0.5,
            metrics=RoleMetrics("gate", enabled=settings.metrics_enabled),
        )
        self.partitions = 1
        self.counts = {"allowed": 0}

    async def start(self) -> None:
        allowed = self.settings.topics.allowed
        self.partitions = (await kafka.topic_partitions(self.settings, allowed))[allowed]
        await self.pipeline.start()

    async def run(self) -> None:
        await self.pipeline.run()

    def request_stop(self) -> None:
        self.pipeline.request_stop()

    async def stop(self) -> None:
        await self.pipeline.stop()

    async def handle(
        self,
        batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        writers: Mapping[TopicPartition, BatchWriter],
    ) -> None:
        topic, parts = self.settings.topics.allowed, self.partitions
        for tp, records in batch.items():
            append = writers[tp].append
            for r in records:
                append(topic, r.partition % parts, r.key, r.value, r.headers)
            self.counts["allowed"] += len(records)

    async def committed(self, tp: TopicPartition, records: Sequence[Any], sent: list[Sent]) -> None:
        return None

    def accepts(self, tp: TopicPartition) -> bool:
        return True

    async def assigned(self, tps: set[TopicPartition]) -> None:
        return None

    async def revoked(self, tps: set[TopicPartition]) -> None:
        return None

    async def idle(self) -> None:
        return None
