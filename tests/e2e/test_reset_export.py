"""`sink reset-offsets --export` against a real broker: stdout is the plan as CSV (kafka-consumer-
groups' `topic,partition,offset`), nothing changes in a dry run, and `--from-file` with that very
file applies the same plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_reset_offsets import commit, reset, setup  # noqa: F401  (setup is a fixture)
from tests.support.kafka import committed_offsets

pytestmark = pytest.mark.e2e


def test_export_then_from_file_round_trip(
    setup: tuple[Path, str, str],  # noqa: F811
    bootstrap_servers: str,
    tmp_path: Path,
) -> None:
    env, topic, group = setup  # 5 records in each of 2 partitions, the group at {0: 3, 1: 4}
    done = reset(env, "--all-topics", "--shift-by", "-2", "--export")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{topic},0,1", f"{topic},1,2"]
    assert done.stderr.startswith(f"dry run: group {group} not changed")
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 3, 1: 4}

    plan = tmp_path / "plan.csv"
    plan.write_text(done.stdout)
    commit(bootstrap_servers, group, topic, {0: 5, 1: 5})  # the group moved on meanwhile
    applied = reset(env, "--from-file", str(plan), "--execute", "--export")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == done.stdout, "the same plan, as CSV again"
    assert committed_offsets(bootstrap_servers, group, topic, 2) == {0: 1, 1: 2}
