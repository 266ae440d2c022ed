"""Issue 9: what `docker compose up` runs, without Docker — the sample producer
(deploy/compose/producer.py) against the real broker and the test Schema Registry, then `sink run`
with the compose env file (config/postgres-avro.env) and its database URL from a secrets
directory, as Compose mounts it; only the host names are overridden by a second env file. Rows,
deletes and the dead-lettered record must come out as the guide says, and the image's HEALTHCHECK
command must pass against the running sink and fail against nothing."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner, _clean_environ
from tests.support.db import drop_table, fetch_rows, table_exists
from tests.support.kafka import SESSION_TIMEOUT_MS, consume_all, create_topic, wait_for
from tests.support.registry import RegistryServer
from tests.unit.test_deploy import healthcheck_command

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PRODUCER = ROOT / "deploy" / "compose" / "producer.py"
COMPOSE_ENV = ROOT / "config" / "postgres-avro.env"
COUNT = 60
DB_SECRET = "ComposePw-5150k"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthcheck(port: int) -> int:
    command = healthcheck_command()
    assert command[0] == "python"
    env = {**_clean_environ(), "SINK_HTTP_PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode


def test_compose_producer_and_env_file_fill_postgres_and_the_dead_letter_topic(
    bootstrap_servers: str,
    private_registry: RegistryServer,
    pg_url: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    topic, dlq = unique_name, f"{unique_name}_dlq"
    create_topic(bootstrap_servers, topic, partitions=3)
    create_topic(bootstrap_servers, dlq)
    drop_table(pg_url, topic)
    produced = subprocess.run(
        [sys.executable, str(PRODUCER)],
        env={
            **_clean_environ(),
            "BOOTSTRAP_SERVERS": bootstrap_servers,
            "SCHEMA_REGISTRY_URL": private_registry.url,
            "TOPIC": topic,
            "COUNT": str(COUNT),
            "RATE": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert produced.returncode == 0, produced.stdout + produced.stderr
    assert f"{COUNT} orders, 6 updates, 1 deletes and 1 malformed record" in produced.stdout

    secrets = tmp_path / "run-secrets"  # Compose mounts the secret here as /run/secrets/SINK_DATABASE_URL
    secrets.mkdir()
    scheme, rest = pg_url.split("://", 1)
    user, host = rest.split("@", 1)
    (secrets / "SINK_DATABASE_URL").write_text(f"{scheme}://{user}:{DB_SECRET}@{host}\n")
    port = _free_port()
    here = tmp_path / "this-machine.env"  # the host names of this machine instead of Compose's
    here.write_text(
        f"SINK_BOOTSTRAP_SERVERS={bootstrap_servers}\n"
        f"SINK_SCHEMA_REGISTRY_URL={private_registry.url}\n"
        f"SINK_TOPICS={topic}\n"
        f"SINK_GROUP_ID={unique_name}\n"
        f"SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME={dlq}\n"
        f"SINK_CONSUMER__SESSION_TIMEOUT_MS={SESSION_TIMEOUT_MS}\n"
        f"SINK_SECRETS_DIR={secrets}\n"
        f"SINK_HTTP_PORT={port}\n"
        "SINK_HTTP_HOST=127.0.0.1\n"
    )
    assert _healthcheck(port) != 0, "the HEALTHCHECK fails while nothing answers"
    sink = sink_runner.start(COMPOSE_ENV, here)

    expected_ids = set(range(1, COUNT + 1)) - {5}
    wait_for(
        lambda: table_exists(pg_url, topic) and {r["order_id"] for r in fetch_rows(pg_url, topic)} == expected_ids,
        90,
        message=f"orders did not arrive; stderr:\n{sink.stderr[-3000:]}",
    )
    rows = {row["order_id"]: row for row in fetch_rows(pg_url, topic)}
    assert {n for n, row in rows.items() if row["status"] == "paid"} == {1, 11, 21, 31, 41, 51}
    assert str(rows[3]["amount"]) == "0.21" and rows[3]["customer"] == "customer-3"
    dead = consume_all(bootstrap_servers, dlq, expected=1, timeout=60)
    assert [m.value for m in dead] == [b"this is not an Avro record"]
    assert dead[0].header("__connect.errors.topic") == topic.encode()

    assert _healthcheck(port) == 0, "the image's HEALTHCHECK passes against the running sink"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ready:
        assert json.loads(ready.read())["status"] == "ok"
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(60) == 0, sink.stderr[-3000:]
    for line in sink.stderr.splitlines():  # SINK_LOG_FORMAT=json: one object per line
        if line.startswith("{"):
            json.loads(line)
    assert DB_SECRET not in sink.stdout + sink.stderr
