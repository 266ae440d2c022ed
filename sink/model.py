"""The plain data that flows between the stages: frozen dataclasses and named tuples, no I/O.

    RawRecord --formats--> Decoded --transforms--> Row --batch--> Batch --pipeline--> Outcome

Schemas travel in a neutral form (`Field`, `FieldType`) that every format maps into and that
`schema.py` maps to a `TableSpec` of neutral `ColumnType`s; only a dialect turns those into SQL.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar, overload

# The types made once per record (and per record and stage) are named tuples: immutable like the
# frozen dataclasses below, at a quarter of their construction cost on the hot path (a frozen
# dataclass sets each field through object.__setattr__).
#
# Where one is made for every record (decoders, the row plan, the consumer), `make(Cls, (every
# field, in order))` builds it: tuple.__new__ itself, without the Python frame of the generated
# constructor (a third of the cost; no defaults, so every field is given).
_T = TypeVar("_T")
if TYPE_CHECKING:

    def make(cls: type[_T], fields: tuple[Any, ...], /) -> _T: ...

else:
    make = tuple.__new__

COORD_OF_ROW = attrgetter("raw.coord")  # a Row's record's coordinates, for C-level passes over rows


class Coord(NamedTuple):
    """Where a record lives in Kafka; travels with everything derived from it."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


class RawRecord(NamedTuple):
    coord: Coord
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int | None = None  # milliseconds since the epoch, as Kafka gives it


# ---------------------------------------------------------------------------- neutral schemas


class Kind(enum.StrEnum):
    """Neutral column kinds. Logical types (decimal, timestamps, uuid, json) are kinds of their own."""

    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOLEAN = "boolean"
    STRING = "string"
    BYTES = "bytes"
    DECIMAL = "decimal"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"  # an instant: zone-aware
    LOCAL_TIMESTAMP = "local_timestamp"  # a wall-clock reading without zone
    UUID = "uuid"
    JSON = "json"  # nested records, maps, arrays of non-primitives
    ARRAY = "array"  # array of a primitive kind (native arrays where the database has them)


INTEGER_KINDS = (Kind.INT8, Kind.INT16, Kind.INT32, Kind.INT64)


@dataclass(frozen=True, slots=True)
class ColumnType:
    kind: Kind
    precision: int | None = None  # decimal precision; fractional-second digits for time kinds
    scale: int | None = None  # decimal scale
    length: int | None = None  # bounded strings / fixed bytes
    item: ColumnType | None = None  # element type of ARRAY

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        if self.kind is Kind.ARRAY and self.item:
            return f"array<{self.item}>"
        if self.length:
            return f"{self.kind}({self.length})"
        if self.precision is not None and self.kind in (Kind.TIME, Kind.TIMESTAMP, Kind.LOCAL_TIMESTAMP):
            # Fractional-second digits: part of the column (PostgreSQL's stage is named by this text).
            return f"{self.kind}({self.precision})"
        return str(self.kind)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table: its bare `name` and, from a schema-qualified SINK_TABLE_NAME_FORMAT, its `schema`
    (PostgreSQL schema, MariaDB/MySQL database; None: the connection's default). The dialect
    quotes each part; `qualified` is how rows, batches, logs and metrics name it."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    schema: str | None = None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def qualified(self) -> str:
        return self.qualify(self.schema, self.name)

    @staticmethod
    def qualify(schema: str | None, name: str) -> str:
        """`schema.name` (the bare name without a schema). A part holding a dot or a double quote
        is double-quoted, quotes doubled, so two tables never share the form: `replica."a.b"`."""
        if schema is None:
            return name
        parts = ('"' + p.replace('"', '""') + '"' if "." in p or '"' in p else p for p in (schema, name))
        return ".".join(parts)


# ---------------------------------------------------------------------------- records


# Which writer schema a key or value was read with; compared for equality only (specs and row
# plans are cached by it). A registry id (int) or schema GUID (str); Connect JSON's schema text;
# Protobuf's (id, message indexes); what a Debezium envelope or a transform chain derives from
# one, tagged: ("debezium.after", id), ("smt", ...). None: schemaless.
SchemaId = int | str | tuple[Any, ...] | None

# What a format knows of a key or value: a struct (its columns), a primitive (one type), or nothing
# (schemaless data, whose columns schema.py infers from the values).
Shape = tuple[Column, ...] | ColumnType | None


class Payload(NamedTuple):
    """One decoded key or value. `schema_id` identifies the writer schema version, if any."""

    data: Any
    shape: Shape = None
    schema_id: SchemaId = None


class Decoded(NamedTuple):
    """A decoded record; `value.data is None` is a tombstone."""

    raw: RawRecord
    key: Payload
    value: Payload

    @property
    def coord(self) -> Coord:
        return self.raw.coord


# The choices of the settings that steer the core (Kafka Connect's values), checked by the type checker.
InsertMode = Literal["insert", "upsert", "update"]
PkMode = Literal["none", "kafka", "record_key", "record_value", "record_header"]
Tolerance = Literal["none", "all"]  # errors.tolerance
CdcFormat = Literal["none", "debezium", "auto"]


class Op(enum.StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"
    TRUNCATE = "truncate"  # every row of the table (a Debezium `t` event, SINK_TRUNCATE_ENABLED)


UPSERT = Op.UPSERT  # (reading an Enum member off its class is slow in CPython 3.11: once, for the hot paths)


class Row(NamedTuple):
    """One write for one table. `key` holds the primary-key values (empty with pk mode none)."""

    raw: RawRecord
    table: str
    op: Op
    key: Mapping[str, Any]
    values: Mapping[str, Any]
    spec: TableSpec
    schema_id: SchemaId = None
    inferred: bool = False  # spec inferred from schemaless data: merge, never alter existing columns
    # The names `values` holds, in order, when every row of its kind holds exactly these (the rows of
    # a lane: one record schema): the write plan then groups such rows without comparing them.
    fields: tuple[str, ...] | None = None

    @property
    def coord(self) -> Coord:
        return self.raw.coord


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one table under one spec, in record order. Dedup happens at write time."""

    table: str
    spec: TableSpec
    rows: tuple[Row, ...]
    inferred: bool = False  # spec inferred from schemaless data: evolution only adds columns


# ---------------------------------------------------------------------------- outcomes


class Status(enum.StrEnum):
    WRITTEN = "written"
    DELETED = "deleted"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"
    # A record error. The preparer and the writer return it unrouted; the router then dead-letters
    # it (DEAD_LETTERED), stops the sink (tolerance none), or logs and passes it: in a report,
    # FAILED is that last fate (tolerance all without a dead-letter topic).
    FAILED = "failed"


class Stage(enum.StrEnum):
    """Kafka Connect's stage names, used in dead-letter headers and reports."""

    KEY_CONVERTER = "KEY_CONVERTER"
    VALUE_CONVERTER = "VALUE_CONVERTER"
    HEADER_CONVERTER = "HEADER_CONVERTER"
    TRANSFORMATION = "TRANSFORMATION"
    TASK_PUT = "TASK_PUT"


class Outcome(NamedTuple):
    raw: RawRecord
    status: Status
    table: str | None = None
    operation: str | None = None  # insert / update / upsert / delete / skip
    key: Any = None
    stage: Stage | None = None
    error: Exception | None = None

    @property
    def coord(self) -> Coord:
        return self.raw.coord


class WrittenRows:
    """Rows written whole by one statement's operation, their Outcomes made only when read
    (`Settled.add_written`)."""

    __slots__ = ("operation", "rows", "table")

    def __init__(self, table: str, operation: str, rows: Sequence[Row]) -> None:
        self.table, self.operation, self.rows = table, operation, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Outcome]:
        table, operation, written = self.table, self.operation, Status.WRITTEN
        return (Outcome(row.raw, written, table, operation, row.key) for row in self.rows)

    def coords(self) -> list[Coord]:
        return list(map(COORD_OF_ROW, self.rows))


class Settled(Sequence[Outcome]):
    """The outcomes that transactions settled, in order: Outcomes, and runs of rows written whole
    (`WrittenRows`), whose Outcomes are made only when read. Settling the usual part needs only the
    coordinates and the count of its rows: an Outcome per record cost about a tenth of the CPU."""

    __slots__ = ("_size", "failed", "groups")

    def __init__(self, outcomes: Iterable[Outcome] = ()) -> None:
        self.groups: list[list[Outcome] | WrittenRows] = []
        self._size = 0
        self.failed = False  # some outcome is FAILED (a record error, not routed yet)
        self.add(outcomes)

    def add(self, outcomes: Iterable[Outcome]) -> None:
        group = list(outcomes)
        if group:
            self.groups.append(group)
            self._size += len(group)
            self.failed = self.failed or any(o.status is Status.FAILED for o in group)

    def add_written(self, table: str, operation: str, rows: Sequence[Row]) -> None:
        if rows:
            self.groups.append(WrittenRows(table, operation, rows))
            self._size += len(rows)

    def merge(self, other: Settled) -> None:
        self.groups += other.groups
        self._size += len(other)
        self.failed = self.failed or other.failed

    def coords(self, failed: bool = True) -> Iterator[Coord]:
        """The outcomes' coordinates; without those of FAILED ones (record errors not routed yet)
        when `failed` is false."""
        for group in self.groups:
            if isinstance(group, WrittenRows):
                yield from group.coords()
            else:
                yield from (o.raw.coord for o in group if failed or o.status is not Status.FAILED)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Outcome]:
        for group in self.groups:
            yield from group

    @overload
    def __getitem__(self, index: int) -> Outcome: ...
    @overload
    def __getitem__(self, index: slice) -> list[Outcome]: ...
    def __getitem__(self, index: int | slice) -> Outcome | list[Outcome]:
        return list(self)[index]  # (read by tests and tools, never on the hot path)

    def __repr__(self) -> str:
        return f"Settled({list(self)!r})"
