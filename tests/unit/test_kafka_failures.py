"""The pipeline's policy for what aiokafka raises: decided over the chain of causes."""

from __future__ import annotations

import itertools

import pytest
from aiokafka import errors as kerr

from dnc.errors import ConfigurationError, IndexUnavailable, InvalidValue
from dnc.kafka.failures import Failure, classify, describe


def chained(*errors: BaseException) -> BaseException:
    """errors[0] raised from errors[1] raised from …, the way aiokafka chains them."""
    for outer, inner in itertools.pairwise(errors):
        outer.__cause__ = inner
    return errors[0]


def ci_failure() -> BaseException:
    """What the gate died of in CI: FindCoordinator on a closed connection during
    send_offsets_to_transaction, re-raised by aiokafka's sender task."""
    return chained(
        kerr.KafkaError("Unexpected error during batch delivery"),
        kerr.KafkaError("KafkaConnectionError('Connection at 127.0.0.1:29092 closed')"),
        kerr.KafkaConnectionError("Connection at 127.0.0.1:29092 closed"),
        ConnectionResetError(104, "Connection reset by peer"),
    )


def test_the_ci_failure_is_retried_with_a_new_producer() -> None:
    exc = ci_failure()
    assert not getattr(exc, "retriable", False)  # aiokafka's own class says "not retriable"
    assert classify(exc) is Failure.RETRY
    assert "KafkaConnectionError" in describe(exc)


@pytest.mark.parametrize(
    "cause",
    [
        kerr.NotCoordinatorForGroupError(),
        kerr.GroupCoordinatorNotAvailableError(),
        kerr.GroupLoadInProgressError(),
        kerr.NotLeaderForPartitionError(),
        kerr.LeaderNotAvailableError(),
        kerr.ConcurrentTransactions(),
        kerr.NotEnoughReplicasError(),
        kerr.RequestTimedOutError(),
        kerr.KafkaTimeoutError(),
        kerr.NodeNotReadyError(),
        kerr.InvalidProducerEpoch(),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_unavailable_brokers_and_coordinators_anywhere_in_the_chain_are_retried(
    cause: BaseException,
) -> None:
    assert classify(cause) is Failure.RETRY
    wrapped = chained(kerr.KafkaError("Unexpected error during batch delivery"), cause)
    assert classify(wrapped) is Failure.RETRY


def _reraise_without_from() -> None:
    try:
        raise kerr.KafkaConnectionError("closed")
    except kerr.KafkaConnectionError:
        raise kerr.KafkaError("Unexpected error during batch delivery")  # noqa: B904


def test_an_implicit_context_counts_like_a_cause() -> None:
    with pytest.raises(kerr.KafkaError) as caught:
        _reraise_without_from()
    assert classify(caught.value) is Failure.RETRY


@pytest.mark.parametrize(
    "cause",
    [
        kerr.TransactionalIdAuthorizationFailed(),
        kerr.GroupAuthorizationFailedError(),
        kerr.TopicAuthorizationFailedError(),
        kerr.UnsupportedVersionError(),
        kerr.MessageSizeTooLargeError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_authorisation_and_configuration_errors_stop_the_role_even_behind_a_connection_error(
    cause: BaseException,
) -> None:
    assert classify(cause) is Failure.FATAL
    exc = chained(kerr.KafkaError("x"), kerr.KafkaConnectionError("closed"), cause)
    assert classify(exc) is Failure.FATAL


def test_fenced_is_its_own_policy() -> None:
    assert classify(kerr.ProducerFenced()) is Failure.FENCED
    assert classify(chained(kerr.KafkaError("x"), kerr.ProducerFenced())) is Failure.FENCED


def test_an_error_nobody_planned_for_is_fatal() -> None:
    assert classify(kerr.KafkaError("something new")) is Failure.FATAL
    assert classify(RuntimeError("a bug")) is Failure.FATAL
    assert classify(kerr.IllegalStateError("bad state")) is Failure.FATAL


def test_our_own_errors_carry_their_policy() -> None:
    assert classify(IndexUnavailable("redis down")) is Failure.RETRY
    assert classify(ConfigurationError("partitions differ")) is Failure.FATAL
    assert classify(InvalidValue("to", "x", "is not a number")) is Failure.FATAL


def test_a_cycle_in_the_chain_ends() -> None:
    a, b = kerr.KafkaError("a"), kerr.KafkaError("b")
    a.__cause__, b.__cause__ = b, a
    assert classify(a) is Failure.FATAL


class IdleHandler:
    """A pipeline handler whose idle work raises what it is given."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.calls = 0

    async def idle(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error


async def test_idle_work_waits_out_a_kafka_outage_and_stops_on_a_bug() -> None:
    """What failed in the fault suite: the list writer's idle end_offsets timed out while
    the broker was down and the role exited. An outage is waited out; a bug still stops
    the role."""
    from dnc.kafka.pipeline import TransactionalPipeline
    from dnc.settings import Settings

    def pipeline(error: BaseException | None) -> TransactionalPipeline:
        return TransactionalPipeline(
            Settings(),
            "listwriter",
            ["t"],
            IdleHandler(error),  # type: ignore[arg-type]
            retry_backoff_s=0.0,
        )

    outage = pipeline(kerr.KafkaTimeoutError("Failed to get offsets by times in 30000 ms"))
    await outage._idle()
    await outage._idle()
    assert outage._failures == 2  # backing off, not stopping

    recovered = pipeline(None)
    recovered._failures = 3
    await recovered._idle()
    assert recovered._failures == 0

    with pytest.raises(ValueError, match="a bug"):
        await pipeline(ValueError("a bug"))._idle()


async def test_batches_left_in_flight_by_a_failed_flush_report_no_unhandled_error() -> None:
    """A hung broker: the first batch's wait is cut by the step time-out, the others fail
    later (fenced) with no one waiting; asyncio must not log them as unhandled errors."""
    import asyncio
    import gc

    from dnc.kafka.batches import BatchWriter
    from dnc.kafka.clients import make_producer
    from dnc.settings import Settings

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    producer = make_producer(Settings())  # never started: send_batch is replaced
    futures: list[asyncio.Future[object]] = []

    async def send_batch(*_args: object, **_kwargs: object) -> asyncio.Future[object]:
        futures.append(loop.create_future())
        return futures[-1]

    producer.send_batch = send_batch  # type: ignore[method-assign]
    out = BatchWriter(producer)
    for partition in range(3):
        out.append("t", partition, b"k", b"v")
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await out.flush()
        for f in futures[1:]:
            f.set_exception(kerr.ProducerFenced())
        await asyncio.sleep(0)  # the done callbacks run
        futures.clear()
        gc.collect()
        assert unhandled == []
    finally:
        loop.set_exception_handler(previous)
        await producer.stop()


async def test_one_setting_bounds_how_long_a_hung_broker_holds_a_request() -> None:
    """A paused broker answers nothing: every request to it waits the client's request
    time-out. The consumers were on aiokafka's fixed 40 s; they follow the step time-out
    now, as the producers do."""
    from dnc.kafka.clients import make_consumer, make_producer
    from dnc.settings import Settings

    settings = Settings(kafka_step_timeout_s=7)
    consumer = make_consumer(settings, group_id="g")
    producer = make_producer(settings, "t")
    other = make_consumer(settings, group_id=None, request_timeout_ms=50_000)
    try:
        assert consumer._client._request_timeout_ms == 7000
        assert producer.client._request_timeout_ms == 7000
        assert other._client._request_timeout_ms == 50_000
    finally:
        await producer.stop()
