"""Shared fixtures: the Kafka broker, the test Schema Registry, database URLs, unique names.

Works under pytest-xdist: every worker process starts its own broker and registry, and
``unique_name`` keeps topics, groups, subjects and tables of different tests apart.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `tests.support` importable however pytest is started
    sys.path.insert(0, str(_ROOT))

from tests.support.registry import RegistryServer  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


@pytest.fixture(scope="session")
def bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``SINK_TEST_BOOTSTRAP_SERVERS`` if set, else an embedded Tansu broker for this session/worker."""
    external = os.environ.get("SINK_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    from sink.adapters.embedded_broker import EmbeddedBroker

    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """A started in-memory Schema Registry shared by the session; use unique subject names.

    Tests that flip ``available``, count fetches or need auth should use ``private_registry``.
    """
    with RegistryServer() as server:
        yield server


@pytest.fixture(scope="session")
def registry_url(registry: RegistryServer) -> str:
    return registry.url


@pytest.fixture
def private_registry() -> Iterator[RegistryServer]:
    """A fresh registry for one test (its own counters, switches and schemas)."""
    with RegistryServer() as server:
        yield server


@pytest.fixture(scope="session")
def pg_url() -> str:
    return os.environ.get("SINK_TEST_PG_URL", DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return os.environ.get("SINK_TEST_MARIADB_URL", DEFAULT_MARIADB_URL)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sink.db'}"


@pytest.fixture
def unique_name() -> str:
    """A short unique lowercase identifier (``t_`` + 8 hex) for topics, groups, subjects, tables."""
    return f"t_{uuid.uuid4().hex[:8]}"
