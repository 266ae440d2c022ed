"""Kafka Connect and Debezium logical types: their column type and their Python value.

Connect JSON, Avro (`connect.name`) and Protobuf all carry the same logical names, so the
knowledge of what `io.debezium.time.MicroTimestamp` means lives here once. So does the reading of
the source column types Debezium propagates in schema parameters (`with_source_type`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..jsonvalues import json_document
from ..model import ColumnType, Kind

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_LOCAL = dt.datetime(1970, 1, 1)
EPOCH_DATE = dt.date(1970, 1, 1)

CONNECT_DECIMAL = "org.apache.kafka.connect.data.Decimal"
DEBEZIUM_VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
DEFAULT_DECIMAL_PRECISION = 38
GEOMETRY = "io.debezium.data.geometry.Geometry"
GEOGRAPHY = "io.debezium.data.geometry.Geography"
POINT = "io.debezium.data.geometry.Point"


# The most digits a decimal read from bytes may have. A Decimal of a longer integer costs time
# quadratic in its length: 100 KB of bytes took 1.4 s, 200 KB 6 s, so one record of a few hundred
# kilobytes stalled the sink. 20,000 digits (8 KB) take 6 ms; PostgreSQL's numeric declares at most
# 1,000 (MariaDB's 65), SQLite's text column holds any, and a schema may declare 1,200.
MAX_DECIMAL_DIGITS = 20_000
MAX_DECIMAL_BITS = math.ceil(MAX_DECIMAL_DIGITS * math.log2(10))


def decimal_from_bytes(raw: bytes, scale: int) -> decimal.Decimal:
    """Connect/Avro decimals: big-endian two's complement unscaled integer."""
    integer = int.from_bytes(raw, "big", signed=True)
    check_decimal_bits(integer.bit_length())
    unscaled = decimal.Decimal(integer)
    # Built from its digits: scaleb() would round to the context's 28 digits (Connect allows 38+).
    sign, digits, _exponent = unscaled.as_tuple()
    return decimal.Decimal((sign, digits, -scale))


def check_decimal_bits(bits: int, limit: int = MAX_DECIMAL_BITS, digits: int = MAX_DECIMAL_DIGITS) -> None:
    """A ValueError (the record's error) for an unscaled value of more bits than `digits` take."""
    if bits > limit:
        raise ValueError(f"a decimal of {bits:,} bits, more than {digits:,} digits hold")


def _bytes(value: Any) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def _decimal(params: Mapping[str, Any]) -> Callable[[Any], decimal.Decimal]:
    scale = int(params.get("scale", 0))

    def convert(value: Any) -> decimal.Decimal:
        numeric = isinstance(value, int | float | str | decimal.Decimal) and not isinstance(value, bool)
        if numeric and not _looks_base64(value):
            return decimal.Decimal(str(value))
        return decimal_from_bytes(_bytes(value), scale)

    return convert


def _looks_base64(value: Any) -> bool:
    # Connect's JsonConverter writes decimals as base64 text by default, numbers with decimal.format=NUMERIC.
    # Text is base64 whenever it is valid base64: "1234" is the unscaled value 0xd76df8, not 1234.
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
        return True
    except binascii.Error:
        return False


def _variable_decimal(value: Any) -> decimal.Decimal:
    return decimal_from_bytes(_bytes(value["value"]), int(value["scale"]))


def _zoned(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _zoned_time(value: Any) -> dt.time:
    parsed = dt.datetime.fromisoformat("1970-01-01T" + str(value).replace("Z", "+00:00"))
    return parsed.timetz()


def _json_document(value: Any) -> Any:
    """Debezium's Json: the document's text, checked to be JSON (a malformed one is the record's
    error) and kept as it is (`JsonDocument`); a value that is already parsed stays as it is."""
    if not isinstance(value, str):
        return value
    json.loads(value)
    return json_document(value)


def _spatial(value: Any) -> dict[str, Any]:
    # Debezium's JsonConverter form of the struct: the WKB as base64 text, the other fields as they are.
    document = dict(value)
    wkb = document.get("wkb")
    if wkb is not None and not isinstance(wkb, str):
        document["wkb"] = base64.b64encode(bytes(wkb)).decode("ascii")
    return document


DAY_US = 86_400_000_000


def _time_of_day(micros: int) -> dt.time:
    """A time of day from microseconds since midnight; one outside the day is the record's error,
    not wrapped round: PostgreSQL's 24:00:00 (Debezium MicroTime 86400000000) would land as 00:00."""
    if not 0 <= micros < DAY_US:
        raise ValueError(f"{micros} microseconds since midnight is no time of day (24:00:00 has none in Python)")
    return (EPOCH_LOCAL + dt.timedelta(microseconds=micros)).time()


def _time(unit_us: int) -> Callable[[Any], dt.time]:
    return lambda v: _time_of_day(int(v) * unit_us)


def _nano_time(v: Any) -> dt.time:
    return _time_of_day(int(v) // 1000)


def _microseconds(unit_us: float) -> Callable[[Any], int]:
    # In integers: a float product (nanoseconds * 0.001) is a microsecond too late for about a fifth
    # of today's instants. Nanoseconds are truncated to their microsecond (floor, as NanoTime's and
    # Protobuf's nanos are: -1 ns is 23:59:59.999999 the day before).
    if unit_us >= 1:
        return lambda v: int(v) * int(unit_us)
    per_us = round(1 / unit_us)
    return lambda v: int(v) // per_us


def _instant(unit_us: float) -> Callable[[Any], dt.datetime]:
    micros = _microseconds(unit_us)
    return lambda v: EPOCH + dt.timedelta(microseconds=micros(v))


def _local(unit_us: float) -> Callable[[Any], dt.datetime]:
    micros = _microseconds(unit_us)
    return lambda v: EPOCH_LOCAL + dt.timedelta(microseconds=micros(v))


def _date(v: Any) -> dt.date:
    return EPOCH_DATE + dt.timedelta(days=int(v))


# name -> (column type from the schema parameters, converter from the wire value)
LOGICAL: dict[str, tuple[Callable[[Mapping[str, Any]], ColumnType], Callable[[Any], Any] | None]] = {
    CONNECT_DECIMAL: (
        lambda p: ColumnType(
            Kind.DECIMAL,
            precision=int(p.get("connect.decimal.precision", p.get("precision", DEFAULT_DECIMAL_PRECISION))),
            scale=int(p.get("scale", 0)),
        ),
        None,  # needs the parameters: see converter()
    ),
    "org.apache.kafka.connect.data.Date": (lambda p: ColumnType(Kind.DATE), _date),
    "org.apache.kafka.connect.data.Time": (lambda p: ColumnType(Kind.TIME, precision=3), _time(1000)),
    "org.apache.kafka.connect.data.Timestamp": (
        lambda p: ColumnType(Kind.TIMESTAMP, precision=3),
        _instant(1000),
    ),
    "io.debezium.time.Date": (lambda p: ColumnType(Kind.DATE), _date),
    "io.debezium.time.Time": (lambda p: ColumnType(Kind.TIME, precision=3), _time(1000)),
    "io.debezium.time.MicroTime": (lambda p: ColumnType(Kind.TIME, precision=6), _time(1)),
    "io.debezium.time.NanoTime": (lambda p: ColumnType(Kind.TIME, precision=6), _nano_time),
    "io.debezium.time.Timestamp": (lambda p: ColumnType(Kind.LOCAL_TIMESTAMP, precision=3), _local(1000)),
    "io.debezium.time.MicroTimestamp": (lambda p: ColumnType(Kind.LOCAL_TIMESTAMP, precision=6), _local(1)),
    "io.debezium.time.NanoTimestamp": (
        lambda p: ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
        _local(0.001),
    ),
    "io.debezium.time.ZonedTimestamp": (lambda p: ColumnType(Kind.TIMESTAMP, precision=6), _zoned),
    "io.debezium.time.ZonedTime": (lambda p: ColumnType(Kind.TIME, precision=6), _zoned_time),
    "io.debezium.time.Year": (lambda p: ColumnType(Kind.INT32), int),
    "io.debezium.data.Json": (lambda p: ColumnType(Kind.JSON), _json_document),
    "io.debezium.data.Uuid": (lambda p: ColumnType(Kind.UUID), lambda v: uuid.UUID(str(v))),
    "io.debezium.data.Enum": (lambda p: ColumnType(Kind.STRING), str),
    "io.debezium.data.EnumSet": (lambda p: ColumnType(Kind.STRING), str),  # the members, comma-separated
    "io.debezium.data.Xml": (lambda p: ColumnType(Kind.STRING), str),
    "io.debezium.time.IsoDate": (lambda p: ColumnType(Kind.DATE), lambda v: dt.date.fromisoformat(str(v)[:10])),
    "io.debezium.time.IsoTime": (lambda p: ColumnType(Kind.TIME, precision=6), _zoned_time),
    "io.debezium.time.IsoTimestamp": (lambda p: ColumnType(Kind.TIMESTAMP, precision=6), _zoned),
    "io.debezium.data.Bits": (lambda p: ColumnType(Kind.BYTES), _bytes),
    # Spatial structs {wkb, srid} (Point also {x, y}): one JSON document {"wkb": base64, "srid": n}
    # per column, since no database here has a spatial type without an extension (PostGIS).
    GEOMETRY: (lambda p: ColumnType(Kind.JSON), _spatial),
    GEOGRAPHY: (lambda p: ColumnType(Kind.JSON), _spatial),
    POINT: (lambda p: ColumnType(Kind.JSON), _spatial),
    DEBEZIUM_VARIABLE_DECIMAL: (
        lambda p: ColumnType(Kind.DECIMAL, precision=DEFAULT_DECIMAL_PRECISION, scale=None),
        _variable_decimal,
    ),
}


def column_type(name: str | None, params: Mapping[str, Any] | None = None) -> ColumnType | None:
    """The column type of a logical name, or None when the name is not a logical type we know."""
    entry = LOGICAL.get(name or "")
    return entry[0](params or {}) if entry else None


def converter(name: str | None, params: Mapping[str, Any] | None = None) -> Callable[[Any], Any] | None:
    """The wire-value converter of a logical name (None: the value is used as it is)."""
    if name == CONNECT_DECIMAL:
        return _decimal(params or {})
    entry = LOGICAL.get(name or "")
    return entry[1] if entry else None


# ------------------------------------------------------------------------------ propagated source column types

# Debezium's `column.propagate.source.type` / `datatype.propagate.source.type` put the source
# column's type in each field schema's parameters (Avro: `connect.parameters`).
SOURCE_TYPE = "__debezium.source.column.type"
SOURCE_LENGTH = "__debezium.source.column.length"
SOURCE_SCALE = "__debezium.source.column.scale"

# The source types whose length bounds a string (Debezium's JDBC sink: CHAR and VARCHAR families).
CHARACTER_TYPES = frozenset(
    {"CHAR", "CHARACTER", "BPCHAR", "NCHAR", "VARCHAR", "VARCHAR2", "CHARACTER VARYING", "NVARCHAR", "NVARCHAR2"}
)
BINARY_TYPES = frozenset({"BINARY", "VARBINARY"})
DECIMAL_TYPES = frozenset({"NUMERIC", "DECIMAL", "DEC", "NUMBER"})
TEMPORAL_KINDS = (Kind.TIME, Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP)
MAX_STRING_LENGTH = 10_485_760  # PostgreSQL's VARCHAR limit; a larger "length" is a TEXT column's
MAX_DECIMAL_PRECISION = 1000  # PostgreSQL's NUMERIC limit; larger is an unconstrained NUMERIC's
MAX_SECOND_DIGITS = 6  # values are kept to the microsecond


def with_source_type(column_type: ColumnType, params: Mapping[str, Any] | None) -> ColumnType:
    """`column_type` made exact by the source column's type, length and scale when Debezium
    propagated them and they say more: VARCHAR/CHAR(n) -> string(n), BINARY/VARBINARY(n) ->
    bytes(n), NUMERIC/DECIMAL(p,s) -> decimal(p,s) (also a VariableScaleDecimal's), TIMESTAMP(n)
    and TIME(n) -> n fractional-second digits. Anything else (an unknown source type, a length that
    is no bound) leaves the type as the schema gives it."""
    if not isinstance(params, Mapping) or SOURCE_TYPE not in params:
        return column_type
    source = _source_type_name(params[SOURCE_TYPE])
    length, scale = _parameter(params, SOURCE_LENGTH), _parameter(params, SOURCE_SCALE)
    kind = column_type.kind
    if kind is Kind.STRING and source in CHARACTER_TYPES and length and 0 < length <= MAX_STRING_LENGTH:
        return replace(column_type, length=length)
    if kind is Kind.BYTES and source in BINARY_TYPES and length and 0 < length <= MAX_STRING_LENGTH:
        return replace(column_type, length=length)
    if kind is Kind.DECIMAL and source in DECIMAL_TYPES:
        return _source_decimal(column_type, length, scale)
    if kind in TEMPORAL_KINDS and ("TIME" in source or "DATE" in source):
        return _source_second_digits(column_type, length, scale)
    return column_type


def _source_type_name(raw: Any) -> str:
    """`varchar`, `DECIMAL UNSIGNED`, `TIMESTAMP(6)` -> VARCHAR, DECIMAL, TIMESTAMP."""
    name = str(raw).upper().split("(", 1)[0].strip()
    for suffix in (" UNSIGNED ZEROFILL", " UNSIGNED", " ZEROFILL"):
        name = name.removesuffix(suffix)
    return name


def _parameter(params: Mapping[str, Any], name: str) -> int | None:
    try:
        return int(params[name]) if params.get(name) is not None else None
    except (TypeError, ValueError):
        return None  # a parameter Debezium would not write: the schema's own type stands


def _source_decimal(column_type: ColumnType, precision: int | None, scale: int | None) -> ColumnType:
    # A Connect Decimal's own scale is the values' scale; a VariableScaleDecimal has none but the source's.
    scale = column_type.scale if column_type.scale is not None else scale
    if precision is None or scale is None or not 0 < precision <= MAX_DECIMAL_PRECISION or not 0 <= scale <= precision:
        return column_type
    return replace(column_type, precision=precision, scale=scale)


def _source_second_digits(column_type: ColumnType, length: int | None, scale: int | None) -> ColumnType:
    # Debezium's JDBC sink reads the digits from the scale, else the length (MySQL's DATETIME(3)); a
    # length past 6 is a display size (PostgreSQL's 29 for a timestamp), not digits.
    if scale is not None and scale >= 0:
        return replace(column_type, precision=min(scale, MAX_SECOND_DIGITS))
    if length is not None and 0 <= length <= MAX_SECOND_DIGITS:
        return replace(column_type, precision=length)
    return column_type
