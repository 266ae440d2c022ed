"""The registry adapter over real HTTP against the in-process test registry (no broker): schemas
fetched once per id, unknown ids, outages, refused connections and timeouts, basic auth, a URL that
is not a registry, Protobuf files with references."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import time

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message_factory import GetMessageClass

from sink.adapters.registry import RegistrySchemaSource
from sink.errors import ConfigError, DecodeError, RegistryUnavailable, RetriableError
from sink.formats import make_decoder
from tests.support.registry import RegistryServer
from tests.support.wire import avro_bytes, decode_error, header, proto_bytes, record

UTC = dt.UTC


pytestmark = pytest.mark.integration
FD = descriptor_pb2.FieldDescriptorProto

AVRO_ROW = record({"name": "id", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": None})


def test_schema_fetched_once_per_id_over_http(private_registry: RegistryServer) -> None:
    first = private_registry.register("a-value", json.dumps(AVRO_ROW))
    second = private_registry.register("b-value", '"string"')
    decoder = make_decoder("avro", RegistrySchemaSource(private_registry.url))
    for i in range(20):
        assert decoder.decode(avro_bytes(AVRO_ROW, {"id": i, "note": None}, first)).data == {"id": i, "note": None}
    assert decoder.decode(avro_bytes("string", "k", second)).data == "k"
    assert private_registry.schema_id_fetches == 2


def test_unknown_id_over_http_is_a_decode_error_and_outages_are_retriable(private_registry: RegistryServer) -> None:
    decoder = make_decoder("avro", RegistrySchemaSource(private_registry.url))
    message = decode_error(decoder, header(404) + b"\x00")
    assert "unknown schema id 404" in message
    schema_id = private_registry.register("a-value", json.dumps(AVRO_ROW))
    private_registry.available = False
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable) as outage:
        decoder.decode(avro_bytes(AVRO_ROW, {"id": 1, "note": None}, schema_id))
    assert time.monotonic() - started < 2, "no client-side retry loop"
    assert "HTTP 503" in str(outage.value) and isinstance(outage.value, RetriableError)
    assert not isinstance(outage.value, DecodeError)
    private_registry.available = True
    assert decoder.decode(avro_bytes(AVRO_ROW, {"id": 1, "note": "x"}, schema_id)).data == {"id": 1, "note": "x"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_registry_unavailable() -> None:
    decoder = make_decoder("avro", RegistrySchemaSource(f"http://127.0.0.1:{_free_port()}"))
    with pytest.raises(RegistryUnavailable, match="did not answer for schema id 1: ConnectError"):
        decoder.decode(header(1) + b"\x00")
    source = RegistrySchemaSource(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(RegistryUnavailable):
        source.protobuf_file(1)


def test_timeout_is_registry_unavailable() -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        source = RegistrySchemaSource(url, {"timeout": "0.3"})
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="Timeout"):
            source.schema(1)
        assert time.monotonic() - started < 3


def test_basic_auth_pass_through() -> None:
    with RegistryServer(basic_auth=("alice", "s3cret")) as server:
        schema_id = server.register("a-value", json.dumps(AVRO_ROW))
        data = avro_bytes(AVRO_ROW, {"id": 1, "note": None}, schema_id)
        good = RegistrySchemaSource(
            server.url, {"basic.auth.credentials.source": "USER_INFO", "basic.auth.user.info": "alice:s3cret"}
        )
        assert make_decoder("avro", good).decode(data).data == {"id": 1, "note": None}
        host = server.url.removeprefix("http://")
        in_url = RegistrySchemaSource(f"http://alice:s3cret@{host}", {"basic.auth.credentials.source": "URL"})
        assert in_url.schema(schema_id)[0] == "AVRO"
        assert in_url.url == server.url, "credentials never appear in the adapter's URL"
        wrong = RegistrySchemaSource(server.url, {"basic.auth.user.info": "alice:nope"})
        with pytest.raises(ConfigError, match="refused the credentials") as refused:
            make_decoder("avro", wrong).decode(data)
        assert "nope" not in str(refused.value)


def test_describe_and_a_url_that_is_not_a_registry(private_registry: RegistryServer) -> None:
    private_registry.register("a-value", '"string"')
    assert RegistrySchemaSource(private_registry.url).describe() == f"{private_registry.url} answers, 1 subject(s)"
    wrong = RegistrySchemaSource(private_registry.url + "/not-here")
    with pytest.raises(ConfigError, match="is it a Schema Registry URL"):
        wrong.schema(1)


def test_protobuf_file_from_the_serialized_schema_with_references(private_registry: RegistryServer) -> None:
    common = descriptor_pb2.FileDescriptorProto(name="common.proto", package="common", syntax="proto3")
    money = common.message_type.add(name="Money")
    money.field.add(name="cents", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    main = descriptor_pb2.FileDescriptorProto(
        name="main.proto",
        package="main",
        syntax="proto3",
        dependency=["common.proto", "google/protobuf/timestamp.proto"],
    )
    order = main.message_type.add(name="Order")
    order.field.add(name="total", number=1, type=FD.TYPE_MESSAGE, type_name=".common.Money", label=FD.LABEL_OPTIONAL)
    order.field.add(
        name="at", number=2, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL
    )

    def b64(file: descriptor_pb2.FileDescriptorProto) -> str:
        return base64.b64encode(file.SerializeToString()).decode()

    private_registry.register("common.proto", b64(common), "PROTOBUF")
    schema_id = private_registry.register(
        "orders-value", b64(main), "PROTOBUF", [{"name": "common.proto", "subject": "common.proto", "version": 1}]
    )
    source = RegistrySchemaSource(private_registry.url)
    file = source.protobuf_file(schema_id)
    assert source.protobuf_file(schema_id) is file
    Order = GetMessageClass(file.message_types_by_name["Order"])
    Money = GetMessageClass(file.pool.FindMessageTypeByName("common.Money"))
    Timestamp = GetMessageClass(file.pool.FindMessageTypeByName("google.protobuf.Timestamp"))
    data = proto_bytes(Order(total=Money(cents=150), at=Timestamp(seconds=1)), schema_id)
    payload = make_decoder("protobuf", source).decode(data)
    assert payload.data == {"total": {"cents": 150}, "at": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}
    assert private_registry.schema_id_fetches == 1

    text_id = private_registry.register("text-value", 'syntax = "proto3";\nmessage M { int32 a = 1; }\n', "PROTOBUF")
    message = decode_error(make_decoder("protobuf", source), header(text_id) + b"\x00")
    assert "not a serialized FileDescriptorProto" in message
    avro_id = private_registry.register("avro-value", '"string"')
    assert "is a AVRO schema, not PROTOBUF" in decode_error(make_decoder("protobuf", source), header(avro_id) + b"\x00")
