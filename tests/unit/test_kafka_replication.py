"""The replication factor `dnc topics ensure` gives new topics: as much as the cluster
allows (up to 3), and never one that stops writes as soon as one broker is down, unless
a development cluster says so."""

from __future__ import annotations

import pytest

from dnc.errors import ConfigurationError
from dnc.kafka.clients import choose_replication, topic_specs
from dnc.settings import Settings


@pytest.mark.parametrize(("brokers", "expected"), [(3, 3), (5, 3), (7, 3)])
def test_a_production_cluster_gets_three_replicas(brokers: int, expected: int) -> None:
    assert choose_replication(None, brokers, 2, allow_under_replicated=False) == expected


def test_an_explicit_factor_is_kept_when_the_cluster_can_hold_it() -> None:
    assert choose_replication(5, 5, 2, allow_under_replicated=False) == 5


def test_one_broker_is_refused_with_a_message_that_says_how_to_allow_it() -> None:
    with pytest.raises(ConfigurationError) as e:
        choose_replication(None, 1, 1, allow_under_replicated=False)
    text = str(e.value)
    assert "replication factor 1" in text
    assert "min.insync.replicas (1) + 1" in text
    assert "--allow-under-replicated" in text


def test_a_factor_equal_to_min_insync_replicas_is_refused() -> None:
    # Two brokers, min.insync.replicas=2: one broker down and no acks=all write succeeds.
    with pytest.raises(ConfigurationError, match=r"replication factor 2 is below"):
        choose_replication(None, 2, 2, allow_under_replicated=False)


def test_a_development_cluster_is_allowed_when_asked() -> None:
    assert choose_replication(None, 1, 1, allow_under_replicated=True) == 1
    assert choose_replication(None, 2, 2, allow_under_replicated=True) == 2


def test_more_replicas_than_brokers_is_refused_even_when_allowed() -> None:
    with pytest.raises(ConfigurationError, match=r"needs 3 brokers, the cluster has 1"):
        choose_replication(3, 1, 1, allow_under_replicated=True)


def test_every_topic_gets_the_chosen_factor_and_compacted_ones_two_in_sync() -> None:
    specs = topic_specs(Settings(), 3)
    assert {s.replication_factor for s in specs} == {3}
    compacted = [s for s in specs if (s.topic_configs or {}).get("cleanup.policy") == "compact"]
    assert compacted
    assert {s.topic_configs["min.insync.replicas"] for s in compacted} == {"2"}
