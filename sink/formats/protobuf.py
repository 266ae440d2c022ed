"""`protobuf`: Confluent wire format + Protobuf binary.

Wire format: magic byte 0, 4-byte big-endian schema id (or magic byte 1 and a 16-byte schema
GUID; or that framing in the `__key_schema_id`/`__value_schema_id` header), the message indexes (a
zigzag-varint count then that many zigzag-varint indexes into the schema's top-level then nested messages; a single 0
stands for [0], the first message), then the message. The `SchemaSource` port hands over the
schema's FileDescriptor (the adapter builds it from the registry); this module only needs
`google.protobuf`. Each (schema id, message indexes) is compiled once into a message class, the
neutral shape and a getter per field; per record: header, indexes, one dict lookup, the C parser
and one getter per field.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message_factory import GetMessageClass

from ..errors import DecodeError
from ..model import Column, ColumnType, Kind, Payload, SchemaId, Shape
from ..ports import SchemaRef, SchemaSource
from . import FRAMED_ID, HEADER_SIZE, MAGIC_BYTE, describe_ref, identity, logical, prefix

Convert = Callable[[Any], Any]
Getter = Callable[[Any], Any]

F = FieldDescriptor
UINT64 = ColumnType(Kind.DECIMAL, precision=20, scale=0)
SCALARS: dict[int, ColumnType] = {
    F.TYPE_INT32: ColumnType(Kind.INT32),
    F.TYPE_SINT32: ColumnType(Kind.INT32),
    F.TYPE_SFIXED32: ColumnType(Kind.INT32),
    F.TYPE_INT64: ColumnType(Kind.INT64),
    F.TYPE_SINT64: ColumnType(Kind.INT64),
    F.TYPE_SFIXED64: ColumnType(Kind.INT64),
    F.TYPE_UINT32: ColumnType(Kind.INT64),
    F.TYPE_FIXED32: ColumnType(Kind.INT64),
    F.TYPE_UINT64: UINT64,
    F.TYPE_FIXED64: UINT64,
    F.TYPE_FLOAT: ColumnType(Kind.FLOAT32),
    F.TYPE_DOUBLE: ColumnType(Kind.FLOAT64),
    F.TYPE_BOOL: ColumnType(Kind.BOOLEAN),
    F.TYPE_STRING: ColumnType(Kind.STRING),
    F.TYPE_BYTES: ColumnType(Kind.BYTES),
    F.TYPE_ENUM: ColumnType(Kind.STRING),
}
JSON = ColumnType(Kind.JSON)
MAX_INDEXES = 64


def _timestamp(m: Any) -> dt.datetime:
    return logical.EPOCH + dt.timedelta(seconds=m.seconds, microseconds=m.nanos // 1000)


def _date(m: Any) -> dt.date:
    if not (m.year and m.month and m.day):
        raise ValueError(f"google.type.Date {m.year:04d}-{m.month:02d}-{m.day:02d} is a partial date")
    return dt.date(m.year, m.month, m.day)


def _time_of_day(m: Any) -> dt.time:
    return dt.time(m.hours, m.minutes, m.seconds, m.nanos // 1000)


def _json(m: Any) -> Any:
    return json_format.MessageToDict(m, preserving_proto_field_name=True)


# well-known messages that are one value: full name -> (column type, converter of the message)
WELL_KNOWN: dict[str, tuple[ColumnType, Convert]] = {
    "google.protobuf.Timestamp": (ColumnType(Kind.TIMESTAMP, precision=6), _timestamp),
    "google.type.Date": (ColumnType(Kind.DATE), _date),
    "google.type.TimeOfDay": (ColumnType(Kind.TIME, precision=6), _time_of_day),
    "google.protobuf.Struct": (JSON, _json),
    "google.protobuf.Value": (JSON, _json),
    "google.protobuf.ListValue": (JSON, _json),
}
WRAPPERS = {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}


@dataclass(frozen=True, slots=True)
class Compiled:
    message_class: Any
    shape: Shape
    convert: Convert
    schema_id: SchemaId  # (id, message indexes)


def read_indexes(data: bytes, start: int = HEADER_SIZE) -> tuple[tuple[int, ...], int]:
    """(message indexes, offset after them) from `start` (after the 5-byte header by default)."""
    count, pos = _zigzag(data, start, "message-index count")
    if count == 0:
        return (0,), pos
    if count < 0 or count > MAX_INDEXES:
        raise DecodeError(f"Protobuf: message-index count {count} at byte {start} is not valid")
    indexes = []
    for n in range(count):
        index, pos = _zigzag(data, pos, f"message index {n}")
        if index < 0:
            raise DecodeError(f"Protobuf: message index {n} is negative ({index})")
        indexes.append(index)
    return tuple(indexes), pos


def _zigzag(data: bytes, pos: int, what: str) -> tuple[int, int]:
    start, shift, value = pos, 0, 0
    while True:
        if pos >= len(data):
            raise DecodeError(f"Protobuf: truncated varint ({what}) at byte {start}: the data ends at byte {pos}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise DecodeError(f"Protobuf: varint ({what}) at byte {start} is longer than 10 bytes")


class ProtobufDecoder:
    def __init__(self, registry: SchemaSource) -> None:
        self._registry = registry
        self._compiled: dict[tuple[SchemaRef, tuple[int, ...]], Compiled] = {}

    def decode(self, data: bytes, header: bytes | None = None) -> Payload:
        schema_id: SchemaRef
        if header is None and len(data) >= HEADER_SIZE and data[0] == MAGIC_BYTE:
            schema_id = FRAMED_ID(data)[0]
            indexes, start = read_indexes(data)
        elif header is None:  # magic byte 1 (a schema GUID), or bytes that are not framed
            schema_id, start = prefix(data, "Protobuf")
            indexes, start = read_indexes(data, start)
        else:  # the framing (id or GUID, then the message indexes) in the schema id header
            schema_id, after = prefix(header, "Protobuf", "the schema id header")
            indexes, start = read_indexes(header, after)[0], 0
        compiled = self._compiled.get((schema_id, indexes))
        if compiled is None:
            compiled = self._compiled[schema_id, indexes] = self._compile(schema_id, indexes)
        try:
            message = compiled.message_class.FromString(data[start:])
        except ProtobufDecodeError as exc:
            name = compiled.message_class.DESCRIPTOR.full_name
            raise DecodeError(
                f"Protobuf: the {len(data) - start}-byte body at byte {start} is not a valid {name} "
                f"({describe_ref(schema_id)}): {exc}"
            ) from None
        try:
            value = compiled.convert(message)
        except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:  # a top-level Date, Timestamp...
            raise DecodeError(f"Protobuf ({describe_ref(schema_id)})", detail=str(exc)) from None
        return Payload(value, compiled.shape, compiled.schema_id)

    def _compile(self, schema_id: SchemaRef, indexes: tuple[int, ...]) -> Compiled:
        try:
            file = self._registry.protobuf_file(schema_id)
        except LookupError as exc:
            reference = getattr(exc, "reference", None)
            if reference:
                raise DecodeError(
                    f"Protobuf: {describe_ref(schema_id)} imports {reference!r} (a schema reference), "
                    f"which the schema registry does not have: {exc}"
                ) from None
            raise DecodeError(f"Protobuf: unknown {describe_ref(schema_id)}: {exc}") from None
        except ValueError as exc:
            raise DecodeError(f"Protobuf: {exc}") from None
        descriptor = message_descriptor(file, indexes, schema_id)
        where = f"Protobuf {descriptor.full_name} ({describe_ref(schema_id)})"
        shape, convert = _Compiler(where).top(descriptor)
        key = schema_id if indexes == (0,) else (schema_id, indexes)
        return Compiled(GetMessageClass(descriptor), shape, convert, key)


def message_descriptor(file: Any, indexes: tuple[int, ...], schema_id: SchemaRef) -> Descriptor:
    """The message the indexes point at: top-level message, then nested messages, in order."""
    candidates = list(file.message_types_by_name.values())
    descriptor: Descriptor | None = None
    for depth, index in enumerate(indexes):
        if index >= len(candidates):
            within = "top-level" if descriptor is None else f"nested in {descriptor.full_name}"
            raise DecodeError(
                f"Protobuf: message index {index} (position {depth} of {list(indexes)}) is out of range: "
                f"{describe_ref(schema_id)} has {len(candidates)} message(s) {within}"
            )
        descriptor = candidates[index]
        candidates = list(descriptor.nested_types)
    assert descriptor is not None
    return descriptor


class _Compiler:
    def __init__(self, where: str) -> None:
        self.where = where
        self._messages: dict[str, Convert] = {}

    def top(self, descriptor: Descriptor) -> tuple[Shape, Convert]:
        single = self.single(descriptor)
        if single is not None:  # a wrapper, Timestamp, Date...: one value (e.g. a primitive key)
            column_type, convert = single
            return column_type, convert
        fields = [(fd.name, self.getter(fd)) for fd in descriptor.fields]
        columns = tuple(self.column(fd) for fd in descriptor.fields)
        return columns, _record(fields, self.where)

    # -------------------------------------------------------------- types

    def single(self, descriptor: Descriptor) -> tuple[ColumnType, Convert] | None:
        """Messages that stand for one value: well-known types and wrappers (nullable primitives)."""
        name = descriptor.full_name
        if name in WELL_KNOWN:
            return WELL_KNOWN[name]
        if name in WRAPPERS:
            inner = descriptor.fields_by_name["value"]
            convert = self.scalar(inner)
            return SCALARS[inner.type], (attrgetter("value") if convert is None else lambda m: convert(m.value))
        return None

    def column(self, fd: FieldDescriptor) -> Column:
        if _is_map(fd):
            return Column(fd.name, JSON, nullable=True)
        if fd.is_repeated:
            item = self.item_type(fd)
            array = ColumnType(Kind.ARRAY, item=item) if item.kind not in (Kind.JSON, Kind.ARRAY) else JSON
            return Column(fd.name, array, nullable=True)
        if fd.message_type is not None:
            return Column(fd.name, self.item_type(fd), nullable=True)
        column_type = SCALARS[fd.type]
        convert = self.scalar(fd) or identity
        if fd.is_required:
            return Column(fd.name, column_type, nullable=False)
        if fd.has_presence:  # proto3 optional, proto2 optional, oneof members
            if fd.has_default_value:
                return Column(fd.name, column_type, True, convert(fd.default_value), True)
            return Column(fd.name, column_type, nullable=True)
        # proto3 implicit presence: never null, an unset field reads as its zero value
        return Column(fd.name, column_type, False, convert(fd.default_value), True)

    def item_type(self, fd: FieldDescriptor) -> ColumnType:
        if fd.message_type is None:
            return SCALARS[fd.type]
        single = self.single(fd.message_type)
        return single[0] if single is not None else JSON

    # -------------------------------------------------------------- values

    def scalar(self, fd: FieldDescriptor) -> Convert | None:
        """Converter of one non-message value; None when protobuf's Python value is final."""
        if fd.type == F.TYPE_ENUM:
            assert fd.enum_type is not None  # an enum field always has its type
            names: dict[int, str] = {}
            for v in fd.enum_type.values:  # aliases: the first-declared name, as protobuf's own
                names.setdefault(v.number, v.name)
            return lambda v: names.get(v) or str(v)  # open enums: an unknown number stays a number
        if fd.type in (F.TYPE_UINT64, F.TYPE_FIXED64):
            return decimal.Decimal
        return None

    def value(self, fd: FieldDescriptor) -> Convert | None:
        """Converter of one element of the field (the field itself unless repeated)."""
        if fd.message_type is None:
            return self.scalar(fd)
        single = self.single(fd.message_type)
        return single[1] if single is not None else self.message(fd.message_type)

    def message(self, descriptor: Descriptor) -> Convert:
        """A nested message (a JSON value): a dict of its fields, converted the same way."""
        name = descriptor.full_name
        if name not in self._messages:
            self._messages[name] = lambda m: self._messages[name](m)  # recursive types: bound later
            fields = [(fd.name, self.getter(fd)) for fd in descriptor.fields]
            self._messages[name] = lambda m: {field: get(m) for field, get in fields}
        return self._messages[name]

    def getter(self, fd: FieldDescriptor) -> Getter:
        name = fd.name
        if _is_map(fd):
            assert fd.message_type is not None  # a map is a repeated entry message
            entry = self.value(fd.message_type.fields_by_name["value"])
            if entry is None:
                return lambda m: dict(getattr(m, name))
            convert_entry: Convert = entry
            return lambda m: {k: convert_entry(v) for k, v in getattr(m, name).items()}
        convert = self.value(fd)
        if fd.is_repeated:
            if convert is None:
                return lambda m: list(getattr(m, name))
            return lambda m: [convert(v) for v in getattr(m, name)]
        if fd.has_presence and not (fd.message_type is None and fd.has_default_value and fd.containing_oneof is None):
            # an unset field with an explicit default (proto2 `[default = 5]`) reads as that default
            if convert is None:
                return lambda m: getattr(m, name) if m.HasField(name) else None
            return lambda m: convert(getattr(m, name)) if m.HasField(name) else None
        if convert is None:
            return attrgetter(name)
        return lambda m: convert(getattr(m, name))


def _record(fields: list[tuple[str, Getter]], where: str) -> Convert:
    def convert(message: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        field = ""
        try:
            for field, get in fields:
                out[field] = get(message)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise DecodeError(f"{where}, field {field!r}", detail=str(exc)) from None
        return out

    return convert


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.is_repeated and fd.message_type is not None and fd.message_type.GetOptions().map_entry
