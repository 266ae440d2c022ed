"""Fixtures for the integration tests: a target database (PostgreSQL or SQLite) that drops what
the test created."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.db import drop_table


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
