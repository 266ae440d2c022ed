"""The unit-test guard (tests/unit/conftest.py) bites: a connect, a SQLAlchemy engine or a Kafka
client with a broker is refused, and a refusal the code under test swallowed still fails the test."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy
from sqlalchemy.engine import create_engine as imported_before_the_test

import sink.adapters.kafka
from sink.adapters.db import create_engine
from sink.adapters.kafka import KafkaPublisher, validate_consumer_config

from .conftest import Guard, IsolationViolation


def _forgive(guard: Guard, expected: int) -> None:
    """This test provoked `expected` violations on purpose: let it pass once they were counted."""
    assert len(guard.violations) == expected, guard.violations
    guard.violations.clear()


def test_a_socket_may_not_connect(no_network_no_database: Guard) -> None:
    with socket.socket() as sock, pytest.raises(IsolationViolation, match="connect a socket to"):
        sock.connect(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(IsolationViolation):
        sock.connect_ex(("127.0.0.1", 9))
    with pytest.raises(IsolationViolation, match="open a connection to"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    _forgive(no_network_no_database, 3)


def test_no_sqlalchemy_engine_not_even_sqlite_in_memory(no_network_no_database: Guard) -> None:
    with pytest.raises(IsolationViolation, match="SQLAlchemy engine for sqlite"):
        sqlalchemy.create_engine("sqlite://")
    with pytest.raises(IsolationViolation, match="SQLAlchemy engine"):
        create_engine("sqlite://")  # the adapter's
    with pytest.raises(IsolationViolation, match="SQLAlchemy engine for sqlite"):
        imported_before_the_test("sqlite://")  # a name bound before the guard: Engine itself refuses
    _forgive(no_network_no_database, 3)


def test_a_kafka_client_given_a_broker_is_refused_one_without_is_not(no_network_no_database: Guard) -> None:
    with pytest.raises(IsolationViolation, match=r"Kafka Producer for '127\.0\.0\.1:9'"):
        KafkaPublisher("127.0.0.1:9", {})
    with pytest.raises(IsolationViolation, match="Kafka Consumer"):
        sink.adapters.kafka.KafkaSource({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, ("t",), None)
    _forgive(no_network_no_database, 2)
    validate_consumer_config({}, ("orders",), None)  # the start-up validation builds one without a broker
    assert no_network_no_database.violations == []


def test_a_violation_the_code_swallowed_still_fails_the_test(no_network_no_database: Guard) -> None:
    def registry_probe() -> str:  # as an adapter does: a failed connect is "unavailable"
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        except Exception:
            return "unavailable"
        return "up"

    assert registry_probe() == "unavailable"
    broken = r"unit test isolation broken: open a connection to \('127\.0\.0\.1', 9\)"
    with pytest.raises(pytest.fail.Exception, match=broken):
        no_network_no_database.check()
    _forgive(no_network_no_database, 1)
