"""Issue 12 section 3: planted credentials and planted personal data never appear in any output of
full runs — `sink run` at DEBUG, `sink check`, configuration errors, dead-letter headers and
report bodies — unless SINK_ERRORS_LOG_INCLUDE_MESSAGES turns values on.

Planted: a database password as `?password=` / `?sslpassword=` query parameters and as URL
userinfo (PostgreSQL trusts user postgres, so any password connects), a registry URL with
`user:password@` (the test registry requires that basic auth), librdkafka SASL passwords as
pass-through properties, and e-mail addresses in record values the database rejects (a string into
an INTEGER column; a CHECK violation whose DETAIL would quote the row).
"""

from __future__ import annotations

import io
import json
import signal
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.db import create_poison_table, drop_table, fetch_rows
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e

DB_SECRET, SSL_SECRET, REG_SECRET, SASL_SECRET = "DbPw-7781x", "SslPw-5521y", "RegPw-9932z", "SaslPw-1177w"
SECRETS = (DB_SECRET, SSL_SECRET, REG_SECRET, SASL_SECRET)
EMAIL, SHORT_EMAIL = "alice@example.com", "bo@ex.io"  # the second fits note VARCHAR(10)
PERSONAL = (EMAIL, SHORT_EMAIL)
KEY_SCHEMA = {"type": "record", "name": "K", "namespace": "test.secrets", "fields": [{"name": "id", "type": "long"}]}


def _key(schema_id: int, id_: int) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(KEY_SCHEMA), {"id": id_})
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


@pytest.fixture
def auth_registry() -> Iterator[RegistryServer]:
    with RegistryServer(basic_auth=("reg-user", REG_SECRET)) as server:
        yield server


def _with_userinfo(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def _assert_clean(what: str, text: str | bytes | None) -> None:
    if text is None:
        return
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for planted in (*SECRETS, *PERSONAL):
        assert planted not in text, f"{planted!r} leaked in {what}:\n{text[:3000]}"


def _run_cli(command: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SINK), command, "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environ(),
        check=False,
    )


@pytest.mark.parametrize("database", ["pg", "mariadb"])
def test_no_planted_secret_or_personal_data_in_any_output(
    database: str,
    bootstrap_servers: str,
    auth_registry: RegistryServer,
    pg_url: str,
    mariadb_url: str,
    unique_name: str,
    tmp_path: Path,
    sink_runner: SinkRunner,
) -> None:
    base_url = pg_url if database == "pg" else mariadb_url
    # PostgreSQL trusts user postgres: any password connects. MariaDB's root has none to plant.
    run_url = f"{base_url}?password={DB_SECRET}&sslpassword={SSL_SECRET}" if database == "pg" else base_url
    topic, dlq, errors = unique_name, f"{unique_name}_dlq", f"{unique_name}_errors"
    drop_table(base_url, topic)
    create_poison_table(base_url, topic)
    for name in (topic, dlq, errors):
        create_topic(bootstrap_servers, name)
    schema_id = auth_registry.register(f"{topic}-key", json.dumps(KEY_SCHEMA))
    records = [
        {"key": _key(schema_id, 1), "value": json.dumps({"qty": 1, "note": "ok"})},
        {"key": _key(schema_id, 2), "value": json.dumps({"qty": EMAIL, "note": "n"})},  # string into INTEGER
        {"key": _key(schema_id, 3), "value": json.dumps({"qty": -1, "note": SHORT_EMAIL})},  # CHECK, DETAIL quotes row
        {"key": _key(schema_id, 4), "value": json.dumps({"qty": 4, "note": "ok"})},
    ]
    produce(bootstrap_servers, topic, records)
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        run_url,
        topic,
        unique_name,
        key_format="avro",
        value_format="json",
        schema_registry_url=_with_userinfo(auth_registry.url, "reg-user", REG_SECRET),
        consumer__sasl_password=SASL_SECRET,
        producer__sasl_password=SASL_SECRET,
        pk_mode="record_key",
        auto_create="false",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
        errors_log_enable="true",
        reporter_error_topic_name=errors,
        log_level="DEBUG",
        log_stats_interval_ms=500,
    )

    sink = sink_runner.start(env)

    def settled() -> bool:
        assert sink.process.poll() is None, sink.stderr[-3000:]
        return (committed_offsets(bootstrap_servers, unique_name, topic)[0] or 0) >= len(records)

    wait_for(settled, 30, interval=0.25, message="the sink did not commit every record")
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    assert [r["id"] for r in fetch_rows(base_url, topic, order_by="id")] == [1, 4]
    assert "HTTP Request" not in sink.stderr or REG_SECRET not in sink.stderr
    _assert_clean("sink run's stderr", sink.stderr)
    _assert_clean("sink run's stdout", sink.stdout)

    dead = consume_all(bootstrap_servers, dlq, expected=2, timeout=15)
    reports = consume_all(bootstrap_servers, errors, expected=2, timeout=15)
    assert len(dead) == 2 and len(reports) == 2
    for message in dead:
        assert message.header("__connect.errors.exception.message"), "the reason is still there, value-free"
        for name, value in message.headers:
            _assert_clean(f"dead-letter header {name}", value)
    for message in reports:
        body = json.loads(message.value or b"")
        assert body["error_message"]
        _assert_clean("error report body", message.value)
        for name, value in message.headers:
            _assert_clean(f"report header {name}", value)

    checked = _run_cli("check", env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok    schema registry" in checked.stdout
    _assert_clean("sink check", checked.stdout + checked.stderr)
    drop_table(base_url, topic)


@pytest.mark.parametrize(
    "extra",
    [
        f"SINK_CONSUMER={SASL_SECRET}",  # a mistyped nested setting
        f"SINK_SCHEMA_REGISTRY={SASL_SECRET}",
        f"SINK_CONSUMER__SASL_PASSWROD={SASL_SECRET}",  # a librdkafka property typo
        f"SINK_PRODUCER__SECURITY_PROTOCOL={SASL_SECRET}",  # a value librdkafka refuses
        f"SINK_DATABASE_URL=postgresql+psycopg://nosuchrole:{DB_SECRET}@127.0.0.1:5432/test?sslpassword={SSL_SECRET}",
        f"SINK_DATABASE_URL=postgresql+psycopg2://postgres:{DB_SECRET}@127.0.0.1:5432/test",
    ],
)
@pytest.mark.parametrize("command", ["run", "check"])
def test_configuration_errors_never_echo_a_secret(
    command: str, extra: str, bootstrap_servers: str, pg_url: str, tmp_path: Path
) -> None:
    env = tmp_path / "bad.env"
    env.write_text(f"SINK_BOOTSTRAP_SERVERS={bootstrap_servers}\nSINK_TOPICS=t\nSINK_DATABASE_URL={pg_url}\n{extra}\n")
    if command == "check" and "nosuchrole" in extra:
        done = _run_cli("check", env)  # `sink check` reports the database on its own FAIL line
        assert done.returncode == 1 and "FAIL  database" in done.stdout
    else:
        done = _run_cli(command, env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith("sink: configuration error: SINK_") and done.stderr.count("\n") == 1
    _assert_clean(f"sink {command} with {extra.split('=')[0]}", done.stdout + done.stderr)


def test_include_messages_puts_the_database_reason_back(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    """The switch is the only way values reach headers: with it on, the database's message is there."""
    topic, dlq = unique_name, f"{unique_name}_dlq"
    drop_table(pg_url, topic)
    create_poison_table(pg_url, topic)
    for name in (topic, dlq):
        create_topic(bootstrap_servers, name)
    produce(bootstrap_servers, topic, [{"key": "1", "value": json.dumps({"id": 1, "qty": EMAIL, "note": "n"})}])
    env = write_env(
        tmp_path / "sink.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        auto_create="false",
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_deadletterqueue_context_headers_enable="true",
        errors_log_include_messages="true",
    )
    sink = sink_runner.start(env)
    [dead] = consume_all(bootstrap_servers, dlq, expected=1, timeout=30)
    sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(30) == 0, sink.stderr[-3000:]
    assert EMAIL.encode() in (dead.header("__connect.errors.exception.message") or b"")
    drop_table(pg_url, topic)
