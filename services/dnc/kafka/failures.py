"""What a failure of a Kafka transaction step means for the pipeline: retry, fenced, fatal.

aiokafka does not always raise an error whose class carries the right policy. When the
connection to a coordinator closes during ``send_offsets_to_transaction`` (FindCoordinator
on a broker that is shutting down), its sender task dies with a plain
``KafkaError("Unexpected error during batch delivery")`` whose ``__cause__`` is
``KafkaError(repr(KafkaConnectionError(...)))`` — not retriable by class, and that
producer is unusable from then on. So the policy is decided over the whole chain of
causes: an authorisation or configuration error anywhere in it is fatal (retrying cannot
help, and the role must stop loudly); otherwise a connection, coordinator, leader or
time-out error anywhere in it means the brokers were unavailable, and the step is redone
with a new producer. An error we cannot place is fatal: a message to someone who opted
out is worse than a stopped role.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator

from aiokafka import errors as kerr

from dnc.errors import DncError


class Failure(enum.Enum):
    RETRY = "retry"  # brokers or coordinators unavailable: new producer, redo the batch
    FENCED = "fenced"  # another producer with our transactional id took over
    FATAL = "fatal"  # stop the role with the error


# Never helped by waiting: wrong credentials, ACLs, versions or sizes. Checked first, so a
# connection error in the same chain does not hide one of these.
_FATAL: tuple[type[BaseException], ...] = (
    kerr.TopicAuthorizationFailedError,
    kerr.GroupAuthorizationFailedError,
    kerr.ClusterAuthorizationFailedError,
    kerr.TransactionalIdAuthorizationFailed,
    kerr.SaslAuthenticationFailed,
    kerr.AuthenticationFailedError,
    kerr.AuthenticationMethodNotSupported,
    kerr.UnsupportedVersionError,
    kerr.IncompatibleBrokerVersion,
    kerr.UnrecognizedBrokerVersion,
    kerr.KafkaConfigurationError,
    kerr.InvalidTransactionTimeout,
    kerr.InvalidTopicError,
    kerr.InvalidRequiredAcksError,
    kerr.MessageSizeTooLargeError,
    kerr.RecordTooLargeError,
    kerr.RecordListTooLargeError,
    kerr.PolicyViolationError,
    kerr.UnsupportedForMessageFormatError,
    kerr.UnsupportedCodecError,
)

_FENCED: tuple[type[BaseException], ...] = (kerr.ProducerFenced,)

# The brokers, a coordinator or a partition leader are unavailable, moving or loading, or
# the producer's state on the broker was lost with them. A new producer with the same
# transactional id (InitProducerId aborts or completes whatever the old one left open)
# and a batch redone from the committed offset is always safe.
_RETRY: tuple[type[BaseException], ...] = (
    kerr.KafkaConnectionError,
    kerr.NodeNotReadyError,
    kerr.NoBrokersAvailable,
    kerr.RequestTimedOutError,
    kerr.KafkaTimeoutError,
    kerr.NotLeaderForPartitionError,
    kerr.LeaderNotAvailableError,
    kerr.NotEnoughReplicasError,
    kerr.NotEnoughReplicasAfterAppendError,
    kerr.UnknownTopicOrPartitionError,
    kerr.KafkaStorageError,
    kerr.GroupCoordinatorNotAvailableError,
    kerr.NotCoordinatorForGroupError,
    kerr.GroupLoadInProgressError,
    kerr.ConcurrentTransactions,
    kerr.TransactionCoordinatorFenced,
    kerr.InvalidProducerEpoch,
    kerr.InvalidTxnState,
    kerr.InvalidProducerIdMapping,
    kerr.UnknownProducerId,
    kerr.OutOfOrderSequenceNumber,
    kerr.StaleMetadata,
    kerr.CorrelationIdError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
)


def causes(exc: BaseException, limit: int = 16) -> Iterator[BaseException]:
    """The error, then what caused it (explicit ``__cause__`` first, else the implicit
    ``__context__``), without looping on a cycle."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < limit:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(exc: BaseException) -> Failure:
    """The policy for an error raised by a Kafka transaction step or by a handler."""
    chain = list(causes(exc))
    if isinstance(exc, DncError):
        # Our own errors say it themselves (IndexUnavailable: retriable; a
        # ConfigurationError or a poison record: fatal).
        return Failure.RETRY if exc.retriable else Failure.FATAL
    if any(isinstance(e, _FATAL) for e in chain):
        return Failure.FATAL
    if any(isinstance(e, _FENCED) for e in chain):
        return Failure.FENCED
    for e in chain:
        if isinstance(e, _RETRY):
            return Failure.RETRY
        if isinstance(e, kerr.KafkaError) and e.retriable:
            return Failure.RETRY
    return Failure.FATAL


def describe(exc: BaseException) -> str:
    """One line naming the error and its causes, for logs and metrics."""
    return " ← ".join(f"{type(e).__name__}: {e}" for e in causes(exc))
