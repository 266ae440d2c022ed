"""`KafkaSource` beyond the port's contract (tests/integration/test_source_contract.py): the broker's
own refusal of a commit, and the lag per partition behind /metrics' `sink_partition_lag`."""

from __future__ import annotations

import time

import pytest

from sink.adapters.kafka import KafkaSource, consumer_config
from sink.errors import BrokerUnavailable, RetriableError
from sink.model import RawRecord
from tests.support.kafka import SESSION_TIMEOUT_MS, create_topic, produce, wait_for

pytestmark = pytest.mark.integration


def source(bootstrap: str, topic: str) -> KafkaSource:
    config = consumer_config(bootstrap, f"{topic}_group", {"session.timeout.ms": str(SESSION_TIMEOUT_MS)})
    return KafkaSource(config, (topic,), None)


def test_a_commit_the_broker_refuses_is_broker_unavailable(bootstrap_servers: str, unique_name: str) -> None:
    """Not a rebalance code (the broker does not know the topic): an error the worker tries again."""
    consumer = source(bootstrap_servers, unique_name)
    try:
        with pytest.raises(BrokerUnavailable, match=r"offset commit failed: .*Unknown topic or partition") as refused:
            consumer.commit({(f"{unique_name}_missing", 0): 1})
        assert isinstance(refused.value, RetriableError)
    finally:
        consumer.close()


def test_lag_per_partition_from_the_fetched_watermarks(bootstrap_servers: str, unique_name: str) -> None:
    create_topic(bootstrap_servers, unique_name, 2)
    produce(bootstrap_servers, unique_name, [{"value": "x", "partition": p} for p in (0, 1) for _ in range(5)])
    consumer = source(bootstrap_servers, unique_name)
    try:
        consumer.subscribe(lambda _: None, lambda _: None)
        assert consumer.lag_by_partition() is None, "not assigned yet: unknown"
        polled: list[RawRecord] = []
        deadline = time.monotonic() + 20
        while {r.coord.partition for r in polled} != {0, 1} and time.monotonic() < deadline:
            polled += consumer.poll(1, 0.2)  # one at a time, until a record of each partition came
        taken = {p: sum(1 for r in polled if r.coord.partition == p) for p in (0, 1)}
        expected = {(unique_name, p): 5 - taken[p] for p in (0, 1)}
        wait_for(lambda: consumer.lag_by_partition() == expected, 10, message=f"lag per partition not {expected}")
        assert consumer.lag() == sum(expected.values())
    finally:
        consumer.close()


def test_the_lag_of_a_partition_nothing_came_from_is_known(bootstrap_servers: str, unique_name: str) -> None:
    """An idle partition (no record yet, nothing committed) has a position librdkafka calls
    invalid, but its high watermark (0) is fetched like the others': the lag is known, and 0."""
    create_topic(bootstrap_servers, unique_name, 2)
    produce(bootstrap_servers, unique_name, [{"value": "x", "partition": 0} for _ in range(6)])
    consumer = source(bootstrap_servers, unique_name)
    try:
        consumer.subscribe(lambda _: None, lambda _: None)
        polled: list[RawRecord] = []
        deadline = time.monotonic() + 20
        while len(polled) < 2 and time.monotonic() < deadline:
            polled += consumer.poll(2 - len(polled), 0.2)
        expected = {(unique_name, 0): 4, (unique_name, 1): 0}
        wait_for(lambda: consumer.lag_by_partition() == expected, 10, message=f"lag per partition not {expected}")
    finally:
        consumer.close()
