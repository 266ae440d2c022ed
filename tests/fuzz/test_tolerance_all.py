"""Fuzz with errors.tolerance=all: Hypothesis payloads and the fixed corpus of issue 12 through ONE
`sink run` per database and format (JSON, Connect JSON), with a DLQ, auto-create and auto-evolve.

Invariants: the worker never exits on its own (SIGTERM at the end, exit 0); every record is a row
or exactly once in the DLQ (original key and value bytes, `__connect.errors.topic/partition/offset`)
and never both; rows + DLQ = produced; a row keeps every field of its record under its own name;
each row is in the table named exactly as its topic; committed offsets reach the end of every
partition. `SINK_FUZZ_EXAMPLES` sets the number of Hypothesis payloads per run (`make fuzz`: 10,000).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner
from tests.fuzz.conftest import DATABASES, EXAMPLES, SEED
from tests.fuzz.corpus import (
    CONNECT_CASES,
    JSON_CASES,
    add_big_int_burst,
    add_case,
    add_oversized,
    add_topic_collisions,
)
from tests.fuzz.harness import Scenario, db_kind, drop_prefixed_tables, run_tolerance_all
from tests.fuzz.strategies import add_fuzz

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("db_url", DATABASES, indirect=True)
@pytest.mark.parametrize("fmt", ["json", "connect_json"])
def test_fuzz_with_tolerance_all(
    fmt: str,
    db_url: str,
    bootstrap_servers: str,
    sink_runner: SinkRunner,
    tmp_path: Path,
    cleanup_prefix: list[tuple[str, str]],
) -> None:
    prefix = f"fz{uuid.uuid4().hex[:8]}"
    drop_prefixed_tables(db_url, prefix)
    cleanup_prefix.append((db_url, prefix))
    kind = db_kind(db_url)
    scenario = Scenario(prefix)
    add_fuzz(scenario, fmt, prefix, SEED + (0 if fmt == "json" else 1))
    for case in JSON_CASES if fmt == "json" else CONNECT_CASES:
        add_case(scenario, case, prefix, kind)
    if fmt == "json":
        add_topic_collisions(scenario, prefix, kind)
        add_oversized(scenario, prefix)
        add_big_int_burst(scenario, prefix)
    timeout = 90 + 0.05 * len(scenario.records)
    result = run_tolerance_all(bootstrap_servers, db_url, scenario, fmt, sink_runner, tmp_path, timeout)
    assert not result.violations, f"{kind}/{fmt}, {EXAMPLES} Hypothesis payloads (seed {SEED}): {result.report()}"
