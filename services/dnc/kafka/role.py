"""The base of the roles whose work is a transactional pipeline: ingest, list writer, gate.

Their work loop is ``TransactionalPipeline.run`` over their input topics, in the consumer
group ``<app>.<name>`` (``dnc.kafka.pipeline``), and they are its ``Handler``. The
handler steps most roles do not need are defined here once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from dnc.kafka.batches import Sent
from dnc.kafka.pipeline import TransactionalPipeline
from dnc.lifecycle import Role

log = logging.getLogger(__name__)


class PipelineRole(Role):
    pipeline: TransactionalPipeline

    async def _serve(self) -> None:
        await self.pipeline.run()

    def request_stop(self) -> None:
        self.pipeline.request_stop()

    async def _drain(self) -> None:
        await self.pipeline.drain()

    # --- Handler steps a role may leave as they are -------------------------------------

    def accepts(self, tp: TopicPartition) -> bool:
        return True

    async def committed(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]], sent: list[Sent]
    ) -> None:
        return None

    async def assigned(self, tps: set[TopicPartition]) -> None:
        log.info("%s: assigned %s", self.name, _names(tps))

    async def revoked(self, tps: set[TopicPartition]) -> None:
        log.info("%s: revoked %s", self.name, _names(tps))

    async def idle(self) -> None:
        return None


def _names(tps: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in tps)
