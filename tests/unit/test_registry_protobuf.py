"""The Protobuf registry format: every field kind, column types and nullability, message indexes,
well-known types, and its decode errors. The `SchemaSource` port is a dict-backed fake.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2, wrappers_pb2
from google.protobuf.message_factory import GetMessageClass
from google.type import date_pb2

from sink.formats.protobuf import ProtobufDecoder, read_indexes
from sink.model import Column, ColumnType, Kind
from tests.support.fakes import FakeRegistry
from tests.support.wire import decode_error, header, proto_bytes

UTC = dt.UTC
INT32, INT64 = ColumnType(Kind.INT32), ColumnType(Kind.INT64)
STRING, BYTES, JSON = ColumnType(Kind.STRING), ColumnType(Kind.BYTES), ColumnType(Kind.JSON)
BOOLEAN, FLOAT32, FLOAT64 = ColumnType(Kind.BOOLEAN), ColumnType(Kind.FLOAT32), ColumnType(Kind.FLOAT64)


FD = descriptor_pb2.FieldDescriptorProto


def proto_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, wrappers_pb2, date_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    return pool


def shop_proto() -> descriptor_pb2.FileDescriptorProto:
    """shop.proto: Order (every kind of field), Line, Key; Order nests Note (index [0, 0])."""
    file = descriptor_pb2.FileDescriptorProto(
        name="shop.proto",
        package="shop",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto", "google/type/date.proto"],
    )
    status = file.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)

    order = file.message_type.add(name="Order")
    order.nested_type.add(name="Note").field.add(name="text", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    entry = order.nested_type.add(name="AttrsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    order.oneof_decl.add(name="payment")
    order.oneof_decl.add(name="_opt")
    scalars = [
        ("i32", FD.TYPE_INT32),
        ("s32", FD.TYPE_SINT32),
        ("sf32", FD.TYPE_SFIXED32),
        ("i64", FD.TYPE_INT64),
        ("s64", FD.TYPE_SINT64),
        ("sf64", FD.TYPE_SFIXED64),
        ("u32", FD.TYPE_UINT32),
        ("fx32", FD.TYPE_FIXED32),
        ("u64", FD.TYPE_UINT64),
        ("fx64", FD.TYPE_FIXED64),
        ("fl", FD.TYPE_FLOAT),
        ("db", FD.TYPE_DOUBLE),
        ("ok", FD.TYPE_BOOL),
        ("name", FD.TYPE_STRING),
        ("raw", FD.TYPE_BYTES),
    ]
    number = 0
    for number, (name, kind) in enumerate(scalars, start=1):
        order.field.add(name=name, number=number, type=kind, label=FD.LABEL_OPTIONAL)

    def add(name: str, kind: int, type_name: str = "", label: int = FD.LABEL_OPTIONAL, **extra: Any) -> None:
        nonlocal number
        number += 1
        if type_name:
            extra["type_name"] = type_name
        order.field.add(name=name, number=number, type=kind, label=label, **extra)

    add("status", FD.TYPE_ENUM, ".shop.Status")
    add("opt", FD.TYPE_STRING, proto3_optional=True, oneof_index=1)
    add("card", FD.TYPE_STRING, oneof_index=0)
    add("cash", FD.TYPE_INT64, oneof_index=0)
    add("tags", FD.TYPE_STRING, label=FD.LABEL_REPEATED)
    add("scores", FD.TYPE_UINT64, label=FD.LABEL_REPEATED)
    add("lines", FD.TYPE_MESSAGE, ".shop.Line", label=FD.LABEL_REPEATED)
    add("attrs", FD.TYPE_MESSAGE, ".shop.Order.AttrsEntry", label=FD.LABEL_REPEATED)
    add("line", FD.TYPE_MESSAGE, ".shop.Line")
    add("created", FD.TYPE_MESSAGE, ".google.protobuf.Timestamp")
    add("day", FD.TYPE_MESSAGE, ".google.type.Date")
    add("count", FD.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    add("label", FD.TYPE_MESSAGE, ".google.protobuf.StringValue")
    add("big", FD.TYPE_MESSAGE, ".google.protobuf.UInt64Value")
    add("stamps", FD.TYPE_MESSAGE, ".google.protobuf.Timestamp", label=FD.LABEL_REPEATED)

    line = file.message_type.add(name="Line")
    line.field.add(name="sku", number=1, type=FD.TYPE_STRING, label=FD.LABEL_OPTIONAL)
    line.field.add(
        name="at", number=2, type=FD.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=FD.LABEL_OPTIONAL
    )
    key = file.message_type.add(name="Key")
    key.field.add(name="id", number=1, type=FD.TYPE_INT64, label=FD.LABEL_OPTIONAL)
    return file


@pytest.fixture(scope="module")
def shop() -> Any:
    pool = proto_pool()
    pool.Add(shop_proto())
    return pool.FindFileByName("shop.proto")


def message_class(file: Any, name: str) -> Any:
    """A message class of the file's pool (`Timestamp`, `Date`... name well-known types in it)."""
    full = name if "." in name else f"shop.{name}"
    return GetMessageClass(file.pool.FindMessageTypeByName(full))


def test_protobuf_every_field_kind(shop: Any) -> None:
    Order, Line = message_class(shop, "Order"), message_class(shop, "Line")
    Timestamp, Date = message_class(shop, "google.protobuf.Timestamp"), message_class(shop, "google.type.Date")
    Int64Value, UInt64Value = (message_class(shop, f"google.protobuf.{n}") for n in ("Int64Value", "UInt64Value"))
    order = Order(
        i32=-5,
        s32=-6,
        sf32=-7,
        i64=-(2**40),
        s64=-(2**41),
        sf64=-(2**42),
        u32=2**32 - 1,
        fx32=7,
        u64=2**64 - 1,
        fx64=5,
        fl=1.5,
        db=2.25,
        ok=True,
        name="Grüße",
        raw=b"\x00\x01",
        status=1,
        opt="o",
        card="visa",
        tags=["a", "b"],
        scores=[1, 2**63],
        lines=[Line(sku="A")],
        attrs={"k": 1},
        line=Line(sku="B", at=Timestamp(seconds=60)),
        created=Timestamp(seconds=1_700_000_000, nanos=123_456_789),
        day=Date(year=2024, month=2, day=29),
        count=Int64Value(value=0),
        big=UInt64Value(value=2**64 - 1),
        stamps=[Timestamp(seconds=0)],
    )
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    payload = decoder.decode(proto_bytes(order))
    created = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert payload.data == {
        "i32": -5,
        "s32": -6,
        "sf32": -7,
        "i64": -(2**40),
        "s64": -(2**41),
        "sf64": -(2**42),
        "u32": 2**32 - 1,
        "fx32": 7,
        "u64": Decimal(2**64 - 1),
        "fx64": Decimal(5),
        "fl": 1.5,
        "db": 2.25,
        "ok": True,
        "name": "Grüße",
        "raw": b"\x00\x01",
        "status": "PAID",
        "opt": "o",
        "card": "visa",
        "cash": None,
        "tags": ["a", "b"],
        "scores": [Decimal(1), Decimal(2**63)],
        "lines": [{"sku": "A", "at": None}],
        "attrs": {"k": 1},
        "line": {"sku": "B", "at": dt.datetime(1970, 1, 1, 0, 1, tzinfo=UTC)},
        "created": created,
        "day": dt.date(2024, 2, 29),
        "count": 0,
        "label": None,
        "big": Decimal(2**64 - 1),
        "stamps": [dt.datetime(1970, 1, 1, tzinfo=UTC)],
    }
    assert payload.schema_id == 1


def test_protobuf_column_types_and_nullability(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    payload = decoder.decode(proto_bytes(message_class(shop, "Order")()))
    columns = {c.name: c for c in payload.shape}
    u64 = ColumnType(Kind.DECIMAL, precision=20, scale=0)
    assert {n: c.type for n, c in columns.items()} == {
        "i32": INT32,
        "s32": INT32,
        "sf32": INT32,
        "i64": INT64,
        "s64": INT64,
        "sf64": INT64,
        "u32": INT64,
        "fx32": INT64,
        "u64": u64,
        "fx64": u64,
        "fl": FLOAT32,
        "db": FLOAT64,
        "ok": BOOLEAN,
        "name": STRING,
        "raw": BYTES,
        "status": STRING,
        "opt": STRING,
        "card": STRING,
        "cash": INT64,
        "tags": ColumnType(Kind.ARRAY, item=STRING),
        "scores": ColumnType(Kind.ARRAY, item=u64),
        "lines": JSON,
        "attrs": JSON,
        "line": JSON,
        "created": ColumnType(Kind.TIMESTAMP, precision=6),
        "day": ColumnType(Kind.DATE),
        "count": INT64,
        "label": STRING,
        "big": u64,
        "stamps": ColumnType(Kind.ARRAY, item=ColumnType(Kind.TIMESTAMP, precision=6)),
    }
    nullable = {n for n, c in columns.items() if c.nullable}
    assert nullable == {
        "opt",
        "card",
        "cash",
        "tags",
        "scores",
        "lines",
        "attrs",
        "line",
        "created",
        "day",
        "count",
        "label",
        "big",
        "stamps",
    }
    assert columns["i32"] == Column("i32", INT32, nullable=False, default=0, has_default=True)
    assert columns["status"].default == "NEW" and columns["u64"].default == Decimal(0)
    # an empty message: implicit-presence scalars read as zero values, the rest as null / empty
    data = payload.data
    assert (data["i32"], data["name"], data["status"], data["u64"]) == (0, "", "NEW", Decimal(0))
    assert (data["opt"], data["line"], data["created"], data["count"], data["tags"], data["attrs"]) == (
        None,
        None,
        None,
        None,
        [],
        {},
    )


def test_protobuf_message_indexes(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    key = decoder.decode(proto_bytes(message_class(shop, "Key")(id=9), indexes=b"\x02\x04"))  # [2]
    assert (key.data, key.schema_id) == ({"id": 9}, (1, (2,)))
    assert key.shape == (Column("id", INT64, nullable=False, default=0, has_default=True),)
    Note = GetMessageClass(shop.pool.FindMessageTypeByName("shop.Order.Note"))
    note = decoder.decode(proto_bytes(Note(text="hi"), indexes=b"\x04\x00\x00"))  # [0, 0]
    assert note.data == {"text": "hi"}
    assert read_indexes(header(1) + b"\x00") == ((0,), 6)
    assert read_indexes(header(1) + b"\x06\x02\x04\x06") == ((1, 2, 3), 9)


def test_protobuf_index_out_of_range(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    message = decode_error(decoder, header(1) + b"\x02\x0a")  # [5]
    assert "message index 5 (position 0 of [5]) is out of range: schema id 1 has 3 message(s) top-level" in message
    message = decode_error(decoder, header(1) + b"\x04\x00\x0a")  # [0, 5]
    assert "nested in shop.Order" in message


def test_protobuf_truncated(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    data = proto_bytes(message_class(shop, "Order")(name="hello", i32=3))
    message = decode_error(decoder, data[:-2])
    assert "body at byte 6 is not a valid shop.Order (schema id 1)" in message
    assert "truncated varint (message-index count) at byte 5" in decode_error(decoder, header(1))
    assert "truncated varint (message index 1) at byte 7" in decode_error(decoder, header(1) + b"\x04\x00")


def test_protobuf_unknown_id_and_partial_date(shop: Any) -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={1: shop}))
    assert "Protobuf: unknown schema id 2" in decode_error(decoder, header(2) + b"\x00")
    Date = message_class(shop, "google.type.Date")
    order = message_class(shop, "Order")(day=Date(year=2024, month=0, day=0))
    assert "field 'day': google.type.Date 2024-00-00 is a partial date" in decode_error(decoder, proto_bytes(order))


def test_protobuf_wrapper_message_is_a_primitive_key() -> None:
    decoder = ProtobufDecoder(FakeRegistry(files={3: wrappers_pb2.DESCRIPTOR}))
    index = list(wrappers_pb2.DESCRIPTOR.message_types_by_name).index("StringValue")
    data = header(3) + b"\x02" + bytes([index * 2]) + wrappers_pb2.StringValue(value="k1").SerializeToString()
    payload = decoder.decode(data)
    assert (payload.data, payload.shape) == ("k1", STRING)
