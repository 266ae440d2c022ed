"""Fixtures of the fuzz suite: the Hypothesis profile, the target databases, the sink runner.

`SINK_FUZZ_EXAMPLES` sets how many Hypothesis payloads each sink run gets (default: a short run
for `make test`; `make fuzz` runs 10,000). `SINK_FUZZ_SEED` picks another deterministic seed;
`SINK_FUZZ_PARALLEL` how many tolerance-none sinks run side by side.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.e2e.conftest import SinkRunner
from tests.fuzz.harness import drop_prefixed_tables

EXAMPLES = int(os.environ.get("SINK_FUZZ_EXAMPLES", "150"))
SEED = int(os.environ.get("SINK_FUZZ_SEED", "20261129"))
# The long run (`make fuzz`) also runs the decode-only corpus cases under tolerance `none` on every database.
FULL = os.environ.get("SINK_FUZZ_FULL", "1" if EXAMPLES >= 1000 else "0") == "1"

settings.register_profile(
    "sink-fuzz",
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    phases=[Phase.generate],  # the payloads are collected, not judged: nothing to shrink
    suppress_health_check=list(HealthCheck),
)

DATABASES = ("postgresql", "mariadb", "sqlite")


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    if kind == "mariadb":
        return str(request.getfixturevalue("mariadb_url"))
    return f"sqlite:///{tmp_path / 'fuzz.db'}"


@pytest.fixture
def sink_runner(tmp_path: Path) -> Iterator[SinkRunner]:
    runner = SinkRunner(tmp_path)
    yield runner
    for sink in runner.started:  # never leave a sink behind, even when a test failed
        sink.kill()


@pytest.fixture
def cleanup_prefix() -> Iterator[list[tuple[str, str]]]:
    """Register (url, table prefix) pairs; their tables are dropped after the test."""
    registered: list[tuple[str, str]] = []
    yield registered
    for url, prefix in registered:
        drop_prefixed_tables(url, prefix)
