"""`avro`: Confluent wire format (magic byte 0 + 4-byte schema id, or a framing `framing()` reads:
magic byte 1 + schema GUID, the schema id in a header) + Avro binary.

A writer schema is fetched once per id (or GUID) through the `SchemaSource` port and compiled once:
fastavro parses it (the schemas it references first, depth first, so named types of other subjects
resolve), and the sink derives the neutral shape and a converter for what fastavro leaves raw
(Connect/Debezium names in `connect.name`, nanosecond timestamps).
fastavro returns Decimal, date, time, UTC datetimes, naive datetimes and UUIDs for the Avro logical
types, but its timestamp, date and uuid readers cost two to three times the same conversion in the
converter. So fastavro is given the schema with those logical types renamed (`READERS`, `MARK`): it
reads their base long, int or string, and the converter makes the very value fastavro would have
made, or raises the error fastavro would have raised. Per record: the header, one dict lookup,
fastavro's reader on the parsed schema (`_read_data` with the set-up `schemaless_reader` would
make on every call, made once: see `_READ`), and the converter (nothing at all for schemas
without such logical types or Connect names).
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import io
import json
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fastavro
import fastavro.read
from fastavro import _read_py, parse_schema, schemaless_reader
from fastavro.io.binary_decoder import BinaryDecoder

from ..errors import DecodeError
from ..model import Column, ColumnType, Kind, Payload, Shape, make
from ..ports import SchemaRef, SchemaSource
from . import (
    FRAMED_ID,
    HEADER_SIZE,
    MAGIC_BYTE,
    describe_ref,
    framing,
    identity,
    logical,
    nullable,
    struct_shape,
    writer_schema,
)

Convert = Callable[[Any], Any]

PRIMITIVES = {
    "int": Kind.INT32,
    "long": Kind.INT64,
    "float": Kind.FLOAT32,
    "double": Kind.FLOAT64,
    "boolean": Kind.BOOLEAN,
    "string": Kind.STRING,
    "bytes": Kind.BYTES,
}
JSON = ColumnType(Kind.JSON)

# (base type, logicalType) fastavro converts when reading -> column type
FASTAVRO_LOGICAL = {
    ("int", "date"): ColumnType(Kind.DATE),
    ("int", "time-millis"): ColumnType(Kind.TIME, precision=3),
    ("long", "time-micros"): ColumnType(Kind.TIME, precision=6),
    ("long", "timestamp-millis"): ColumnType(Kind.TIMESTAMP, precision=3),
    ("long", "timestamp-micros"): ColumnType(Kind.TIMESTAMP, precision=6),
    ("long", "local-timestamp-millis"): ColumnType(Kind.LOCAL_TIMESTAMP, precision=3),
    ("long", "local-timestamp-micros"): ColumnType(Kind.LOCAL_TIMESTAMP, precision=6),
    ("string", "uuid"): ColumnType(Kind.UUID),
}
# Avro 1.12 logical types fastavro reads as plain longs: (column type, converter)
NANOS = {
    ("long", "timestamp-nanos"): (ColumnType(Kind.TIMESTAMP, precision=6), logical._instant(0.001)),
    ("long", "local-timestamp-nanos"): (ColumnType(Kind.LOCAL_TIMESTAMP, precision=6), logical._local(0.001)),
}
# the JSON encoding of field defaults, for types whose value fastavro would convert
DEFAULT_LOGICAL: dict[tuple[str, str], Convert] = {
    ("int", "date"): logical._date,
    ("int", "time-millis"): logical._time(1000),
    ("long", "time-micros"): logical._time(1),
    ("long", "timestamp-millis"): logical._instant(1000),
    ("long", "timestamp-micros"): logical._instant(1),
    ("long", "local-timestamp-millis"): logical._local(1000),
    ("long", "local-timestamp-micros"): logical._local(1),
    ("string", "uuid"): lambda v: uuid.UUID(str(v)),
}

# The logical types whose value the converter makes instead of fastavro (the same value, the same
# error: fastavro's own expression, see fastavro._logical_readers); fastavro is given them as
# {"type": base, MARK: logicalType}. time-* (fastavro's arithmetic costs about as much in Python)
# and decimal (its context rounding) stay fastavro's.
MARK = "sink.logicalType"
DAYS_SHIFT = logical.EPOCH_DATE.toordinal()


class _ReadError(Exception):
    """A value fastavro would have refused while reading: reported as fastavro's error is."""


def _instant(epoch: dt.datetime, micros_per_unit: int) -> Convert:
    timedelta = dt.timedelta
    # An aware instant within 2**32 s of the epoch (1833 to 2106) is made from float seconds, a
    # fifth cheaper: there a double's error is under half a microsecond, so fromtimestamp's
    # rounding to the microsecond gives the exact value (tests/unit/test_avro_logical_readers.py).
    fromtimestamp, zone = dt.datetime.fromtimestamp, epoch.tzinfo
    per_second = 1_000_000 // micros_per_unit
    near = 2**32 * per_second if zone is not None and epoch.timestamp() == 0 else 0

    def convert(value: int) -> dt.datetime:
        if -near < value < near:
            return fromtimestamp(value / per_second, zone)
        try:  # positional microseconds: a third cheaper than microseconds=
            return epoch + timedelta(0, 0, value * micros_per_unit)
        except (OverflowError, ValueError, TypeError) as exc:
            raise _ReadError(exc) from None

    if near:
        convert.float_path = (per_second, near, zone)  # type: ignore[attr-defined]  # _record_converter inlines it
    return convert


def _date(value: int) -> dt.date:
    try:
        return dt.date.fromordinal(value + DAYS_SHIFT)
    except (OverflowError, ValueError, TypeError) as exc:
        raise _ReadError(exc) from None


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError) as exc:
        raise _ReadError(exc) from None


READERS: dict[tuple[str, str], Convert] = {
    ("long", "timestamp-millis"): _instant(logical.EPOCH, 1000),
    ("long", "timestamp-micros"): _instant(logical.EPOCH, 1),
    ("long", "local-timestamp-millis"): _instant(logical.EPOCH_LOCAL, 1000),
    ("long", "local-timestamp-micros"): _instant(logical.EPOCH_LOCAL, 1),
    ("int", "date"): _date,
    ("string", "uuid"): _uuid,
}


LogicalRead = Callable[[Any, Any, Any], Any]  # fastavro's logical readers: (data, writer schema, reader schema)


def _bounded_decimal(read: LogicalRead) -> LogicalRead:
    """fastavro's decimal reader, refusing first an unscaled value with more bits than its
    precision's digits take: fastavro makes a Decimal of any length, quadratic in it (100 KB of a
    bytes decimal took 1 s, 400 KB 32 s, a megabyte four minutes before decimal.Overflow), where
    it then rounds the value to the precision anyway (and past `logical.MAX_DECIMAL_DIGITS`
    whatever the precision). Registered in fastavro's own table of logical readers (its
    documented way to read a logical type otherwise), which its compiled and pure-Python readers
    both consult."""

    def read_decimal(data: bytes, writer_schema: Any = None, reader_schema: Any = None) -> Any:
        precision = writer_schema.get("precision") if isinstance(writer_schema, dict) else None
        limit, digits = logical.MAX_DECIMAL_BITS, logical.MAX_DECIMAL_DIGITS
        if isinstance(precision, int) and 0 < precision < digits:
            limit, digits = math.ceil(precision * LOG2_10), precision
        if len(data) * 8 > limit:  # else it holds fewer bits: no integer made twice for the usual value
            logical.check_decimal_bits(int.from_bytes(data, "big", signed=True).bit_length(), limit, digits)
        return read(data, writer_schema, reader_schema)

    read_decimal.bounded = True  # type: ignore[attr-defined]
    return read_decimal


LOG2_10 = math.log2(10)
for _key in ("bytes-decimal", "fixed-decimal"):
    if not getattr(fastavro.read.LOGICAL_READERS[_key], "bounded", False):
        fastavro.read.LOGICAL_READERS[_key] = _bounded_decimal(fastavro.read.LOGICAL_READERS[_key])


# fastavro's `schemaless_reader` on a parsed schema = per call, a dict of its named types, its
# options dict, then `_read_data`, which reads. The set-up is a fifth of a 10-field record's read
# (measured: 3.4 -> 2.7 us), and it is the same for every record of a schema: the sink calls
# `_read_data` itself with what `schemaless_reader` would make (`Compiled.named`, READ_OPTIONS),
# once it has checked at import that both read the same (`_fastavro_read`). Otherwise (a fastavro
# that changed it, the pure-Python build) the public reader reads, as it did before.
Read = Callable[[io.BytesIO, Any, dict[str, dict[str, Any]], None, dict[str, Any]], Any]
READ_OPTIONS: dict[str, Any] = {
    "return_record_name": False,
    "return_record_name_override": False,
    "handle_unicode_errors": "strict",
    "return_named_type": False,
    "return_named_type_override": False,
}


def _public_read(stream: io.BytesIO, parsed: Any, named: dict[str, dict[str, Any]], _: None, __: Any) -> Any:
    return schemaless_reader(stream, parsed, None)


def _named_types(named: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The named types a schema was parsed with (those of its references too), as fastavro's
    reader takes them. For a record schema they are what `schemaless_reader` gathers from it on
    each call; a schema that is a union or a name of referenced types carries none itself, so
    only this way are they found (the public reader refuses such a schema: UnknownType)."""
    return {"writer": dict(named), "reader": {}}


def _fastavro_read() -> Read:
    """fastavro's `_read_data` if `schemaless_reader` still passes it exactly the options the sink
    does and it reads the probe exactly as `schemaless_reader` does (values, errors and their
    messages), else a call of `schemaless_reader`."""
    read = getattr(getattr(fastavro, "_read", None), "_read_data", None)
    if read is None or not _same_options():
        return _public_read
    try:
        probe_named: dict[str, Any] = {}
        parsed = parse_schema(PROBE_SCHEMA, probe_named)
        named = _named_types(probe_named)
        whole = io.BytesIO()
        fastavro.schemaless_writer(whole, parsed, PROBE_RECORD)
        body = whole.getvalue()
        # whole; cut short (EOFError); a union branch that does not exist (the byte after the id);
        # a string not UTF-8
        bodies = (body, body[:-3], body[:1] + b"\x7f" + body[2:], body.replace(b"probe", b"pr\xffbe"))
        for body in bodies:
            expected = _outcome(lambda s: schemaless_reader(s, parsed, None), body)
            if _outcome(lambda s: read(s, parsed, named, None, READ_OPTIONS), body) != expected:
                return _public_read
    except Exception:  # a signature that changed
        return _public_read
    return read  # type: ignore[no-any-return]


PROBE_SCHEMA = {
    "type": "record",
    "name": "Probe",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "maybe", "type": ["null", "string"]},
        {"name": "point", "type": {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "double"}]}},
        {"name": "points", "type": {"type": "array", "items": "Point"}},
        {"name": "either", "type": ["null", "Point", {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}]},
        {"name": "tags", "type": {"type": "map", "values": "int"}},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
        {"name": "ok", "type": "boolean"},
        {"name": "raw", "type": "bytes"},
        {"name": "text", "type": "string"},
    ],
}
PROBE_RECORD = {
    "id": -1,  # one byte
    "maybe": "probe",
    "point": {"x": 1.5},
    "points": [{"x": 2.0}, {"x": -0.25}],
    "either": "B",
    "tags": {"a": 1, "b": -2},
    "hash": b"\x00\xff",
    "at": dt.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=dt.UTC),
    "price": decimal.Decimal("12.34"),
    "ok": True,
    "raw": b"\x00\x01",
    "text": "ünïcode probe",
}


def _same_options() -> bool:
    """Whether `schemaless_reader`'s options beyond the schemas are READ_OPTIONS' (a new one would
    be passed to `_read_data` by it, and not by the sink)."""
    try:
        parameters = inspect.signature(schemaless_reader).parameters
    except (TypeError, ValueError):  # no signature to read: do not guess
        return False
    return set(parameters) - {"fo", "writer_schema", "reader_schema"} == set(READ_OPTIONS)


def _outcome(read: Callable[[io.BytesIO], Any], body: bytes) -> tuple[str, Any, int]:
    """What reading `body` gives: ("value", the value, bytes read) or ("error", its class and
    message, 0)."""
    stream = io.BytesIO(body)
    try:
        return "value", read(stream), stream.tell()
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}", 0


_READ: Read = _fastavro_read()


def _probed_read(stream: io.BytesIO, parsed: Any, named: dict[str, dict[str, Any]], _: None, options: Any) -> Any:
    """`_READ`, once fastavro's pure-Python reader has read the body through `_ProbeDecoder`, for
    the schemas whose bodies the compiled reader cannot be trusted with:
    - a recursive type: a body nests it as deep as its bytes say (a schema whose type contains
      itself outside any union, array or map: always), and the compiled reader recurses in C
      without a limit, so a few kilobytes of union index 1 kill the process (SIGSEGV) where the
      Python reader stops at the recursion limit (RecursionError, a record error);
    - an array whose items may take no bytes (null, an empty record): a count of a few bytes stands
      for billions of items, which the compiled reader builds for minutes and gigabytes (an
      out-of-memory kill at every restart); the probe refuses such a body early (`_ProbeDecoder`).
    The value is the compiled reader's, as for every other schema."""
    start = stream.tell()
    probe = _ProbeDecoder(stream)
    _read_py.read_data(probe, parsed, named, None, options)  # type: ignore[no-untyped-call]
    stream.seek(start)
    return _READ(stream, parsed, named, None, options)


# Array and map items a body may hold beyond its own length in bytes: only items that take no bytes
# get past it (every other item takes one at least), and a body of a few bytes could otherwise
# stand for billions of them. 100,000 of them take the probe about a tenth of a second.
ITEMS_WITHOUT_BYTES_MAX = 100_000


class _TooManyItems(Exception):
    """A body's arrays hold more items than its bytes and ITEMS_WITHOUT_BYTES_MAX."""


class _ProbeDecoder(BinaryDecoder):
    def __init__(self, fo: io.BytesIO) -> None:
        super().__init__(fo)  # type: ignore[no-untyped-call]
        self._items_left = len(fo.getbuffer()) - fo.tell() + ITEMS_WITHOUT_BYTES_MAX

    def _iter_array_or_map(self) -> Iterator[None]:
        """fastavro's block loop (`BinaryDecoder._iter_array_or_map`), counting the items."""
        while self._block_count != 0:
            if self._block_count < 0:
                self._block_count = -self._block_count
                self.read_long()  # the block's size in bytes, unused
            self._items_left -= self._block_count
            if self._items_left < 0:
                raise _TooManyItems
            for _ in range(self._block_count):
                yield
            self._block_count = self.read_long()

    iter_array = _iter_array_or_map
    iter_map = _iter_array_or_map

    def read_long(self) -> int:
        """A long as the compiled reader reads it, so the probe takes the same path through the
        body: 64 bits, each 7-bit group shifted by its offset mod 64, any number of bytes (the
        Python reader's growing integer would make a long run of 0xff quadratic)."""
        read = self.fo.read
        n, shift, more = 0, 0, True
        while more:
            c = read(1)
            if not c:
                raise EOFError
            b = c[0]
            n |= ((b & 0x7F) << (shift & 63)) & 0xFFFFFFFFFFFFFFFF
            shift += 7
            more = b & 0x80 != 0
        return (n >> 1) ^ -(n & 1)

    read_int = read_long  # the same in BinaryDecoder; the compiled reader reads both alike


@dataclass(frozen=True, slots=True)
class Compiled:
    parsed: Any  # fastavro's parsed writer schema
    shape: Shape
    convert: Convert | None  # None: fastavro's value is final
    named: dict[str, dict[str, Any]]  # its named types, as fastavro's reader is given them
    read: Read | None = None  # None: _READ; `_probed_read` for the schemas it names


class AvroDecoder:
    def __init__(self, registry: SchemaSource) -> None:
        self._registry = registry
        self._compiled: dict[SchemaRef, Compiled] = {}

    def decode(self, data: bytes, header: bytes | None = None) -> Payload:
        if header is None and len(data) >= HEADER_SIZE and data[0] == MAGIC_BYTE:
            schema_id: SchemaRef = FRAMED_ID(data)[0]
            start = HEADER_SIZE
        else:  # magic byte 1 (a schema GUID), the framing in a header, or bytes that are not framed
            schema_id, start = framing(data, "Avro", header)
        compiled = self._compiled.get(schema_id)
        if compiled is None:
            compiled = self._compiled[schema_id] = self._compile(schema_id)
        stream = io.BytesIO(data)
        stream.seek(start)
        try:
            value = (compiled.read or _READ)(stream, compiled.parsed, compiled.named, None, READ_OPTIONS)
        except RecursionError:
            raise _too_deep(schema_id) from None
        except _TooManyItems:
            raise DecodeError(
                f"Avro: body holds more array items than its {len(data) - start} byte(s) can carry, beyond "
                f"{ITEMS_WITHOUT_BYTES_MAX:,} that take no bytes (writer {describe_ref(schema_id)})"
            ) from None
        except EOFError:
            raise DecodeError(
                f"Avro: truncated body: the {len(data) - start} byte(s) after the header end before a complete "
                f"record of {describe_ref(schema_id)} was read"
            ) from None
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            raise _mismatch(schema_id, exc) from None
        end = stream.tell()
        if end != len(data):
            raise DecodeError(
                f"Avro: {len(data) - end} byte(s) left over at byte {end} after a complete record of "
                f"{describe_ref(schema_id)}: the body was not written with this schema"
            )
        if compiled.convert is not None and value is not None:
            try:
                value = compiled.convert(value)
            except DecodeError:
                raise
            except _ReadError as exc:  # a value fastavro's own logical reader would have refused
                raise _mismatch(schema_id, exc.args[0]) from None
            except RecursionError:
                raise _too_deep(schema_id) from None
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                raise DecodeError(f"Avro ({describe_ref(schema_id)})", detail=reason) from None
        return make(Payload, (value, compiled.shape, schema_id))

    def body_reader(self, schema_id: SchemaRef) -> Callable[[bytes], Any] | None:
        """`decode` of a body framed with magic byte 0 and `schema_id`, once that schema is compiled,
        without the framing's checks or a Payload: the value alone. Anything `decode` would turn
        into an error raises (whatever it is): the caller then decodes the record with `decode`."""
        compiled = self._compiled.get(schema_id)
        if compiled is None:
            return None
        read, parsed, named, convert = compiled.read or _READ, compiled.parsed, compiled.named, compiled.convert

        def read_body(data: bytes) -> Any:
            stream = io.BytesIO(data)
            stream.seek(HEADER_SIZE)
            value = read(stream, parsed, named, None, READ_OPTIONS)
            if stream.tell() != len(data):
                raise ValueError("bytes left over after the record")
            return value if convert is None or value is None else convert(value)

        return read_body

    def body_fields(self, schema_id: SchemaRef) -> tuple[str, ...] | None:
        """The names every value `body_reader(schema_id)` returns holds, in order: the fields of a
        record schema (fastavro's dict always carries each of them). None for any other top level
        (a union of records, a map: values of one schema with different names) or an unknown id."""
        compiled = self._compiled.get(schema_id)
        schema = compiled.parsed if compiled is not None else None
        if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
            return None
        return tuple(field["name"] for field in schema["fields"])

    def _compile(self, schema_id: SchemaRef) -> Compiled:
        text, references = writer_schema(self._registry, schema_id, "AVRO", "Avro")
        where = f"Avro {describe_ref(schema_id)}"
        named: dict[str, Any] = {}
        marked = _MarkedSchemas()
        self._add_references(references, named, set(), where, marked)
        parsed = _parse(text, named, where)
        compiler = _Compiler(named, where)
        shape = compiler.shape(parsed)
        marked_parsed = marked.parse(text)
        probed = _recursive(parsed, named, set(), set()) or _free_items(parsed, named, set())
        read = _probed_read if probed else None
        if marked.usable:
            try:
                convert = _Compiler(marked.named, where, True).converter(marked_parsed, "")
                return Compiled(marked_parsed, shape, convert, _named_types(marked.named), read)
            except _Unconverted:
                pass  # a renamed logical type the converter would not reach: fastavro converts them all
        return Compiled(parsed, shape, compiler.converter(parsed, ""), _named_types(named), read)

    def _add_references(
        self,
        references: list[dict[str, Any]],
        named: dict[str, Any],
        seen: set[tuple[str, int]],
        where: str,
        marked: _MarkedSchemas,
    ) -> None:
        """Parse referenced schemas (depth first) into `named`, so the main schema can use their names."""
        for ref in references:
            key = (str(ref["subject"]), int(ref["version"]))
            if key in seen:
                continue
            seen.add(key)
            try:
                schema_type, text, nested = self._registry.reference(*key)
            except LookupError as exc:
                raise DecodeError(f"{where}: referenced schema {ref.get('name')!r} is missing: {exc}") from None
            if (schema_type or "AVRO").upper() != "AVRO":
                raise DecodeError(f"{where}: referenced schema {ref.get('name')!r} is a {schema_type} schema")
            self._add_references(list(nested or []), named, seen, where, marked)
            _parse(text, named, f"{where}, reference {ref.get('name')!r}")
            marked.parse(text)


def _mismatch(schema_id: SchemaRef, exc: BaseException) -> DecodeError:
    return DecodeError(
        f"Avro: body does not match writer {describe_ref(schema_id)}", detail=f"{type(exc).__name__}: {exc}"
    )


def _too_deep(schema_id: SchemaRef) -> DecodeError:
    return DecodeError(
        f"Avro: body nests a recursive type of writer {describe_ref(schema_id)} deeper than the decoder reads"
    )


# The walks below follow a schema as fastavro's reader does: a name to the type `named` holds for it
# when the body is read, which need not be the type defined under that name inline (a reference
# parsed later may define the name again: fastavro lets it, and then reads the later type there,
# the inline one where it stands). So they tell types apart by identity, never by name: by name, a
# walk that had met the inline type skipped the later one (unprobed: SIGSEGV, billions of items).


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    """A name as fastavro's reader resolves it (the type `named` holds now); other schemas as they are."""
    return named.get(schema, schema) if isinstance(schema, str) else schema


def _recursive(schema: Any, named: dict[str, Any], visiting: set[int], done: set[int]) -> bool:
    """Whether a type of `schema` contains itself (a body may then nest without bound)."""
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        return any(_recursive(b, named, visiting, done) for b in schema)
    if not isinstance(schema, dict):
        return False
    if id(schema) in visiting:
        return True
    if id(schema) in done:
        return False
    visiting.add(id(schema))
    found = any(_recursive(c, named, visiting, done) for c in _children(schema))
    visiting.discard(id(schema))
    done.add(id(schema))
    return found


def _free_items(schema: Any, named: dict[str, Any], seen: set[int]) -> bool:
    """Whether `schema` holds an array whose items may take no bytes (`_takes_no_bytes`)."""
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        return any(_free_items(b, named, seen) for b in schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return False
    seen.add(id(schema))
    if schema.get("type") == "array" and _takes_no_bytes(schema.get("items"), named, set()):
        return True
    return any(_free_items(c, named, seen) for c in _children(schema))


def _children(schema: dict[str, Any]) -> list[Any]:
    """The types a record, array or map schema holds: its fields', its items', its values'."""
    children = [f.get("type") for f in schema.get("fields") or [] if isinstance(f, dict)]
    return [c for c in (*children, schema.get("items"), schema.get("values")) if c is not None]


def _takes_no_bytes(schema: Any, named: dict[str, Any], visiting: set[int]) -> bool:
    """Whether a value of `schema` may be encoded in no bytes: null, a fixed of size 0, a record
    whose every field takes none. (A union, enum, string, number, array or map takes one at least;
    a record containing itself has no value, and is probed as recursive.)"""
    if schema == "null":
        return True
    schema = _resolve(schema, named)
    if not isinstance(schema, dict) or id(schema) in visiting:
        return False
    kind = schema.get("type")
    if kind in ("record", "error"):
        inner = {*visiting, id(schema)}
        return all(_takes_no_bytes(f.get("type"), named, inner) for f in schema.get("fields") or [])
    if kind == "fixed":
        return schema.get("size") == 0
    return isinstance(kind, (str, dict)) and _takes_no_bytes(kind, named, visiting)


def _parse(text: str, named: dict[str, Any], where: str) -> Any:
    """`text` parsed into `named`, the types of the references parsed before it. A name defined
    again, differently, is refused, as the Avro specification and Java's parser refuse it: fastavro
    lets a later parse replace the type (its reader then follows the name to the later type where
    the earlier one is written inline, and the sink's converter, keyed by name, did not)."""
    before = dict(named)
    try:
        parsed = parse_schema(json.loads(text), named)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError, KeyError...
        raise DecodeError(f"{where} cannot be parsed: {type(exc).__name__}: {exc}") from None
    for name, earlier in before.items():
        if named[name] is not earlier and named[name] != earlier:
            raise DecodeError(f"{where} defines the type {name!r} again, differently (Avro allows one definition)")
    return parsed


class _MarkedSchemas:
    """The writer schema and its references as fastavro is given them: the `READERS` logical types
    renamed to `MARK`, in named types of their own. Parsed after the originals, which report errors."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.renamed = False  # whether any schema had a logical type to rename
        self.failed = False  # a renamed schema fastavro refused (never seen): fastavro converts

    @property
    def usable(self) -> bool:
        return self.renamed and not self.failed

    def parse(self, text: str) -> Any:
        if self.failed:
            return None
        try:
            schema, renamed = _mark(json.loads(text))
            self.renamed |= renamed
            return parse_schema(schema, self.named)
        except Exception:  # the original parsed: keep it, and fastavro's conversions
            self.failed = True
            return None


def _mark(schema: Any) -> tuple[Any, bool]:
    """(a copy of a JSON schema with its `READERS` logical types renamed to MARK, whether any was).
    Not inside a union of several types: which branch was read is not known after reading."""
    if isinstance(schema, list):
        if len([b for b in schema if b != "null"]) != 1:
            return schema, False
        branches = [_mark(b) for b in schema]
        return [b for b, _ in branches], any(r for _, r in branches)
    if not isinstance(schema, dict):
        return schema, False
    kind, lt = schema.get("type"), schema.get("logicalType")
    if isinstance(kind, str) and isinstance(lt, str) and (kind, lt) in READERS:
        copy = {k: v for k, v in schema.items() if k != "logicalType"}
        copy[MARK] = lt
        return copy, True
    copy = dict(schema)
    renamed = False
    if kind in ("record", "error") and isinstance(schema.get("fields"), list):
        copy["fields"] = []
        for field in schema["fields"]:
            if isinstance(field, dict) and "type" in field:
                field_type, field_renamed = _mark(field["type"])
                field = {**field, "type": field_type}
                renamed |= field_renamed
            copy["fields"].append(field)
    for key in ("items", "values"):
        if kind == ("array" if key == "items" else "map") and key in schema:
            copy[key], child_renamed = _mark(schema[key])
            renamed |= child_renamed
    return copy, renamed


class _Unconverted(Exception):
    """A renamed logical type sits where the converter does not go (a union of several types, a
    Connect-named struct): the schema is read with fastavro's conversions instead."""


def _has_mark(schema: Any, named: dict[str, Any], seen: set[str]) -> bool:
    """Whether a renamed logical type is anywhere in `schema` (named types followed once)."""
    if isinstance(schema, str):
        if schema in seen or schema not in named:
            return False
        seen.add(schema)
        return _has_mark(named[schema], named, seen)
    if isinstance(schema, list):
        return any(_has_mark(b, named, seen) for b in schema)
    if not isinstance(schema, dict):
        return False
    if MARK in schema:
        return True
    if isinstance(schema.get("name"), str):
        seen.add(schema["name"])
    children = [f.get("type") for f in schema.get("fields") or [] if isinstance(f, dict)]
    children += [schema.get("type"), schema.get("items"), schema.get("values")]
    return any(_has_mark(c, named, seen) for c in children if c is not None)


class _Compiler:
    """Walks a parsed schema once: shape, converter, defaults. Named types resolve through `named`."""

    def __init__(self, named: dict[str, Any], where: str, marked: bool = False) -> None:
        self.named = named
        self.where = where
        self.marked = marked  # the schema fastavro reads: renamed logical types (MARK) are the converter's
        self._records: dict[str, Convert | None] = {}  # compiled record converters by full name
        self._building: set[str] = set()  # records being compiled (recursive types)
        self._shaping: set[str] = set()  # records whose shape is being built (recursive types)

    def error(self, path: str, message: str) -> DecodeError:
        return DecodeError(f"{self.where}, field {path!r}: {message}" if path else f"{self.where}: {message}")

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES and schema != "null":
            return self.named[schema]
        return schema

    # -------------------------------------------------------------- shape

    def shape(self, schema: Any) -> Shape:
        schema = self.resolve(schema)
        if isinstance(schema, list) and len([b for b in schema if b != "null"]) == 1:
            schema = self.resolve(next(b for b in schema if b != "null"))  # ["null", Record]: the record
        if isinstance(schema, dict) and schema["type"] == "record" and not self._logical_name(schema):
            name: str = schema["name"]  # a parsed record always has its full name
            if name in self._shaping:  # a recursive record: its nested self stays a JSON column
                return JSON
            self._shaping.add(name)
            try:
                columns = tuple(self.column(f, f["name"]) for f in schema["fields"])
                nested = {f["name"]: self.shape(f["type"]) for f in schema["fields"] if self._is_record(f["type"])}
            finally:
                self._shaping.discard(name)
            return struct_shape(columns, schema.get("connect.name") or name, nested)
        return self.column_type(schema, "")[0]

    def _is_record(self, schema: Any) -> bool:
        """Whether a field's type is a record (or an optional one), whose own shape `shape` gives."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            return len(branches) == 1 and self._is_record(branches[0])
        return isinstance(schema, dict) and schema["type"] == "record" and not self._logical_name(schema)

    def column(self, field: dict[str, Any], path: str) -> Column:
        column_type, nullable = self.column_type(field["type"], path)
        default = field.get("default")
        has_default = "default" in field and default is not None
        if has_default:
            try:
                default = self.default(field["type"], default)
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
                raise self.error(path, f"default {default!r} cannot be read: {exc}") from None
        return Column(field["name"], column_type, nullable, default if has_default else None, has_default)

    def column_type(self, schema: Any, path: str) -> tuple[ColumnType, bool]:
        """(column type, nullable); exact where Debezium propagated the source column's type in
        the schema's `connect.parameters`."""
        schema = self.resolve(schema)
        column_type, nullable = self._schema_type(schema, path)
        if isinstance(schema, dict) and "connect.parameters" in schema:
            column_type = logical.with_source_type(column_type, schema["connect.parameters"])
        return column_type, nullable

    def _schema_type(self, schema: Any, path: str) -> tuple[ColumnType, bool]:
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            nullable = len(branches) < len(schema)
            if len(branches) == 1:
                return self.column_type(branches[0], path)[0], nullable
            return JSON, nullable  # a union of several types: the value as JSON
        if isinstance(schema, str):
            if schema == "null":
                raise self.error(path, "type null cannot be a column")
            return ColumnType(PRIMITIVES[schema]), False
        kind = schema["type"]
        lt = schema.get("logicalType")
        if (kind, lt) in FASTAVRO_LOGICAL:
            return FASTAVRO_LOGICAL[kind, lt], False
        if (kind, lt) in NANOS:
            return NANOS[kind, lt][0], False
        if lt == "decimal" and kind in ("bytes", "fixed"):
            if not isinstance(schema.get("precision"), int):
                raise self.error(path, "decimal logical type without an integer precision")
            return ColumnType(Kind.DECIMAL, precision=schema["precision"], scale=int(schema.get("scale", 0))), False
        name = self._logical_name(schema)
        if name:
            return logical.column_type(name, schema.get("connect.parameters")) or JSON, False
        if kind in PRIMITIVES:
            return ColumnType(PRIMITIVES[kind]), False
        if kind == "fixed":
            return ColumnType(Kind.BYTES, length=int(schema["size"])), False
        if kind == "enum":
            return ColumnType(Kind.STRING), False
        if kind == "array":
            item = self.column_type(schema["items"], path + "[]")[0]
            return (JSON if item.kind in (Kind.JSON, Kind.ARRAY) else ColumnType(Kind.ARRAY, item=item)), False
        if kind in ("record", "error", "map"):
            return JSON, False
        raise self.error(path, f"unsupported Avro type {kind!r}")

    @staticmethod
    def _logical_name(schema: dict[str, Any]) -> str | None:
        """A Connect/Debezium logical name the sink knows, unless fastavro already converts the type."""
        name = schema.get("connect.name")
        if name in logical.LOGICAL and (schema["type"], schema.get("logicalType")) not in FASTAVRO_LOGICAL:
            if schema.get("logicalType") == "decimal":
                return None  # fastavro reads Connect decimals (they carry logicalType decimal)
            return str(name)
        return None

    # -------------------------------------------------------------- values

    def converter(self, schema: Any, path: str) -> Convert | None:
        """A function finishing fastavro's value of `schema`; None when fastavro's value is final."""
        if isinstance(schema, str) and (schema in self._records or schema in self._building):
            return self._late(schema)
        schema = self.resolve(schema)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(branches) != 1:
                self._opaque(schema)
                return None
            inner = self.converter(branches[0], path)
            return None if inner is None else nullable(inner)
        if isinstance(schema, str):
            return None
        kind = schema["type"]
        if MARK in schema:
            return READERS[kind, schema[MARK]]
        lt = schema.get("logicalType")
        if (kind, lt) in NANOS:
            return NANOS[kind, lt][1]
        name = self._logical_name(schema)
        if name:
            self._opaque(schema)
            return logical.converter(name, schema.get("connect.parameters"))
        if kind in ("record", "error"):
            return self._record(schema, path)
        if kind == "array":
            item = self.converter(schema["items"], path + "[]")
            return None if item is None else (lambda v: [item(x) for x in v])
        if kind == "map":
            values = self.converter(schema["values"], path + "{}")
            return None if values is None else (lambda v: {k: values(x) for k, x in v.items()})
        self._opaque(schema)
        return None

    def _opaque(self, schema: Any) -> None:
        """For a schema the converter does not look into: refuse the marked schema if fastavro was
        told to leave a logical type inside it raw."""
        if self.marked and _has_mark(schema, self.named, set()):
            raise _Unconverted

    def _late(self, name: str) -> Convert | None:
        if name not in self._building:
            return self._records[name]
        # a recursive record still being compiled: look its converter up when called
        return lambda v: (self._records.get(name) or identity)(v)

    def _record(self, schema: dict[str, Any], path: str) -> Convert | None:
        name = schema["name"]
        if name in self._records or name in self._building:
            return self._late(name)
        self._building.add(name)
        fields = []
        for f in schema["fields"]:
            convert = self.converter(f["type"], f"{path}.{f['name']}" if path else f["name"])
            if convert is not None:
                fields.append((f["name"], convert))
        self._building.discard(name)
        self._records[name] = _record_converter(fields, path, self.where) if fields else None
        return self._records[name]

    def default(self, schema: Any, value: Any) -> Any:
        """A field default (Avro's JSON encoding) as the Python value a record would carry."""
        schema = self.resolve(schema)
        if isinstance(schema, list):  # the default belongs to the first branch (or any, Avro 1.11)
            if value is None:
                return None
            branches = [b for b in schema if b != "null"]
            return self.default(branches[0], value) if len(branches) == 1 else value
        if isinstance(schema, str):
            if schema == "bytes":
                return value.encode("latin-1")
            return float(value) if schema in ("float", "double") else value
        kind, lt = schema["type"], schema.get("logicalType")
        if (kind, lt) in DEFAULT_LOGICAL:
            return DEFAULT_LOGICAL[kind, lt](value)
        if (kind, lt) in NANOS:
            return NANOS[kind, lt][1](value)
        raw = value.encode("latin-1") if kind in ("bytes", "fixed") and isinstance(value, str) else value
        if lt == "decimal" and kind in ("bytes", "fixed"):
            return logical.decimal_from_bytes(raw, int(schema.get("scale", 0)))
        name = self._logical_name(schema)
        if name:
            convert = logical.converter(name, schema.get("connect.parameters"))
            return convert(raw) if convert else raw
        if kind in ("float", "double"):
            return float(value)
        return raw  # records, maps, arrays: their JSON value; enums: the symbol


def _record_converter(fields: list[tuple[str, Convert]], path: str, where: str) -> Convert:
    """Convert, in place, the fields of fastavro's record dict that need it. Aware timestamps have
    `_instant`'s float path inlined (a call less per field: they are the most common here)."""
    instants = [(name, convert, *convert.float_path) for name, convert in fields if hasattr(convert, "float_path")]
    others = [(name, convert) for name, convert in fields if not hasattr(convert, "float_path")]
    fromtimestamp = dt.datetime.fromtimestamp

    def convert_record(record: dict[str, Any]) -> dict[str, Any]:
        field = ""
        try:
            for field, convert, per_second, near, zone in instants:
                value = record[field]
                if value is not None:
                    record[field] = fromtimestamp(value / per_second, zone) if -near < value < near else convert(value)
            for field, convert in others:
                value = record[field]
                if value is not None:
                    record[field] = convert(value)
        except DecodeError:
            raise
        except (ValueError, TypeError, KeyError, ArithmeticError, AttributeError) as exc:
            full = f"{path}.{field}" if path else field
            raise DecodeError(f"{where}, field {full!r}", detail=f"{type(exc).__name__}: {exc}") from None
        return record

    return convert_record
