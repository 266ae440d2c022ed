"""Issue 9: `SINK_HTTP_PORT` serves /metrics, /livez and /readyz from a real `sink run` process, and
every secret setting can come from a file (`SINK_<NAME>_FILE`, the secrets directory) without the
secret ever reaching an output.

PostgreSQL trusts user postgres, so a password planted in the database URL (userinfo or
`?password=`) connects and must still never be printed.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.db import drop_table, fetch_rows, table_exists
from tests.support.http import free_port, http_get
from tests.support.kafka import create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

DB_SECRET, SASL_SECRET = "FileDbPw-4417q", "FileSaslPw-8830r"
SQLITE = "sqlite:///{tmp}/x.db"


def _answers(port: int, path: str) -> tuple[int, str] | None:
    try:
        return http_get(port, path)
    except OSError:  # not listening yet
        return None


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}?password={password}"


def _run_cli(command: str, env_file: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), command, "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_environ(),
        check=False,
    )


def test_http_endpoints_of_a_running_sink_with_its_database_url_from_a_file(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=2)
    records = [{"key": str(i), "value": json.dumps({"id": i, "qty": i * 10})} for i in range(20)]
    produce(bootstrap_servers, topic, records)
    secret_file = tmp_path / "database-url"
    secret_file.write_text(_with_password(pg_url, DB_SECRET) + "\n")
    port = free_port()
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        name="http-e2e",
        http_port=port,
        http_host="127.0.0.1",
        database_url_file=str(secret_file),
    )
    lines = [line for line in env.read_text().splitlines() if not line.startswith("SINK_DATABASE_URL=")]
    env.write_text("\n".join(lines) + "\n")  # the URL comes from the file only
    sink = sink_runner.start(env)

    live = wait_for(lambda: _answers(port, "/livez"), 30, message="/livez never answered")
    assert live[0] == 200 and json.loads(live[1])["status"] == "ok", live
    seen: list[tuple[int, str]] = []

    def ready() -> bool:
        answer = http_get(port, "/readyz")
        seen.append(answer)
        return answer[0] == 200

    wait_for(ready, 60, interval=0.2, message=f"/readyz never 200: {seen[-3:]} {sink.stderr[-2000:]}")
    for status, body in seen[:-1]:  # before the group assigned partitions: unready, and saying why
        assert status == 503 and json.loads(body) == {"status": "fail", "reason": "no partitions assigned"}, body
    assert json.loads(seen[-1][1]) == {"status": "ok", "reason": "2 partition(s) assigned"}

    wait_for(lambda: table_exists(pg_url, topic) and len(fetch_rows(pg_url, topic)) == 20, 60, message="no rows")
    assert sorted(row["qty"] for row in fetch_rows(pg_url, topic)) == [i * 10 for i in range(20)]

    status, metrics = http_get(port, "/metrics")
    assert status == 200
    pairs = (line.rsplit(" ", 1) for line in metrics.splitlines() if line[:1] != "#")
    samples = {name: float(value) for name, value in pairs}
    assert samples['sink_partitions_assigned{sink="http-e2e"}'] == 2.0
    assert samples['sink_ready{sink="http-e2e"}'] == 1.0
    assert samples['sink_live{sink="http-e2e"}'] == 1.0
    assert samples['sink_retrying{sink="http-e2e"}'] == 0.0
    assert samples['sink_heartbeat_age_seconds{sink="http-e2e"}'] < 60
    assert samples["process_resident_memory_bytes"] > 1_000_000  # the process collector reads /proc
    assert samples["process_cpu_seconds_total"] > 0
    assert any(name.startswith("python_info{") for name in samples)
    assert http_get(port, "/nothing-here")[0] == 404

    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]
    for output in (sink.stdout, sink.stderr, metrics, *(body for _, body in seen)):
        assert DB_SECRET not in output
    assert _answers(port, "/livez") is None, "the server outlived the sink"


def test_check_reads_secrets_from_a_file_and_from_the_secrets_directory(
    bootstrap_servers: str, pg_url: str, tmp_path: Path
) -> None:
    url_file = tmp_path / "db-url"
    url_file.write_text(_with_password(pg_url, DB_SECRET))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SINK_CONSUMER__SASL_PASSWORD").write_text(SASL_SECRET + "\n")
    (secrets / "postgres-password").write_text("another service's secret: ignored\n")
    env = tmp_path / "check.env"
    env.write_text(
        f"SINK_BOOTSTRAP_SERVERS={bootstrap_servers}\n"
        "SINK_TOPICS=orders\n"
        f"SINK_DATABASE_URL_FILE={url_file}\n"
        f"SINK_SECRETS_DIR={secrets}\n"
        "SINK_LOG_LEVEL=DEBUG\n"
    )
    done = _run_cli("check", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == [
        "ok    configuration",
        "ok    broker",
        "ok    database",
    ]
    assert "***" in done.stdout, "the database line shows the URL masked"
    for secret in (DB_SECRET, SASL_SECRET):
        assert secret not in done.stdout + done.stderr

    # The same URL from the secrets directory instead of the _FILE variable.
    (secrets / "SINK_DATABASE_URL").write_text(_with_password(pg_url, DB_SECRET))
    env.write_text(env.read_text().replace(f"SINK_DATABASE_URL_FILE={url_file}\n", ""))
    done = _run_cli("check", env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert DB_SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("lines", "variable"),
    [
        ({"SINK_DATABASE_URL_FILE": "{tmp}/missing"}, "SINK_DATABASE_URL_FILE"),
        ({"SINK_DATABASE_URL_FILE": "{tmp}/secret", "SINK_DATABASE_URL": SQLITE}, "SINK_DATABASE_URL_FILE"),
        ({"SINK_SCHEMA_REGISTRY_URL_FILE": "{tmp}/secret", "SINK_DATABASE_URL": SQLITE}, "SINK_SCHEMA_REGISTRY_URL"),
        ({"SINK_SECRETS_DIR": "{tmp}/no-such-dir", "SINK_DATABASE_URL": SQLITE}, "SINK_SECRETS_DIR"),
    ],
)
def test_a_bad_secret_file_is_one_line_exit_2_without_the_secret(
    lines: dict[str, str], variable: str, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text(f"not-a-url-{DB_SECRET}\n")
    env = tmp_path / "bad.env"
    body = {"SINK_BOOTSTRAP_SERVERS": "127.0.0.1:9", "SINK_TOPICS": "orders", **lines}
    env.write_text("".join(f"{k}={v.format(tmp=tmp_path)}\n" for k, v in body.items()))
    for command in ("check", "run"):
        done = _run_cli(command, env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"sink: configuration error: {variable}"), (
            done.stderr
        )
        assert DB_SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize("value", ["http", "70000", "-1"])
def test_a_bad_http_port_is_one_line_exit_2(value: str, tmp_path: Path, sqlite_url: str) -> None:
    env = tmp_path / "port.env"
    env.write_text(
        f"SINK_BOOTSTRAP_SERVERS=127.0.0.1:9\nSINK_TOPICS=t\nSINK_DATABASE_URL={sqlite_url}\nSINK_HTTP_PORT={value}\n"
    )
    done = _run_cli("run", env, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sink: configuration error: SINK_HTTP_PORT: ")


def test_a_port_in_use_is_one_line_exit_2(tmp_path: Path, sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = tmp_path / "port.env"
        env.write_text(
            "SINK_BOOTSTRAP_SERVERS=127.0.0.1:9\nSINK_TOPICS=t\n"
            f"SINK_DATABASE_URL={sqlite_url}\nSINK_HTTP_PORT={port}\nSINK_HTTP_HOST=127.0.0.1\n"
        )
        done = _run_cli("run", env, timeout=30)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "configuration error" in line]
    assert errors == [
        f"sink: configuration error: SINK_HTTP_PORT: cannot listen on 127.0.0.1:{port} "
        "(Address already in use); choose a free port, or 0 / unset for no HTTP server"
    ], done.stderr
