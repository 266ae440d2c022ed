"""Error handling against the real databases and the real broker: how each database names a
rejected row, outages against rejections, the flood limit, an unwritable dead-letter topic,
delivery reports (insert told from update), and a registry outage waited out.

The bisection statement count on PostgreSQL is in test_writer_contract.py; the poison catalogue,
tolerance=none with a rejected row and the PostgreSQL outage are end to end in
tests/e2e/test_error_handling.py.
"""

from __future__ import annotations

import io
import json
import logging
import re
import struct
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest

from sink.adapters.db import SqlStore, create_engine
from sink.deadletter import exception_message
from sink.errors import DatabaseUnavailable, FatalError, RecordRejected
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.db import create_poison_table, drop_table, fetch_rows
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for
from tests.support.registry import RegistryServer
from tests.support.runner import RunningSink, running_sink, sink_env

pytestmark = pytest.mark.integration

DATABASES = ["pg", "mariadb", "sqlite"]


@pytest.fixture(params=DATABASES)
def any_db(request: pytest.FixtureRequest, pg_url: str, mariadb_url: str, sqlite_url: str) -> tuple[str, str]:
    return request.param, {"pg": pg_url, "mariadb": mariadb_url, "sqlite": sqlite_url}[request.param]


@pytest.fixture
def poison_table(any_db: tuple[str, str], unique_name: str) -> Iterator[tuple[str, str, str]]:
    kind, url = any_db
    create_poison_table(url, unique_name)
    yield kind, url, unique_name
    drop_table(url, unique_name)


def _rows(table: str, values: list[dict[str, Any]]) -> Batch:
    """Rows as schemaless JSON records give them: inferred spec, the type clash left to the database."""
    spec = TableSpec(
        table,
        (
            Column("id", ColumnType(Kind.INT64), nullable=False),
            Column("qty", ColumnType(Kind.INT64)),
            Column("note", ColumnType(Kind.STRING)),
        ),
        ("id",),
    )
    rows = tuple(
        Row(RawRecord(Coord("poison", 0, i), None, b""), table, Op.UPSERT, {"id": v["id"]}, v, spec, None, True)
        for i, v in enumerate(values)
    )
    return Batch(table, spec, rows, inferred=True)


# What each database says for each poison, by code. SQLite stores a long string and a string in an
# INTEGER column as they are (no length limit, type affinity): those rows land there.
EXPECTED_CODES = {
    "pg": {
        "check": "SQLSTATE 23514 check_violation",
        "not_null": "SQLSTATE 23502 not_null_violation",
        "too_long": "SQLSTATE 22001 string_data_right_truncation",
        "wrong_type": "SQLSTATE 22P02 invalid_text_representation",
        "duplicate": "SQLSTATE 23505 unique_violation",
    },
    "mariadb": {
        "check": "MySQL error 4025 ER_CONSTRAINT_FAILED",
        "not_null": "MySQL error 1048 ER_BAD_NULL_ERROR",
        "too_long": "MySQL error 1406 ER_DATA_TOO_LONG",
        "wrong_type": "MySQL error 1366 ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
        "duplicate": "MySQL error 1062 ER_DUP_ENTRY",
    },
    "sqlite": {
        "check": "SQLITE_CONSTRAINT_CHECK",
        "not_null": "SQLITE_CONSTRAINT_NOTNULL",
        "too_long": None,
        "wrong_type": None,
        "duplicate": "SQLITE_CONSTRAINT_PRIMARYKEY",
    },
}


def test_each_database_rejects_the_bad_rows_with_its_own_code(poison_table: tuple[str, str, str]) -> None:
    _rejects_each_poison(*poison_table, bulk=False)


def test_postgresqls_bulk_path_rejects_the_same_rows_with_the_same_codes(pg_url: str, unique_name: str) -> None:
    # Every statement through COPY into a stage + merge: bad rows are isolated as on executemany.
    create_poison_table(pg_url, unique_name)
    try:
        _rejects_each_poison("pg", pg_url, unique_name, bulk=True)
    finally:
        drop_table(pg_url, unique_name)


def _rejects_each_poison(kind: str, url: str, table: str, bulk: bool) -> None:
    cases = {
        "good_1": {"id": 1, "qty": 1, "note": "ok"},
        "check": {"id": 2, "qty": -5, "note": "ok"},
        "not_null": {"id": 3, "qty": 1, "note": None},
        "good_4": {"id": 4, "qty": 1, "note": "ok"},
        "too_long": {"id": 5, "qty": 1, "note": "x" * 50},
        "wrong_type": {"id": 6, "qty": "lots", "note": "ok"},
        "duplicate": {"id": 1, "qty": 9, "note": "again"},
        "good_7": {"id": 7, "qty": 1, "note": "ok"},
    }
    store = SqlStore(create_engine(url))
    store.dialect.bulk_min_rows = 1 if bulk else None  # type: ignore[misc]
    try:
        outcomes = Writer(store, WriteRules("insert")).write(_rows(table, list(cases.values())))
    finally:
        store.close()

    by_case = dict(zip(cases, outcomes, strict=True))
    for case, code in EXPECTED_CODES[kind].items():
        outcome = by_case[case]
        if code is None:
            assert outcome.status is Status.WRITTEN, case
            continue
        assert outcome.status is Status.FAILED, case
        error = outcome.error
        assert isinstance(error, RecordRejected), case
        assert error.code == code, case
        assert exception_message(error).endswith(f"({code})")
        assert error.coord == outcome.coord
    if kind == "pg":  # PostgreSQL names the constraint and the column
        assert by_case["check"].error.constraint == f"{table}_qty_nonneg"  # type: ignore[union-attr]
        assert by_case["not_null"].error.column == "note"  # type: ignore[union-attr]
        assert by_case["duplicate"].error.constraint == f"{table}_pkey"  # type: ignore[union-attr]
    good = {1, 4, 7} | ({5, 6} if kind == "sqlite" else set())
    assert sorted(r["id"] for r in fetch_rows(url, table)) == sorted(good)
    assert fetch_rows(url, table, order_by="id")[0]["note"] == "ok", "the first insert of id 1 stays"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:1/test", DatabaseUnavailable),  # nothing listens there
        ("mysql+pymysql://root@127.0.0.1:1/test", DatabaseUnavailable),
        ("mysql+pymysql://root@127.0.0.1:3306/no_such_database", FatalError),  # errno 1049
        # libpq reports failures while connecting without a SQLSTATE (only in its message text, which
        # is never parsed): a missing database looks like an outage; SINK_ERRORS_RETRY_TIMEOUT_MS
        # bounds it and `sink check` names it.
        ("postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database", DatabaseUnavailable),
    ],
)
def test_an_unreachable_database_is_an_outage_and_a_missing_one_is_fatal(url: str, error: type[Exception]) -> None:
    store = SqlStore(create_engine(url))
    try:
        with pytest.raises(error) as raised:
            store.ping()
    finally:
        store.close()
    assert type(raised.value) is error


# ------------------------------------------------------------------------------ with the broker


def _wait_exit(sink: RunningSink, timeout: float = 60.0) -> int | None:
    wait_for(lambda: not sink.thread.is_alive(), timeout, message="the worker did not stop by itself")
    return sink.exit_code


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    return committed_offsets(bootstrap, group, topic)[0]


def _with_dead_letter_topic(bootstrap: str, name: str) -> tuple[str, str]:
    """Topic `name` and its dead-letter topic `name_dlq`, both created."""
    topic, dlq = name, f"{name}_dlq"
    create_topic(bootstrap, topic)
    create_topic(bootstrap, dlq)
    return topic, dlq


def _run_until_it_stops(
    bootstrap: str,
    url: str,
    topic: str,
    dlq: str,
    records: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    level: int = logging.ERROR,
    **settings: Any,
) -> None:
    """Produce `records`, run the sink (group `topic`, tolerance all, dead-letter topic `dlq`) with
    the worker's log captured at `level`, and expect it to stop by itself with exit code 1."""
    produce(bootstrap, topic, records)
    env = sink_env(
        bootstrap, url, topic, topic, errors_tolerance="all", errors_deadletterqueue_topic_name=dlq, **settings
    )
    with caplog.at_level(level, logger="sink.worker"), running_sink(env, expect_exit=1) as sink:
        assert _wait_exit(sink) == 1


def test_the_flood_limit_stops_a_topic_of_bad_records(
    bootstrap_servers: str, pg_url: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic, dlq = _with_dead_letter_topic(bootstrap_servers, unique_name)
    bad = [{"value": b'{"n": %d, ' % i} for i in range(30)]
    try:
        _run_until_it_stops(
            bootstrap_servers, pg_url, topic, dlq, bad, caplog, errors_deadletterqueue_max_consecutive=5
        )
    finally:
        drop_table(pg_url, topic)
    assert "5 bad records in a row, the last" in caplog.text
    assert "SINK_ERRORS_DEADLETTERQUEUE_MAX_CONSECUTIVE=5" in caplog.text
    assert [m.offset for m in consume_all(bootstrap_servers, dlq)] == [0, 1, 2, 3]
    assert _committed(bootstrap_servers, unique_name, topic) == 4, "dead-lettered and acknowledged: settled"


def test_a_dead_letter_topic_that_cannot_take_the_record_stops_the_worker(
    bootstrap_servers: str, pg_url: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The dead-letter producer refuses a record larger than its message.max.bytes, as a broker refuses
    one larger than the topic's max.message.bytes: the sink stops, it does not skip the record."""
    topic, dlq = _with_dead_letter_topic(bootstrap_servers, unique_name)
    big_bad = b'{"note": "' + b"x" * 5000  # invalid JSON, and too big for the dead-letter producer
    records = [{"value": json.dumps({"n": 0})}, {"value": big_bad}, {"value": '{"n": 2}'}]
    try:
        _run_until_it_stops(bootstrap_servers, pg_url, topic, dlq, records, caplog, producer__message_max_bytes=1000)
    finally:
        drop_table(pg_url, topic)
    assert f"dead-letter topic '{dlq}' did not take {topic}/0@1" in caplog.text
    committed = _committed(bootstrap_servers, unique_name, topic)
    assert committed is None or committed <= 1, "never committed past the record it could not dead-letter"
    assert consume_all(bootstrap_servers, dlq) == []


def test_an_outage_past_the_retry_timeout_stops_with_exit_1_and_dead_letters_nothing(
    bootstrap_servers: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic, dlq = _with_dead_letter_topic(bootstrap_servers, unique_name)
    _run_until_it_stops(
        bootstrap_servers,
        "postgresql+psycopg://postgres@127.0.0.1:1/test",  # nothing listens: connection refused
        topic,
        dlq,
        [{"value": json.dumps({"n": i})} for i in range(3)],
        caplog,
        level=logging.INFO,
        errors_retry_timeout_ms=3000,
        errors_retry_delay_max_ms=500,
    )
    assert "outage, pausing consumption and retrying" in caplog.text
    # The budget is 3 s; under load the worker notices it at its next back-off step, so the
    # elapsed time it reports is at least 3 s, not exactly 3 s.
    gave_up = re.search(r"gave up after (\d+) s of retries \(SINK_ERRORS_RETRY_TIMEOUT_MS=3000\)", caplog.text)
    assert gave_up is not None, caplog.text
    assert int(gave_up.group(1)) >= 3
    assert _committed(bootstrap_servers, unique_name, topic) is None
    assert consume_all(bootstrap_servers, dlq) == []


def test_reports_tell_insert_from_update_and_join_back_to_the_input(
    bootstrap_servers: str, pg_url: str, unique_name: str
) -> None:
    topic, results, errors = unique_name, f"{unique_name}_ok", f"{unique_name}_bad"
    for name in (topic, results, errors):
        create_topic(bootstrap_servers, name)
    env = sink_env(
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        insert_mode="upsert",
        pk_mode="record_key",
        pk_fields="sku",
        errors_tolerance="all",
        reporter_result_topic_name=results,
        reporter_error_topic_name=errors,
    )
    ts = 1_700_000_000_000
    try:
        with running_sink(env) as sink:
            produce(bootstrap_servers, topic, [{"key": "a", "value": '{"qty": 1}', "timestamp": ts}])
            produce(bootstrap_servers, topic, [{"key": "b", "value": '{"qty": 2}', "timestamp": ts + 1}])
            sink.wait_committed(topic, {0: 2})
            produce(
                bootstrap_servers,
                topic,
                [
                    {"key": "a", "value": '{"qty": 3}', "timestamp": ts + 2},
                    {"key": "c", "value": '{"qty": 4}', "timestamp": ts + 3},
                    {"key": "d", "value": '{"qty": ', "timestamp": ts + 4},
                ],
            )
            sink.wait_committed(topic, {0: 5})
        assert {r["sku"]: r["qty"] for r in fetch_rows(pg_url, topic)} == {"a": 3, "b": 2, "c": 4}
    finally:
        drop_table(pg_url, topic)

    ok = consume_all(bootstrap_servers, results, expected=4)
    assert [(m.key, json.loads(m.value)["operation"]) for m in ok] == [  # type: ignore[arg-type]
        (b"a", "insert"),
        (b"b", "insert"),
        (b"a", "update"),
        (b"c", "insert"),
    ]
    for offset, message in enumerate(ok):
        assert message.header("input_record_topic") == topic.encode()
        assert message.header("input_record_partition") == b"0"
        assert message.header("input_record_offset") == str(offset).encode()
        assert message.header("input_record_timestamp") == str(ts + offset).encode()
        body = json.loads(message.value)  # type: ignore[arg-type]
        assert (body["table"], body["status"], body["key"]) == (topic, "written", {"sku": message.key.decode()})  # type: ignore[union-attr]
    [bad] = consume_all(bootstrap_servers, errors, expected=1)
    assert bad.key == b"d" and bad.header("input_record_offset") == b"4"
    body = json.loads(bad.value)  # type: ignore[arg-type]
    assert (body["status"], body["stage"], body["error_class"]) == (
        "failed",
        "VALUE_CONVERTER",
        "sink.errors.DecodeError",
    )
    assert consume_all(bootstrap_servers, errors) == [bad], "one report per bad record"


VALUE_SCHEMA = {
    "type": "record",
    "name": "Order",
    "namespace": "test.errors",
    "fields": [{"name": "id", "type": "long"}, {"name": "note", "type": "string"}],
}


def _avro(schema_id: int, value: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(VALUE_SCHEMA), value)
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


def test_a_registry_outage_is_waited_out_not_dead_lettered(
    bootstrap_servers: str, pg_url: str, unique_name: str, private_registry: RegistryServer
) -> None:
    topic, dlq = _with_dead_letter_topic(bootstrap_servers, unique_name)
    schema_id = private_registry.register(f"{topic}-value", json.dumps(VALUE_SCHEMA))
    produce(bootstrap_servers, topic, [{"value": _avro(schema_id, {"id": i, "note": f"n{i}"})} for i in range(3)])
    private_registry.available = False
    env = sink_env(
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        value_format="avro",
        schema_registry_url=private_registry.url,
        errors_tolerance="all",
        errors_deadletterqueue_topic_name=dlq,
        errors_retry_delay_max_ms=500,
    )
    try:
        with running_sink(env) as sink:
            wait_for(lambda: private_registry.schema_id_fetches >= 3, 60, message="the worker never asked twice")
            assert sink.thread.is_alive(), "an outage is waited out"
            assert _committed(bootstrap_servers, unique_name, topic) is None
            private_registry.available = True
            sink.wait_committed(topic, {0: 3})
        assert sorted(r["id"] for r in fetch_rows(pg_url, topic)) == [0, 1, 2]
    finally:
        drop_table(pg_url, topic)
    assert consume_all(bootstrap_servers, dlq) == []
