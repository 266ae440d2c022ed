"""The Avro decoder against fastavro's public `schemaless_reader`, differentially: random writer
schemas (nested and recursive records, unions of one and of several branches, every logical type
fastavro converts, decimals on bytes and on fixed, enums, fixed, arrays and maps of all of them,
named types of a referenced subject) and random wire values at the edges (the first and last
instants, dates and times, out-of-range values, huge and empty decimals, bad UUID text, bad UTF-8),
written by an encoder of the binary format that also writes what fastavro's writer refuses. Every
body the public reader reads whole must decode to exactly its value (types, time zones and decimal
scales too); every body it refuses, or does not read whole, and every hostile body (cut short,
trailing bytes, bytes flipped, an unknown schema id, nesting deeper than any reader goes) must be a
DecodeError, never another exception, a crash or a hang. Seeded `random`, so every run is the same.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import random
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest

from sink.errors import DecodeError
from sink.formats import avro, logical
from sink.formats.avro import AvroDecoder
from tests.support.fakes import FakeRegistry
from tests.support.wire import header

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
DAY_MS, DAY_US = 86_400_000, 86_400_000_000
FIRST_US, LAST_US = -62_135_596_800_000_000, 253_402_300_799_999_999  # 0001-01-01, 9999-12-31T23:59:59.999999
FIRST_DAY, LAST_DAY = -719_162, 2_932_896

# a referenced subject's named types, used by the random schemas by their full names
SHARED = {
    "type": "record",
    "name": "Shared",
    "namespace": "ref",
    "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "id", "type": ["null", {"type": "string", "logicalType": "uuid"}]},
        {
            "name": "cost",
            "type": {"type": "fixed", "name": "Cost", "size": 9, "logicalType": "decimal", "precision": 20, "scale": 4},
        },
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
    ],
}
REFERENCES = [{"name": "ref.Shared", "subject": "shared", "version": 1}]


# ------------------------------------------------------------------------------ the binary format


def zigzag(n: int) -> bytes:
    """A long as Avro writes it (zig-zag varint); any 64-bit value."""
    n = ((n << 1) ^ (n >> 63)) & (2**64 - 1)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def sized(data: bytes) -> bytes:
    return zigzag(len(data)) + data


# ------------------------------------------------------------------------------ random schemas and bodies


def _logical(base: str, logical_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": base, "logicalType": logical_type, **extra}


LOGICAL_TYPES = [
    _logical("int", "date"),
    _logical("int", "time-millis"),
    _logical("long", "time-micros"),
    _logical("long", "timestamp-millis"),
    _logical("long", "timestamp-micros"),
    _logical("long", "local-timestamp-millis"),
    _logical("long", "local-timestamp-micros"),
    _logical("string", "uuid"),
    _logical("bytes", "decimal", precision=10, scale=2),
    _logical("bytes", "decimal", precision=1, scale=0),
    _logical("bytes", "decimal", precision=60, scale=30),
    _logical("bytes", "decimal", precision=38, scale=38),
    # Connect's Timestamp and Date carry the logical type too: fastavro's value, whatever the name says
    _logical("long", "timestamp-millis", **{"connect.name": "org.apache.kafka.connect.data.Timestamp"}),
    _logical("int", "date", **{"connect.name": "org.apache.kafka.connect.data.Date"}),
]
PRIMITIVE_TYPES = ["boolean", "int", "long", "float", "double", "string", "bytes"]
BASE = {"boolean": "boolean", "int": "int", "long": "long", "float": "float", "double": "double"}


def _instant_edges(unit_us: int) -> list[int]:
    edges = [0, 1, -1, 999, -1000, LONG_MIN, LONG_MAX]
    for us in (FIRST_US, LAST_US):
        edges += [us // unit_us, us // unit_us - 1, us // unit_us + 1]
    return edges


EDGES: dict[str, list[Any]] = {
    "timestamp-millis": _instant_edges(1000),
    "timestamp-micros": _instant_edges(1),
    "local-timestamp-millis": _instant_edges(1000),
    "local-timestamp-micros": _instant_edges(1),
    "date": [0, 1, -1, FIRST_DAY, FIRST_DAY - 1, LAST_DAY, LAST_DAY + 1, INT_MIN, INT_MAX],
    "time-millis": [0, 1, DAY_MS - 1, DAY_MS, -1, INT_MAX],
    "time-micros": [0, 1, DAY_US - 1, DAY_US, -1, LONG_MAX],
    "uuid": [
        "",
        "x",
        "12345678-1234-5678-1234-567812345678",
        "{12345678-1234-5678-1234-567812345678}",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "12345678-1234-5678-1234-56781234567Z",
        "\uff112345678-1234-5678-1234-567812345678",
    ],
}


class Generator:
    """Random writer schemas and, for each, random bodies (the wire bytes, union branches chosen
    explicitly). Named types are defined once, then used by name; `Node` is recursive."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0
        self.named: dict[str, Any] = {"ref.Shared": SHARED, "ref.Cost": SHARED["fields"][2]["type"]}
        self.named["ref.Color"] = SHARED["fields"][3]["type"]

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    # ---- schemas

    def schema(self) -> dict[str, Any]:
        fields = [{"name": f"f{i}", "type": self.type(0)} for i in range(self.rng.randint(1, 7))]
        if self.rng.random() < 0.3:  # a recursive type, and its use further on
            fields.append({"name": "tree", "type": self.node()})
            fields.append({"name": "trees", "type": {"type": "array", "items": "Node"}})
        return {"type": "record", "name": "Top", "fields": fields}

    def node(self) -> dict[str, Any]:
        node = {
            "type": "record",
            "name": "Node",
            "fields": [
                {"name": "at", "type": self.rng.choice(LOGICAL_TYPES)},
                {"name": "next", "type": ["null", "Node"]},
                {"name": "kids", "type": {"type": "map", "values": "Node"}},
            ],
        }
        self.named["Node"] = node
        return node

    def type(self, depth: int) -> Any:
        rng = self.rng
        choice = rng.random()
        leaf = depth >= 3
        if choice < 0.3:
            return dict(rng.choice(LOGICAL_TYPES))
        if choice < 0.4:
            return rng.choice(PRIMITIVE_TYPES)
        if choice < 0.47:
            return self.fixed_decimal()
        if choice < 0.52:
            name = self.name("E")
            self.named[name] = {"type": "enum", "name": name, "symbols": ["A", "B", "C"][: rng.randint(1, 3)]}
            return self.named[name]
        if choice < 0.56:
            name = self.name("F")
            self.named[name] = {"type": "fixed", "name": name, "size": rng.randint(1, 5)}
            return self.named[name]
        if choice < 0.62:
            return rng.choice(sorted(n for n in self.named if n != "Node"))  # a named type by name
        if choice < 0.7 or leaf:
            return ["null", self.simple()] if rng.random() < 0.7 else [self.simple(), "null"]
        if choice < 0.78:
            return self.several()
        if choice < 0.85:
            return {"type": "array", "items": self.type(depth + 1)}
        if choice < 0.9:
            return {"type": "map", "values": self.type(depth + 1)}
        name = self.name("R")
        fields = [{"name": f"g{i}", "type": self.type(depth + 1)} for i in range(rng.randint(1, 4))]
        self.named[name] = {"type": "record", "name": name, "fields": fields}
        if rng.random() < 0.5:
            return ["null", self.named[name]]
        return self.named[name]

    def simple(self) -> Any:
        if self.rng.random() < 0.6:
            return dict(self.rng.choice(LOGICAL_TYPES))
        pick = self.rng.choice([*PRIMITIVE_TYPES, "fixed", "ref.Shared"])
        return self.fixed_decimal() if pick == "fixed" else pick

    def fixed_decimal(self) -> dict[str, Any]:
        size = self.rng.choice([1, 2, 8, 16, 30])
        precision = max(1, int((8 * size - 1) * 0.30103))
        name = self.name("D")
        self.named[name] = _logical("fixed", "decimal", name=name, size=size, precision=precision)
        self.named[name]["scale"] = self.rng.randint(0, precision)
        return self.named[name]

    def several(self) -> list[Any]:
        """A union of several branches of distinct kinds (Avro allows one per unnamed type)."""
        pools = [
            ["null"],
            ["string", _logical("string", "uuid")],
            ["long", _logical("long", "timestamp-millis"), _logical("long", "local-timestamp-micros")],
            ["int", _logical("int", "date")],
            ["bytes", _logical("bytes", "decimal", precision=12, scale=3)],
            ["double"],
            ["ref.Shared"],
        ]
        picked = self.rng.sample(pools, self.rng.randint(2, 5))
        return [self.rng.choice(pool) for pool in picked]

    # ---- bodies

    def body(self, schema: Any, depth: int = 0) -> bytes:
        rng = self.rng
        if isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        if isinstance(schema, list):
            index = rng.randrange(len(schema))
            if depth > 4 and "null" in schema:
                index = schema.index("null")
            return zigzag(index) + self.body(schema[index], depth + 1)
        if isinstance(schema, str):
            return self.primitive(schema)
        kind, lt = schema["type"], schema.get("logicalType")
        if lt == "decimal":
            size = schema.get("size") or rng.choice([0, 1, 2, 5, 16, 40])
            raw = bytes(rng.getrandbits(8) for _ in range(size))
            if rng.random() < 0.2:
                raw = (b"\x00" if rng.random() < 0.5 else b"\xff") * size
            return raw if kind == "fixed" else sized(raw)
        if lt in EDGES:
            if lt == "uuid":
                text = rng.choice(EDGES[lt]) if rng.random() < 0.3 else str(uuid.UUID(int=rng.getrandbits(128)))
                if rng.random() < 0.3:
                    text = text.upper()
                return sized(text.encode("utf-8"))
            if rng.random() < 0.4:
                return zigzag(rng.choice(EDGES[lt]))
            if lt in ("time-millis", "time-micros"):
                return zigzag(rng.randrange(DAY_MS if lt == "time-millis" else DAY_US))
            if lt == "date":
                return zigzag(rng.randint(FIRST_DAY, LAST_DAY))
            unit = 1000 if lt.endswith("millis") else 1
            return zigzag(rng.randint(FIRST_US // unit, LAST_US // unit))
        if kind in BASE or kind in ("string", "bytes"):
            return self.primitive(kind)
        if kind == "enum":
            return zigzag(rng.randrange(len(schema["symbols"])))
        if kind == "fixed":
            return bytes(rng.getrandbits(8) for _ in range(schema["size"]))
        if kind == "record":
            self.named.setdefault(schema["name"], schema)
            if schema["name"] == "Node" and depth > 3:  # end the recursion: no next, no kids
                return self.body(schema["fields"][0]["type"]) + b"\x00" + b"\x00"
            return b"".join(self.body(f["type"], depth + 1) for f in schema["fields"])
        if kind in ("array", "map"):
            child = schema["items" if kind == "array" else "values"]
            n = 0 if depth > 3 else rng.choice([0, 1, 2, 3])
            # distinct keys: of a key written twice only the last value is kept, and the sink's converter
            # never sees the first (fastavro refuses the record if that one is out of range: see the report)
            items = b"".join(
                (b"" if kind == "array" else sized(f"k\u00e9{i}".encode()[: rng.randint(1, 4)] + bytes([48 + i])))
                + self.body(child, depth + 1)
                for i in range(n)
            )
            if n and rng.random() < 0.3:  # a block with a negative count and its size in bytes
                return zigzag(-n) + zigzag(len(items)) + items + b"\x00"
            return (zigzag(n) + items if n else b"") + b"\x00"
        raise AssertionError(schema)

    def primitive(self, kind: str) -> bytes:
        rng = self.rng
        if kind == "null":
            return b""
        if kind == "boolean":
            return bytes([rng.randrange(2)])
        if kind == "int":
            return zigzag(rng.choice([0, -1, INT_MIN, INT_MAX, rng.randint(INT_MIN, INT_MAX)]))
        if kind == "long":
            return zigzag(rng.choice([0, -1, LONG_MIN, LONG_MAX, rng.randint(LONG_MIN, LONG_MAX)]))
        if kind == "float":
            return struct.pack("<f", rng.choice([0.0, -0.0, 1.5, float("inf"), rng.uniform(-1e30, 1e30)]))
        if kind == "double":
            return struct.pack("<d", rng.choice([0.0, 5e-324, float("-inf"), rng.uniform(-1e300, 1e300)]))
        if kind == "string":
            text = rng.choice(["", "a", "ünï\u20ac\U0001f600", "x" * rng.randint(0, 40)]).encode("utf-8")
            if rng.random() < 0.03:
                text = b"bad \xff\xfe utf-8"
            return sized(text)
        if kind == "bytes":
            return sized(bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 7]))))
        raise AssertionError(kind)


# ------------------------------------------------------------------------------ the comparison


def exact(value: Any) -> Any:
    """`value` with every leaf as (type, repr): naive and aware datetimes, 1.0 and 1.00 differ."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, float) and value != value:
        return "float", "nan"
    return type(value).__name__, repr(value)


class Subject:
    """A writer schema registered as id 1 (references: the shared subject), the sink's decoder of
    it, and fastavro's public reader of it."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        registry = FakeRegistry(
            {1: ("AVRO", json.dumps(schema), REFERENCES)},
            references={("shared", 1): ("AVRO", json.dumps(SHARED), [])},
        )
        self.decoder = AvroDecoder(registry)
        named: dict[str, Any] = {}
        fastavro.parse_schema(SHARED, named)
        self.parsed = fastavro.parse_schema(schema, named)

    def expected(self, body: bytes) -> tuple[str, Any]:
        """fastavro's public reader: ("value", v) if it reads `body` whole, else ("error", why)."""
        stream = io.BytesIO(body)
        try:
            value = fastavro.schemaless_reader(stream, self.parsed, None, return_record_name=False)
        except Exception as exc:
            return "error", exc
        if stream.tell() != len(body):
            return "error", f"{len(body) - stream.tell()} byte(s) left over"
        return "value", value

    def check(self, body: bytes) -> str:
        """Decode `body` framed as schema id 1, and compare with fastavro's public reader."""
        kind, expected = self.expected(body)
        try:
            got = self.decoder.decode(header(1) + body).data
        except DecodeError as exc:
            assert kind == "error", f"the public reader reads {expected!r}, the sink refuses: {exc}"
            assert str(exc).startswith("Avro"), str(exc)
            return "error"
        except Exception as exc:  # pragma: no cover - what the test is for
            pytest.fail(f"{type(exc).__name__} escaped the decoder (fastavro: {kind} {expected!r}): {exc}")
        assert kind == "value", f"the public reader refuses ({expected!r}), the sink reads {got!r}"
        assert exact(got) == exact(expected)
        return "value"


SEEDS = range(120)


@pytest.mark.parametrize("seed", [SEEDS[i::4] for i in range(4)], ids=lambda s: f"seeds{s.start}")
def test_random_schemas_decode_as_fastavros_public_reader(seed: range) -> None:
    outcomes = {"value": 0, "error": 0}
    marked = 0
    for s in seed:
        gen = Generator(s)
        schema = gen.schema()
        subject = Subject(schema)
        for _ in range(25):
            outcomes[subject.check(gen.body(schema))] += 1
        compiled = subject.decoder._compiled[1]
        marked += avro.MARK in json.dumps(compiled.parsed)
    assert outcomes["value"] > 200 and outcomes["error"] > 20, outcomes  # both sides are exercised
    assert marked > 10, "the converter's own logical readers are exercised"


@pytest.mark.parametrize("seed", range(4))
def test_hostile_bodies_are_decode_errors_or_fastavros_value(seed: int) -> None:
    """Bodies cut short, with bytes after the record, with bytes flipped: fastavro's value where it
    reads them whole, else a DecodeError; never another exception."""
    outcomes = {"value": 0, "error": 0}
    for s in range(seed * 30, seed * 30 + 30):
        gen = Generator(1000 + s)
        schema = gen.schema()
        subject = Subject(schema)
        rng = random.Random(s)
        for _ in range(10):
            body = gen.body(schema)
            hostile = [body + b"\x00", body + bytes([rng.getrandbits(8)]) * rng.randint(1, 9)]
            if body:
                hostile.append(body[: rng.randrange(len(body))])
                flipped = bytearray(body)
                for _ in range(rng.randint(1, 3)):
                    flipped[rng.randrange(len(body))] = rng.getrandbits(8)
                hostile.append(bytes(flipped))
                hostile.append(body[:1] + b"\xff" * rng.randint(1, 12) + body[1:])
            for data in hostile:
                outcomes[subject.check(data)] += 1
    assert outcomes["error"] > 300 and outcomes["value"] > 0, outcomes


def test_logical_values_written_by_fastavros_writer_read_back() -> None:
    """fastavro's writer, given the Python values, and the decoder agree: the value read is the
    value written, of the same type, zone and scale."""
    schema = {
        "type": "record",
        "name": "Top",
        "fields": [
            {"name": "ts", "type": _logical("long", "timestamp-millis")},
            {"name": "us", "type": _logical("long", "timestamp-micros")},
            {"name": "local", "type": _logical("long", "local-timestamp-micros")},
            {"name": "day", "type": ["null", _logical("int", "date")]},
            {"name": "tm", "type": _logical("int", "time-millis")},
            {"name": "tu", "type": _logical("long", "time-micros")},
            {"name": "id", "type": _logical("string", "uuid")},
            {"name": "big", "type": _logical("bytes", "decimal", precision=60, scale=30)},
            {"name": "tiny", "type": _logical("bytes", "decimal", precision=1, scale=0)},
            {
                "name": "fx",
                "type": {
                    "type": "fixed",
                    "name": "Fx",
                    "size": 16,
                    "logicalType": "decimal",
                    "precision": 38,
                    "scale": 10,
                },
            },
            {"name": "stamps", "type": {"type": "array", "items": _logical("long", "timestamp-micros")}},
            {"name": "days", "type": {"type": "map", "values": _logical("int", "date")}},
            {"name": "s", "type": "string"},
            {"name": "b", "type": "bytes"},
        ],
    }
    utc = dt.UTC
    values = [
        {
            "ts": dt.datetime(1, 1, 1, tzinfo=utc),
            "us": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
            "local": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
            "day": dt.date(1, 1, 1),
            "tm": dt.time(23, 59, 59, 999000),
            "tu": dt.time(0, 0, 0, 1),
            "id": uuid.UUID(int=0),
            "big": decimal.Decimal("-" + "9" * 30 + "." + "9" * 30),
            "tiny": decimal.Decimal("0"),
            "fx": decimal.Decimal("-1234567890123456789012345678.0000000001"),
            "stamps": [],
            "days": {},
            "s": "",
            "b": b"",
        },
        {
            "ts": dt.datetime(1970, 1, 1, tzinfo=utc),
            "us": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
            "local": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            "day": None,
            "tm": dt.time(0, 0),
            "tu": dt.time(23, 59, 59, 999999),
            "id": uuid.UUID(int=2**128 - 1),
            "big": decimal.Decimal("0." + "0" * 29 + "1"),
            "tiny": decimal.Decimal("-9"),
            "fx": decimal.Decimal("0E-10"),
            "stamps": [dt.datetime(1, 1, 1, tzinfo=utc), dt.datetime(2024, 2, 29, 12, tzinfo=utc)],
            "days": {"": dt.date(9999, 12, 31), "x": dt.date(1970, 1, 1)},
            "s": "\U0001f600",
            "b": b"\x00",
        },
    ]
    subject = Subject(schema)
    for value in values:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
        assert subject.check(out.getvalue()) == "value"
        got = subject.decoder.decode(header(1) + out.getvalue()).data
        assert exact(got) == exact(value)


def test_an_unknown_schema_id_is_a_decode_error() -> None:
    subject = Subject(Generator(0).schema())
    with pytest.raises(DecodeError, match="unknown schema id 2"):
        subject.decoder.decode(header(2) + b"\x00")


def test_a_union_only_schema_of_references_reads_its_branches() -> None:
    """Confluent's several event types in one topic: the schema is a union of referenced names,
    which the public reader cannot resolve; its branches read as a record of the reference does."""
    registry = FakeRegistry(
        {1: ("AVRO", json.dumps(["null", "ref.Shared"]), REFERENCES)},
        references={("shared", 1): ("AVRO", json.dumps(SHARED), [])},
    )
    shared = Subject(SHARED)
    decoder = AvroDecoder(registry)
    gen = Generator(7)
    for _ in range(40):
        body = gen.body(SHARED)
        kind, expected = shared.expected(body)
        try:
            got = decoder.decode(header(1) + b"\x02" + body).data
        except DecodeError:
            assert kind == "error"
            continue
        assert kind == "value" and exact(got) == exact(expected)


# ------------------------------------------------------------------------------ nanosecond timestamps


@pytest.mark.parametrize("logical_type", ["timestamp-nanos", "local-timestamp-nanos"])
def test_nanosecond_timestamps_are_truncated_exactly(logical_type: str) -> None:
    """fastavro leaves them longs; the sink keeps them to the microsecond, truncated (docs/types.md),
    in integer arithmetic: a float product is a microsecond off for about one value in five."""
    schema = {"type": "record", "name": "Top", "fields": [{"name": "t", "type": _logical("long", logical_type)}]}
    subject = Subject(schema)
    epoch = logical.EPOCH if logical_type == "timestamp-nanos" else logical.EPOCH_LOCAL
    rng = random.Random(3)
    wires = [0, 1, 999, 1000, 1999, -1, -999, -1000, -1001, 1_751_054_707_714_499_914, LONG_MAX, LONG_MIN]
    wires += [rng.randint(LONG_MIN, LONG_MAX) for _ in range(300)]
    for wire in wires:
        got = subject.decoder.decode(header(1) + zigzag(wire)).data["t"]
        assert got == epoch + dt.timedelta(microseconds=wire // 1000), wire
        assert got.tzinfo is epoch.tzinfo


def test_debezium_nano_timestamp_is_truncated_exactly() -> None:
    convert = logical.converter("io.debezium.time.NanoTimestamp")
    assert convert is not None
    for wire in (1_751_054_707_714_499_914, 4_499_683_446_528_355_980, -1, -1001):
        assert convert(wire) == logical.EPOCH_LOCAL + dt.timedelta(microseconds=wire // 1000)


# ------------------------------------------------------------------------------ nesting


LINK = {
    "type": "record",
    "name": "Link",
    "fields": [
        {"name": "next", "type": ["null", "Link"]},
        {"name": "at", "type": _logical("long", "timestamp-millis")},
    ],
}


def test_shallow_recursion_reads_as_fastavro_does() -> None:
    subject = Subject(LINK)
    for depth in (0, 1, 50, 150):
        body = b"\x02" * depth + b"\x00" + zigzag(depth) * (depth + 1)
        assert subject.check(body) == "value"


DEEP = """
import json, sys
from sink.errors import DecodeError
from sink.formats.avro import AvroDecoder
from tests.support.fakes import FakeRegistry
from tests.support.wire import header
schema = json.loads(sys.argv[1])
decoder = AvroDecoder(FakeRegistry({1: ("AVRO", json.dumps(schema), [])}))
stamps = len(schema["fields"]) - 1  # a timestamp per level, or none
for depth in (1_000, 5_000, 100_000):
    try:
        decoder.decode(header(1) + b"\\x02" * depth + b"\\x00" + b"\\x00" * (depth + 1) * stamps)
        print("value")
    except DecodeError as exc:
        print("DecodeError", exc)
"""


@pytest.mark.parametrize("fields", [LINK["fields"], LINK["fields"][:1]], ids=["with-timestamp", "plain"])
def test_a_body_nesting_a_recursive_record_deeply_is_a_decode_error_not_a_crash(fields: list[Any]) -> None:
    """A few kilobytes of union index 1 nest a recursive record thousands deep: fastavro's compiled
    reader recurses in C without a limit, and the process dies (SIGSEGV). Run in a child process."""
    schema = {**LINK, "fields": fields}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", DEEP, json.dumps(schema)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"the decoder died: {done.returncode} {done.stderr[-500:]}"
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("DecodeError") for line in lines), done.stdout
    assert "nest" in lines[-1], lines[-1]


def test_a_type_containing_itself_outside_any_union_is_a_decode_error_not_a_crash() -> None:
    """`Loop` has no finite value: the compiled reader recurses for any body, the process dies."""
    schema = {"type": "record", "name": "Loop", "fields": [{"name": "next", "type": "Loop"}]}
    script = DEEP.replace("for depth in (1_000, 5_000, 100_000):", "for depth in (0, 1, 2):").replace(
        'b"\\\\x02" * depth + b"\\\\x00" + b"\\\\x00" * (depth + 1) * stamps', 'b"\\\\x00" * depth'
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(schema)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"the decoder died: {done.returncode} {done.stderr[-500:]}"
    assert done.stdout.count("DecodeError") == 3 and "nests a recursive type" in done.stdout, done.stdout


def test_a_recursive_schema_reads_over_long_varints_as_the_compiled_reader() -> None:
    """The recursive schemas' probe reads longs as fastavro's compiled reader (64 bits, any
    length), so it takes the same path through the body, and the value is the compiled reader's."""
    subject = Subject({**LINK, "fields": [*LINK["fields"], {"name": "n", "type": "long"}]})
    rng = random.Random(5)
    outcomes = set()
    for _ in range(200):
        overlong = bytes(rng.getrandbits(8) | 0x80 for _ in range(rng.randint(9, 25))) + bytes([rng.getrandbits(7)])
        # union index 0 or 1, over-long; the last: 1 to the compiled reader (bits past 64 dropped),
        # 2**63 + 1 to fastavro's Python reader
        index, levels = rng.choice(
            [(b"\x00", 1), (b"\x80" * 10 + b"\x00", 1), (b"\x82\x80\x80\x00", 2), (b"\x82" + b"\x80" * 8 + b"\x02", 2)]
        )
        inner = b"\x00\x00" + overlong if levels == 2 else b""  # next: null, at: epoch, n
        outcomes.add(subject.check(index + inner + b"\x00" + overlong))
        subject.check(b"\x00" + overlong + overlong)
    assert outcomes == {"value"}
    assert subject.decoder._compiled[1].read is avro._probed_read
    plain = Subject(SHARED)
    plain.check(Generator(0).body(SHARED))
    assert plain.decoder._compiled[1].read is None, "a schema without a recursive type: the compiled reader alone"


def test_a_long_run_of_continuation_bytes_is_read_in_linear_time() -> None:
    """A megabyte of 0xff as one long: the probe does not grow an integer of 7 million bits."""
    subject = Subject({**LINK, "fields": [*LINK["fields"], {"name": "n", "type": "long"}]})
    start = time.perf_counter()
    assert subject.check(b"\x00\x00" + b"\xff" * 1_000_000 + b"\x01") == "value"
    assert time.perf_counter() - start < 5


def _decode(schema: Any, body: bytes) -> Any:
    return AvroDecoder(FakeRegistry({1: ("AVRO", json.dumps(schema), [])})).decode(header(1) + body).data


EMPTY = {"type": "record", "name": "Empty", "fields": []}
NOTHING = {"type": "record", "name": "Nothing", "fields": [{"name": "n", "type": "null"}, {"name": "e", "type": EMPTY}]}


@pytest.mark.parametrize(
    "items",
    [EMPTY, NOTHING, {"type": "fixed", "name": "Zero", "size": 0}, {"type": "array", "items": EMPTY}],
    ids=["empty record", "record of such fields", "fixed(0)", "arrays of empty records"],
)
def test_a_huge_count_of_items_that_take_no_bytes_is_a_decode_error_in_little_time(items: Any) -> None:
    """A count of a few bytes stood for 10**12 empty records, which the compiled reader built (10**8
    nulls: 2.7 s and 780 MB; more: an out-of-memory kill at every restart). An array of nulls is no
    column (refused with its schema), but an empty record, a record of nulls or a fixed(0) is.
    Refused past the bytes the body has plus ITEMS_WITHOUT_BYTES_MAX, before the compiled reader runs."""
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "array", "items": items}}]}
    inner = zigzag(1) + zigzag(10**12) + zigzag(0) if isinstance(items, dict) and items.get("type") == "array" else b""
    bodies = [
        zigzag(10**12) + inner + zigzag(0),
        zigzag(-(10**12)) + zigzag(0) + inner + zigzag(0),  # a block with its size
        (zigzag(60_000) + inner) * 2 + zigzag(0),  # blocks that pass one by one
    ]
    for body in bodies:
        start = time.perf_counter()
        with pytest.raises(DecodeError, match="more array items than its"):
            _decode(schema, body)
        assert time.perf_counter() - start < 5


def test_items_that_take_no_bytes_up_to_the_bound_read_as_fastavro_reads_them() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": {"type": "array", "items": EMPTY}}]}
    assert _decode(schema, zigzag(3) + zigzag(0)) == {"a": [{}] * 3}
    body = zigzag(avro.ITEMS_WITHOUT_BYTES_MAX) + zigzag(0)
    assert len(_decode(schema, body)["a"]) == avro.ITEMS_WITHOUT_BYTES_MAX
    with pytest.raises(DecodeError, match="more array items than its"):
        _decode(schema, zigzag(avro.ITEMS_WITHOUT_BYTES_MAX + 5) + zigzag(0))  # 4 bytes could carry 4 items


@pytest.mark.parametrize(
    ("field", "probed"),
    [
        ({"type": "array", "items": EMPTY}, True),
        ({"type": "map", "values": {"type": "array", "items": EMPTY}}, True),
        (["null", {"type": "array", "items": {"type": "fixed", "name": "Z", "size": 0}}], True),
        ({"type": "array", "items": ["null", "long"]}, False),  # a union takes its index
        ({"type": "array", "items": {"type": "enum", "name": "One", "symbols": ["A"]}}, False),
        ({"type": "map", "values": "null"}, False),  # each entry takes its key
        ({"type": "array", "items": {"type": "fixed", "name": "F", "size": 1}}, False),
        ({"type": "array", "items": "long"}, False),
    ],
)
def test_only_schemas_with_arrays_of_items_that_take_no_bytes_are_probed(field: Any, probed: bool) -> None:
    decoder = AvroDecoder(
        FakeRegistry(
            {1: ("AVRO", json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": field}]}), [])}
        )
    )
    with pytest.raises(DecodeError):
        decoder.decode(header(1))  # compiles the schema; an empty body is truncated
    assert (decoder._compiled[1].read is avro._probed_read) is probed


# ------------------------------------------------------------------------------ names redefined by a later reference

# H1 defines a record X inline; a later reference defines X again, which fastavro allows across
# parses: its reader then follows the name X to the later type, while H1 keeps its inline X.
H1 = {
    "type": "record",
    "name": "H1",
    "fields": [{"name": "x", "type": {"type": "record", "name": "X", "fields": [{"name": "a", "type": "long"}]}}],
}
USES_BOTH = {"type": "record", "name": "R", "fields": [{"name": "h", "type": "H1"}, {"name": "y", "type": "X"}]}
X_OF_EMPTY = {"type": "record", "name": "X", "fields": [{"name": "a", "type": {"type": "array", "items": EMPTY}}]}
X_LINKED = {"type": "record", "name": "X", "fields": [{"name": "next", "type": ["null", "X"]}]}


def _redefining(main: Any, holder: Any, later_x: Any) -> AvroDecoder:
    """Schema id 1 = `main`, referencing subject h1 (`holder`), then subject x2 (`later_x`)."""
    references = [{"name": "H1", "subject": "h1", "version": 1}, {"name": "X", "subject": "x2", "version": 1}]
    return AvroDecoder(
        FakeRegistry(
            {1: ("AVRO", json.dumps(main), references)},
            references={("h1", 1): ("AVRO", json.dumps(holder), []), ("x2", 1): ("AVRO", json.dumps(later_x), [])},
        )
    )


X_EMPTY = {"type": "record", "name": "X", "fields": []}
X_STRING = {"type": "record", "name": "X", "fields": [{"name": "s", "type": "string"}]}
X_TIMESTAMP = {
    "type": "record",
    "name": "X",
    "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
}


@pytest.mark.parametrize(
    "later_x",
    [X_OF_EMPTY, X_LINKED, X_STRING, X_TIMESTAMP],
    ids=["array of empty records", "recursive", "string", "timestamp"],
)
def test_a_name_a_later_reference_defines_again_differently_is_refused(later_x: Any) -> None:
    """fastavro lets a later parse define a name again, and its reader then follows `y: X` to the
    later type while H1 keeps its inline X. The walks that pick probed schemas went by name and
    skipped it (an array of empty records: 6.2 s and 800 MB for a 10**7 count; recursive: SIGSEGV
    at 30,000 nestings), and the converter, keyed by name, left a timestamp an int. The Avro
    specification allows one definition per name, and Java's parser refuses another: so does the
    sink, for every record of the schema."""
    decoder = _redefining(USES_BOTH, H1, later_x)
    for body in (zigzag(0) + zigzag(3) + zigzag(0), zigzag(0) + zigzag(10**6) + zigzag(0), b""):
        with pytest.raises(DecodeError, match="defines the type 'X' again, differently"):
            decoder.decode(header(1) + body)


def test_a_name_two_references_define_alike_reads() -> None:
    decoder = _redefining(USES_BOTH, H1, H1["fields"][0]["type"])
    assert decoder.decode(header(1) + zigzag(5) + zigzag(6)).data == {"h": {"x": {"a": 5}}, "y": {"a": 6}}


def _redefined(later_x: Any, holder: Any = H1, main: Any = USES_BOTH) -> tuple[Any, dict[str, Any]]:
    """`main` parsed after `holder` and `later_x` as fastavro allows it (the sink refuses it)."""
    named: dict[str, Any] = {}
    fastavro.parse_schema(holder, named)
    fastavro.parse_schema(later_x, named)
    return fastavro.parse_schema(main, named), named


def test_the_walks_follow_a_redefined_name_as_fastavros_reader_does() -> None:
    """Defence in depth behind the refusal: the walks tell types apart by identity, as the reader
    resolves names, so an inline X met first does not hide the later X that `y: X` reads."""
    parsed, named = _redefined(X_OF_EMPTY)
    assert avro._free_items(parsed, named, set())
    parsed, named = _redefined(X_LINKED)
    assert avro._recursive(parsed, named, set(), set())
    parsed, named = _redefined(X_STRING)
    assert not avro._free_items(parsed, named, set()) and not avro._recursive(parsed, named, set(), set())
    # H1's inline X names X in a field: alone, a type without a finite value; read as the later,
    # empty X, H1 takes no bytes.
    holder = {
        "type": "record",
        "name": "H1",
        "fields": [{"name": "x", "type": {"type": "record", "name": "X", "fields": [{"name": "a", "type": "X"}]}}],
    }
    main = {"type": "record", "name": "R", "fields": [{"name": "hs", "type": {"type": "array", "items": "H1"}}]}
    parsed, named = _redefined(X_EMPTY, holder, main)
    assert avro._free_items(parsed, named, set())


def test_a_probed_body_at_the_bound_reads_as_fastavros_public_reader() -> None:
    """Items that take bytes (booleans in a block with its size, map entries, the arrays of an
    array) each take one at least, so a body of them never reaches the bound: the probe refuses
    only items that take none beyond what the body's bytes and ITEMS_WITHOUT_BYTES_MAX allow."""
    schema = {
        "type": "record",
        "name": "P",
        "fields": [
            {"name": "free", "type": {"type": "array", "items": EMPTY}},
            {"name": "flags", "type": {"type": "array", "items": "boolean"}},
            {"name": "lists", "type": {"type": "map", "values": {"type": "array", "items": "Empty"}}},
            {"name": "nested", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
        ],
    }
    subject = Subject(schema)
    flags = 50_000
    rest = zigzag(-flags) + zigzag(flags) + b"\x01" * flags + zigzag(0)  # one block, with its size
    rest += zigzag(2) + sized(b"a") + zigzag(2) + zigzag(0) + sized(b"") + zigzag(0) + zigzag(0)  # 2 entries, 2 free
    rest += zigzag(3) + (zigzag(1) + zigzag(-1) + zigzag(0)) * 3 + zigzag(0)  # 3 arrays of a long
    others = flags + 2 + 3 + 3  # every item but the free ones: each takes a byte at least
    free = 0
    for _ in range(3):  # the most free items the bound lets through: the body's length depends on it
        free = len(zigzag(free) + zigzag(0) + rest) + avro.ITEMS_WITHOUT_BYTES_MAX - others - 2
    body = zigzag(free) + zigzag(0) + rest
    assert subject.check(body) == "value"
    assert subject.decoder._compiled[1].read is avro._probed_read
    with pytest.raises(DecodeError, match="more array items than its"):
        subject.decoder.decode(header(1) + zigzag(free + 1) + zigzag(0) + rest)


def test_a_long_bytes_decimal_is_read_in_little_time() -> None:
    """Not an item count, but a small body that costs much: fastavro made an integer of a bytes
    decimal's bytes, then a Decimal of it, quadratic in its length whatever the precision (100 KB:
    1 s, 200 KB: 4.5 s, 400 KB: 32 s; past about 420 KB, decimal.Overflow after that time). A
    value past its precision's digits is refused before."""
    schema = {
        "type": "record",
        "name": "D",
        "fields": [{"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}}],
    }
    start = time.perf_counter()
    with pytest.raises(DecodeError, match="more than 38 digits hold"):
        _decode(schema, sized(b"\x7f" * 1_000_000))  # four minutes before
    assert time.perf_counter() - start < 5
    largest = 10**38 - 1  # 38 digits: read, as every value within the precision
    body = sized(largest.to_bytes(17, "big", signed=True))
    assert _decode(schema, body) == {"d": decimal.Decimal(f"{largest}E-2")}
    with pytest.raises(DecodeError, match="128 bits"):
        _decode(schema, sized((2**127).to_bytes(17, "big", signed=True)))
