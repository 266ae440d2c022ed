"""Fixtures for the integration tests: a target database (PostgreSQL or SQLite) that drops what
the test created; and, for the store-level tests (writer contract, evolution), `url` (each of
PostgreSQL, MariaDB and SQLite), `name` (a table dropped afterwards) and `store` (a SqlStore on `url`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sink.adapters.db import SqlStore, create_engine
from tests.support.db import drop_table

# `postgresql_copy`: PostgreSQL with every statement on the bulk path (COPY into a stage + merge),
# however few its rows, so the whole store-level suite runs against both of PostgreSQL's paths.
BACKENDS = {"postgresql": "pg_url", "postgresql_copy": "pg_url", "mariadb": "mariadb_url", "sqlite": "sqlite_url"}


@dataclass
class TargetDb:
    kind: str  # "pg" or "sqlite"
    url: str
    tables: list[str] = field(default_factory=list)

    def table(self, name: str) -> str:
        """Register `name` to be dropped after the test (and before, in case a run left it)."""
        drop_table(self.url, name)
        self.tables.append(name)
        return name


@pytest.fixture(params=["pg", "sqlite"])
def db(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> Iterator[TargetDb]:
    url = pg_url if request.param == "pg" else f"sqlite:///{tmp_path / 'target.db'}"
    target = TargetDb(request.param, url)
    yield target
    for table in target.tables:
        drop_table(url, table)


@pytest.fixture
def pg(pg_url: str) -> Iterator[TargetDb]:
    target = TargetDb("pg", pg_url)
    yield target
    for table in target.tables:
        drop_table(pg_url, table)


@pytest.fixture(params=list(BACKENDS))
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(BACKENDS[request.param]))


@pytest.fixture
def name(url: str, unique_name: str) -> Iterator[str]:
    yield unique_name
    drop_table(url, unique_name)


@pytest.fixture
def store(url: str, request: pytest.FixtureRequest) -> Iterator[SqlStore]:
    engine = create_engine(url)
    store = SqlStore(engine)
    if request.node.callspec.params.get("url") == "postgresql_copy":
        store.dialect.bulk_min_rows = 1  # type: ignore[misc]
    elif store.dialect.name == "postgresql":
        store.dialect.bulk_min_rows = None  # type: ignore[misc]
    yield store
    engine.dispose()
