"""A stop is exact (issue 12, section 6): with SINK_ERRORS_TOLERANCE=none the sink stops at the
record it cannot take and nothing after it reaches the database or the committed offsets; the stop
names the record and the fix, and after the fix a restart writes every record exactly once.

`sink run --env-file F` as a subprocess, Connect JSON values, pk.mode=none, insert mode, PostgreSQL.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

FIELDS = [
    {"field": "id", "type": "int32", "optional": False},
    {"field": "v", "type": "string", "optional": True},
]
SCHEMA = {"type": "struct", "name": "test.Row", "optional": False, "fields": FIELDS}
# A new required field without a default: existing rows could not get a value, so no safe evolution.
WITH_REQUIRED = {**SCHEMA, "fields": [*FIELDS, {"field": "extra", "type": "int32", "optional": False}]}


def envelope(schema: dict[str, Any], payload: dict[str, Any]) -> str:
    return json.dumps({"schema": schema, "payload": payload})


def test_stop_at_a_new_required_field_writes_nothing_after_it_and_the_suggested_fix_resumes_exactly(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = group = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic)
    values = [envelope(SCHEMA, {"id": i, "v": f"v{i}"}) for i in range(3)]
    values.append(envelope(WITH_REQUIRED, {"id": 3, "v": "v3", "extra": 33}))
    values += [envelope(SCHEMA, {"id": i, "v": f"v{i}"}) for i in range(4, 7)]
    produce(bootstrap_servers, topic, [{"value": v} for v in values])
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        group,
        value_format="connect_json",
        pk_mode="none",
        insert_mode="insert",
        errors_tolerance="none",
        auto_create="true",
        auto_evolve="true",
    )
    try:
        sink = sink_runner.run(env, timeout=60)
        stderr = sink.stderr
        assert sink.process.returncode == 1, stderr[-3000:]
        assert f"{topic}/0@3" in stderr, stderr[-3000:]
        assert "Traceback" not in stderr
        suggested = re.search(r"(ALTER TABLE \S+ ADD COLUMN [^;\n]*?)(?:;|\n|$)", stderr)
        assert suggested, f"no ALTER TABLE ... ADD COLUMN suggested:\n{stderr[-3000:]}"
        print(f"\nsuggested fix: {suggested.group(1)}")
        assert "extra" in suggested.group(1)
        assert committed_offsets(bootstrap_servers, group, topic)[0] == 3
        assert [r["id"] for r in fetch_rows(pg_url, topic, order_by="id")] == [0, 1, 2], "nothing after the stop"

        # The operator applies the fix the sink suggested, and restarts it.
        engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as connection:
                connection.execute(sa.text(suggested.group(1)))
        finally:
            engine.dispose()
        sink = sink_runner.start(env)

        def done() -> bool:
            if sink.process.poll() is not None:
                raise AssertionError(f"the sink exited with {sink.process.returncode}:\n{sink.stderr[-3000:]}")
            return (committed_offsets(bootstrap_servers, group, topic)[0] or 0) >= 7

        wait_for(done, 45, interval=0.25, message=f"{group} did not commit 7 on {topic}")
        sink.process.send_signal(signal.SIGTERM)
        assert sink.wait(30) == 0, sink.stderr[-3000:]

        rows = fetch_rows(pg_url, topic, order_by="id")
        assert [r["id"] for r in rows] == list(range(7)), "each record exactly once"
        assert {r["id"]: r["extra"] for r in rows} == {i: (33 if i == 3 else None) for i in range(7)}
    finally:
        drop_table(pg_url, topic)
