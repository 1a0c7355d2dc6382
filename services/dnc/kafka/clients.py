"""Kafka plumbing shared by the roles: client factories and topic set-up (batched produce:
``dnc.kafka.batches``; dead-letter records: ``dnc.kafka.deadletter``).

Producers are always ``acks="all"`` with idempotence on; transactional ones get one
transactional id per input partition (see ``Settings.transactional_id``). Consumers read
``read_committed`` and never auto-commit: offsets move only inside a transaction, or
after the effect is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import errors as kerr
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dnc.domain.channels import Channel
from dnc.domain.reviews import REVIEW_PARTITIONS
from dnc.errors import ConfigurationError
from dnc.settings import Settings, Topics

log = logging.getLogger(__name__)

# Big enough to amortise per-batch costs, small enough to stay far below the broker's
# default message.max.bytes (1 MiB).
MAX_BATCH_BYTES = 512 * 1024
# Outputs can be bigger than their input: a blocked message is wrapped, a binary dead
# letter is base64 (4/3). Inputs keep the broker default (1 MiB); the output topics and
# the producers allow more, so a valid input always fits where it is going.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
WRAPPED_TOPIC_MAX_BYTES = 2 * 1024 * 1024
DEAD_LETTER_TOPIC_MAX_BYTES = MAX_REQUEST_BYTES


def make_producer(settings: Settings, transactional_id: str | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-producer",
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=2,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=MAX_REQUEST_BYTES,
        # A broker that hangs (paused, stuck disk) fails a request after this long, and
        # the pipeline then replaces the producer (``Settings.kafka_step_timeout_s``).
        request_timeout_ms=request_timeout_ms(settings),
    )


def request_timeout_ms(settings: Settings) -> int:
    """The clients' request time-out: the pipeline's step time-out, so that one setting
    bounds how long a hung broker can hold a request (and the role) up."""
    return int(settings.kafka_step_timeout_s * 1000)


def make_consumer(
    settings: Settings,
    *topics: str,
    group_id: str | None,
    max_records: int = 2000,
    fetch_max_wait_ms: int = 20,
    **extra: Any,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-consumer",
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        # A new consumer group starts at the beginning: a gate or opt-out consumer that
        # skipped existing records would lose messages or opt-outs.
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=300000,
        # Not aiokafka's 40 s: end offsets, committed offsets and fetches on a role's
        # processing path give up on a hung broker when a transaction step would.
        request_timeout_ms=extra.pop("request_timeout_ms", request_timeout_ms(settings)),
        **extra,
    )


async def close_consumer(consumer: AIOKafkaConsumer, deadline_s: float) -> bool:
    """Stop a consumer within ``deadline_s``; False if it had to be closed by force.

    aiokafka's ``stop()`` leaves the group first, and waits for as long as no group
    coordinator answers (a broker that just restarted is still loading it). Nothing
    depends on leaving cleanly — offsets are committed in transactions, and the broker
    expires the session — so a role shutting down must not wait for it past its deadline.
    """
    try:
        await asyncio.wait_for(consumer.stop(), deadline_s)
        return True
    except TimeoutError:
        log.warning(
            "consumer did not leave its group within %.1fs (no group coordinator); "
            "closing its connections",
            deadline_s,
        )
    # The cancelled stop() ended the coordinator's task; what it did not reach yet:
    for part in (getattr(consumer, "_fetcher", None), getattr(consumer, "_client", None)):
        if part is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(part.close(), 1.0)
    return False


def topic_specs(settings: Settings, replication_factor: int) -> list[NewTopic]:
    t, layout = settings.topics, settings.topic_layout
    rf = replication_factor
    month = str(30 * 24 * 3600 * 1000)
    wrapped = {"max.message.bytes": str(WRAPPED_TOPIC_MAX_BYTES)}
    day = str(24 * 3600 * 1000)
    compacted = {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        # Tombstones must outlive the slowest rebuild so a rebuilding index sees the
        # removal; one day is generous for a rebuild measured in seconds.
        "delete.retention.ms": day,
        # Segments roll daily so compaction reaches erased data within about two days
        # (it never touches the active segment).
        "segment.ms": day,
        "min.insync.replicas": "1" if rf == 1 else "2",
    }
    specs = [
        NewTopic(t.inbound_messages, layout.input_partitions, rf),
        NewTopic(t.url_unsubscribes, layout.input_partitions, rf),
        NewTopic(t.journey_actions, layout.input_partitions, rf),
        NewTopic(t.delivery_reports, layout.input_partitions, rf),
        NewTopic(t.outbound, layout.outbound_partitions, rf),
        NewTopic(t.allowed, layout.outbound_partitions, rf, topic_configs=wrapped),
        NewTopic(t.blocked, layout.outbound_partitions, rf, topic_configs=wrapped),
        NewTopic(
            t.dead_letter,
            3,
            rf,
            topic_configs={
                "retention.ms": month,
                "max.message.bytes": str(DEAD_LETTER_TOPIC_MAX_BYTES),
            },
        ),
        # Commands are transient (their effect is in dnc.changes) but must survive a
        # list writer that is down for a long weekend.
        NewTopic(t.commands, layout.list_partitions, rf, topic_configs={"retention.ms": month}),
        NewTopic(
            t.changes,
            layout.list_partitions,
            rf,
            topic_configs=compacted,
        ),
        # Unique keys: compaction removes only what an erasure tombstoned; append-only
        # otherwise.
        NewTopic(t.history, layout.list_partitions, rf, topic_configs=compacted),
        NewTopic(t.notifications, 3, rf, topic_configs={"retention.ms": month}),
        # Keyed by review id: the latest state of each review (open, confirmed, dismissed).
        NewTopic(t.reviews, REVIEW_PARTITIONS, rf, topic_configs=compacted),
    ]
    for channel in channel_topics(settings.topics):
        specs.append(NewTopic(channel, layout.outbound_partitions, rf, topic_configs=wrapped))
    return specs


def channel_topics(topics: Topics) -> list[str]:
    """The per-channel topics of allowed messages (``DNC_TOPICS__ALLOWED_TEMPLATE``), one
    per channel; none without a template."""
    template = topics.allowed_template
    if not template:
        return []
    return [template.format(channel=c.value.lower()) for c in Channel]


def topic_names(settings: Settings) -> list[str]:
    return [s.name for s in topic_specs(settings, 1)]


# Production clusters keep three copies; more adds cost without surviving more at once
# than min.insync.replicas allows.
PREFERRED_REPLICATION = 3


def choose_replication(
    requested: int | None, brokers: int, min_insync: int, *, allow_under_replicated: bool
) -> int:
    """The replication factor for new topics: ``requested``, or min(3, brokers).

    A factor of at most ``min_insync`` means one broker down stops every acks=all write
    to the topic (the gate and the list writer stop); refused unless allowed explicitly.
    """
    rf = requested if requested is not None else min(PREFERRED_REPLICATION, brokers)
    if rf > brokers:
        raise ConfigurationError(
            f"replication factor {rf} needs {rf} brokers, the cluster has {brokers} "
            "(lower DNC_TOPIC_LAYOUT__REPLICATION_FACTOR or add brokers)"
        )
    if rf < min_insync + 1 and not allow_under_replicated:
        raise ConfigurationError(
            f"replication factor {rf} is below min.insync.replicas ({min_insync}) + 1: one "
            f"broker down (of {brokers}) would stop every write to these topics. "
            "Use a cluster of at least 3 brokers with min.insync.replicas=2, or, for a "
            "development cluster, pass --allow-under-replicated "
            "(DNC_TOPIC_LAYOUT__ALLOW_UNDER_REPLICATED=true)"
        )
    return rf


def _topic_min_insync(spec: NewTopic, broker_default: int) -> int:
    override = (spec.topic_configs or {}).get("min.insync.replicas")
    return int(override) if override is not None else broker_default


async def _cluster_shape(admin: AIOKafkaAdminClient) -> tuple[int, int]:
    """(live brokers, the brokers' min.insync.replicas)."""
    cluster = await admin.describe_cluster()
    brokers = [b["node_id"] for b in cluster["brokers"]]
    resource = ConfigResource(
        ConfigResourceType.BROKER, str(brokers[0]), {"min.insync.replicas": None}
    )
    responses = await admin.describe_configs([resource])
    for response in responses:
        for _err, _msg, _type, _name, entries in response.resources:
            for entry in entries:
                if entry[0] == "min.insync.replicas":
                    return len(brokers), int(entry[1])
    raise ConfigurationError(
        f"broker {brokers[0]} did not report min.insync.replicas (describe configs)"
    )


async def _specs_for_cluster(admin: AIOKafkaAdminClient, settings: Settings) -> list[NewTopic]:
    layout = settings.topic_layout
    brokers, broker_min_isr = await _cluster_shape(admin)
    rf = choose_replication(
        layout.replication_factor,
        brokers,
        broker_min_isr,
        allow_under_replicated=layout.allow_under_replicated,
    )
    specs = topic_specs(settings, rf)
    # A topic may ask for more in-sync replicas than the brokers' default (compacted ones).
    strictest = max(_topic_min_insync(s, broker_min_isr) for s in specs)
    choose_replication(rf, brokers, strictest, allow_under_replicated=layout.allow_under_replicated)
    return specs


async def ensure_topics(settings: Settings, wait_s: float = 60.0) -> list[str]:
    """Create every contract topic that does not exist; return the names created, once
    each has its partitions' leaders (a consumer started right after finds them).

    New topics get the replication the cluster allows (see ``choose_replication``);
    existing topics are never changed, and nothing is checked when none is missing. The
    broker answers a create with an error code per topic rather than raising: a time-out
    means the controller is still creating it (waited for), anything else is refused with
    the topic and the broker's reason.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        if all(name in existing for name in topic_names(settings)):
            return created
        specs = await _specs_for_cluster(admin, settings)
        missing = [s for s in specs if s.name not in existing]
        for spec in missing:
            response = await admin.create_topics([spec])
            for topic, code, *message in response.topic_errors:
                if code in (0, kerr.RequestTimedOutError.errno):
                    created.append(topic)
                elif code != kerr.TopicAlreadyExistsError.errno:
                    reason = kerr.for_code(code).__name__
                    detail = f": {message[0]}" if message and message[0] else ""
                    raise ConfigurationError(
                        f"topic {topic!r} could not be created ({reason}{detail})"
                    )
    finally:
        await admin.close()
    if created:
        await topic_partitions(settings, *created, wait_s=wait_s)
    return created


async def partition_count(producer: AIOKafkaProducer, topic: str) -> int:
    parts = await producer.partitions_for(topic)
    if not parts:
        raise ConfigurationError(f"topic {topic!r} does not exist (run `dnc topics ensure`)")
    return len(parts)


def tps(topic: str, partitions: Iterable[int]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in partitions]


async def topic_partitions(
    settings: Settings, *topics: str, wait_s: float = 15.0
) -> dict[str, int]:
    """Partition count of each topic; ConfigurationError names a missing topic.

    A topic created a moment ago may briefly answer "leader not available": that is waited
    out (up to ``wait_s``), a topic that does not exist is not."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(list(topics))
        finally:
            await admin.close()
        counts: dict[str, int] = {}
        errors: dict[str, int] = {}
        for d in described:
            if d.get("error_code"):
                errors[d["topic"]] = d["error_code"]
            else:
                counts[d["topic"]] = len(d["partitions"])
        missing = [t for t in topics if t not in counts]
        if not missing:
            return counts
        if asyncio.get_running_loop().time() >= deadline:
            name = missing[0]
            raise ConfigurationError(
                f"topic {name!r} is not available (error {errors.get(name, 'unknown')}); "
                "run `dnc topics ensure`"
            )
        await asyncio.sleep(0.2)
