"""Unit tests stay unit tests: none may open a network connection or create a SQLAlchemy engine
(Snuba's test suite keeps the same rule). Anything that needs the broker, a database or a loopback
server belongs in tests/integration/.

The guard is an autouse fixture: a connect (Python sockets of any family), a SQLAlchemy engine or a
Kafka client given a broker raises `IsolationViolation`, and the test fails at teardown even when the
code under test caught the exception (an adapter classifying it as an outage would otherwise hide it).
librdkafka opens its sockets in C, so the Kafka clients are guarded where the sink's modules name them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy.engine

import sink.adapters.dlq
import sink.adapters.kafka
import sink.adapters.offsets_admin
import sink.quickstart

# The modules that build Kafka clients, each holding its own reference to the client classes.
_KAFKA_MODULES: tuple[ModuleType, ...] = (
    sink.adapters.kafka,
    sink.adapters.dlq,
    sink.adapters.offsets_admin,
    sink.quickstart,
)
_KAFKA_CLIENTS = ("Consumer", "Producer", "AdminClient")


class IsolationViolation(AssertionError):
    """A unit test reached for the network or a database."""


class Guard:
    """Records what a test tried; `check` fails the test if it tried anything."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def refuse(self, what: str) -> IsolationViolation:
        self.violations.append(what)
        return IsolationViolation(f"a unit test may not {what} (move it to tests/integration/)")

    def check(self) -> None:
        if self.violations:
            pytest.fail("unit test isolation broken: " + "; ".join(self.violations), pytrace=False)


def _refusing_connect(guard: Guard) -> Callable[..., Any]:
    def connect(_sock: socket.socket, address: Any, *_args: Any) -> Any:
        raise guard.refuse(f"connect a socket to {address!r}")

    return connect


def _refusing_create_connection(guard: Guard) -> Callable[..., Any]:
    def create_connection(address: Any, *_args: Any, **_kwargs: Any) -> Any:
        raise guard.refuse(f"open a connection to {address!r}")

    return create_connection


def _refusing_engine(guard: Guard) -> Callable[..., Any]:
    def create_engine(url: Any, *_args: Any, **_kwargs: Any) -> Any:
        raise guard.refuse(f"create a SQLAlchemy engine for {sqlalchemy.engine.make_url(url).drivername}")

    return create_engine


def _refusing_engine_init(guard: Guard) -> Callable[..., Any]:
    def __init__(engine: Any, _pool: Any, _dialect: Any, url: Any, *_args: Any, **_kwargs: Any) -> None:
        raise guard.refuse(f"create a SQLAlchemy engine for {url.drivername}")

    return __init__


def _guarded_kafka_client(guard: Guard, client: Any) -> Callable[..., Any]:
    """The client as it is, unless given a broker: building one without `bootstrap.servers` (the
    start-up validation of the user's properties) connects nowhere."""

    def build(config: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
        bootstrap = (config or {}).get("bootstrap.servers")
        if bootstrap:
            raise guard.refuse(f"build a Kafka {client.__name__} for {bootstrap!r}")
        return client(config, *args, **kwargs) if config is not None else client(*args, **kwargs)

    return build


def install_guard(monkeypatch: pytest.MonkeyPatch) -> Guard:
    guard = Guard()
    monkeypatch.setattr(socket.socket, "connect", _refusing_connect(guard))
    monkeypatch.setattr(socket.socket, "connect_ex", _refusing_connect(guard))
    monkeypatch.setattr(socket, "create_connection", _refusing_create_connection(guard))
    monkeypatch.setattr(sqlalchemy, "create_engine", _refusing_engine(guard))
    # Also engines built through a name imported before the test (`from sqlalchemy import create_engine`).
    monkeypatch.setattr(sqlalchemy.engine.Engine, "__init__", _refusing_engine_init(guard))
    for module in _KAFKA_MODULES:
        for name in _KAFKA_CLIENTS:
            client = getattr(module, name, None)
            if client is not None:
                monkeypatch.setattr(module, name, _guarded_kafka_client(guard, client))
    return guard


@pytest.fixture(autouse=True)
def no_network_no_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[Guard]:
    guard = install_guard(monkeypatch)
    yield guard
    guard.check()
