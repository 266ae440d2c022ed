"""`sink check --env-file F`: one line per check, exit 0 when everything answers, 1 otherwise;
credentials never printed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import SINK, _clean_environ

pytestmark = pytest.mark.e2e


def check(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), "check", "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environ(),
        check=False,
    )


def test_check_reaches_broker_and_database(tmp_path: Path, bootstrap_servers: str) -> None:
    env = tmp_path / "ok.env"
    env.write_text(
        f"SINK_BOOTSTRAP_SERVERS={bootstrap_servers}\n"
        "SINK_TOPICS=orders\n"
        "SINK_DATABASE_URL=postgresql+psycopg://postgres:NotShown42@127.0.0.1:5432/test\n"
    )
    done = check(env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ok    configuration", "ok    broker", "ok    database"]
    assert "postgresql" in lines[2]
    assert "NotShown42" not in done.stdout + done.stderr
    assert "***" in lines[2]


def test_check_names_what_does_not_answer_and_exits_1(tmp_path: Path, bootstrap_servers: str) -> None:
    env = tmp_path / "down.env"
    env.write_text(
        f"SINK_BOOTSTRAP_SERVERS={bootstrap_servers}\n"
        "SINK_TOPICS=orders\n"
        "SINK_DATABASE_URL=postgresql+psycopg://postgres:NotShown42@127.0.0.1:1/test\n"
    )
    done = check(env)
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  database:"), done.stdout
    assert "NotShown42" not in done.stdout + done.stderr
