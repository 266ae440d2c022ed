"""Debezium change events -> the operation they stand for (upsert / delete / truncate / skip).

A Debezium envelope (`before`, `after`, `source`, `op`, `ts_ms`, `transaction`) is recognised from
its schema (a struct named `….Envelope`, or one with `op`, `source` and `before`/`after` fields),
or, schemaless, from its value. What it carries becomes an ordinary decoded record whose value is
the row: `after` for `c` (create), `r` (snapshot read) and `u` (update), `before` for `d` (delete,
the key fields of a `record_value` primary key are read from it). Debezium's own records that are
no rows (heartbeats, schema changes, transaction markers, logical-decoding messages) are skipped.
Records already flattened by `ExtractNewRecordState` are rows as they are; its rewrite mode's
`__deleted` field ("true") makes a delete and is never written as a column.

Per schema, the envelope's layout is worked out once (`_Layout`, cached by schema id); per record,
one dict lookup, the `op` and a new `Payload` of the row.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from .errors import MappingError
from .formats import Struct
from .model import Column, ColumnType, Decoded, Kind, Payload, SchemaId, Shape

DELETED_FIELD = "__deleted"  # ExtractNewRecordState's delete.handling.mode=rewrite
# Debezium's records that are no rows: value schema names (prefix match for the connector's own).
SKIPPED_NAMES = (
    "io.debezium.connector.common.Heartbeat",
    "io.debezium.connector.common.TransactionMetadataValue",
    "io.debezium.connector.common.TransactionMetadataKey",
)
SCHEMA_CHANGE_SUFFIX = ".SchemaChangeValue"  # io.debezium.connector.<connector>.SchemaChangeValue
# A logical-decoding message (PostgreSQL's pg_logical_emit_message) is `op` "m" with a `message`
# block and no `before`/`after`, so it is no envelope by its fields: named, or schemaless, its own.
MESSAGE_NAME = ("io.debezium.connector.", ".MessageValue")
SCHEMA_CHANGE_FIELDS = ("ddl", "tableChanges")  # a schemaless schema-change event
TRANSACTION_FIELDS = frozenset({"status", "id", "event_count", "data_collections"})  # schemaless marker
TX_STATUS = ("BEGIN", "END")
UPSERT_OPS = frozenset({"c", "r", "u"})
# Debezium's default `unavailable.value.placeholder`: what a PostgreSQL event carries for an unchanged
# TOAST column under REPLICA IDENTITY DEFAULT (the value is not in the WAL). As text, as its UTF-8
# bytes for bytea, as a one-item array for text[]/bytea[] columns.
UNAVAILABLE_VALUE = "__debezium_unavailable_value"
MAX_LAYOUTS = 10_000


class Change(enum.Enum):
    UPSERT = "upsert"
    DELETE = "delete"
    TRUNCATE = "truncate"
    SKIP = "skip"  # not a row: heartbeat, schema change, transaction marker, message
    TOMBSTONE = "tombstone"  # a null value: the sink's tombstone rules decide
    PLAIN = "plain"  # not a change event (auto mode) or an already-flattened row


class _Layout:
    """One envelope schema's parts: the shapes and derived schema ids of `after` and `before`."""

    __slots__ = ("after", "before")

    def __init__(self, shape: tuple[Column, ...], schema_id: SchemaId) -> None:
        nested = shape.nested if isinstance(shape, Struct) else {}
        self.after = _part(nested.get("after"), ("debezium.after", schema_id))
        self.before = _part(nested.get("before"), ("debezium.before", schema_id))


def _part(shape: Shape, schema_id: SchemaId) -> tuple[Shape, SchemaId]:
    # A part without a struct shape of its own (a format that keeps none) is typed from its values.
    return (shape, schema_id) if isinstance(shape, tuple) else (None, None)


class _Flattened:
    """A row schema with ExtractNewRecordState's `__deleted` field: the row's shape without it."""

    __slots__ = ("schema_id", "shape")

    def __init__(self, shape: Shape, schema_id: SchemaId) -> None:
        if isinstance(shape, tuple):
            self.shape: Shape = tuple(c for c in shape if c.name != DELETED_FIELD)
            self.schema_id: SchemaId = ("debezium.flattened", schema_id)
        else:
            self.shape, self.schema_id = shape, schema_id


_PLAIN = object()  # a schema that is no envelope: its records are rows as they are
_SKIP = object()  # a schema of Debezium's records that are no rows
_SCHEMALESS_FLATTENED = _Flattened(None, None)


class ChangeReader:
    """`read(record)` -> (what the record stands for, the record with its row as the value).

    `debezium`: records are change events; a value that is no envelope is skipped when it is one of
    Debezium's own (heartbeat, schema change, transaction), else taken as a flattened row. `auto`:
    the same, but a value is an envelope only when its schema says so (a name ending in
    `.Envelope`) or, schemaless, when it has `op`, `source` and `before` or `after`."""

    def __init__(self, mode: str, unavailable: str | None = UNAVAILABLE_VALUE) -> None:
        if mode not in ("debezium", "auto"):
            raise ValueError(f"unknown change-event format {mode!r}")
        self.strict = mode == "debezium"
        self._layouts: dict[Any, Any] = {}
        self._unavailable = Unavailable(unavailable) if unavailable else None

    def read(self, record: Decoded) -> tuple[Change, Decoded]:
        change, record, _ = self.read_event(record)
        return change, record

    def read_event(self, record: Decoded) -> tuple[Change, Decoded, Payload | None]:
        """As `read`, with the envelope itself (its `source`, `op`, `ts_ms`...) when the record was
        one; None for tombstones, flattened rows and records that are no change events."""
        value = record.value
        data = value.data
        if data is None:
            return Change.TOMBSTONE, record, None
        if data.__class__ is not dict:
            return Change.PLAIN, record, None
        shape = value.shape
        if value.schema_id is not None and isinstance(shape, tuple):
            layout = self._layouts.get(value.schema_id)
            if layout is None:
                layout = self._layout(shape, value.schema_id)
        else:
            layout = self._schemaless(data)
        if layout is _PLAIN:
            return Change.PLAIN, record, None
        if layout is _SKIP:
            return Change.SKIP, record, None
        if layout.__class__ is _Flattened:
            change, record = _flattened(record, data, layout)
            return change, self._available(change, record), None
        change, record = _change(record, data, layout)
        return change, self._available(change, record), value

    def _available(self, change: Change, record: Decoded) -> Decoded:
        """The row without the fields that hold the unavailable-value placeholder (left out, the
        columns keep what they hold, as Debezium's JDBC sink leaves them)."""
        unavailable = self._unavailable
        if unavailable is None or change is not Change.UPSERT:
            return record
        row = unavailable.without(record.value.data)
        if row is None:
            return record
        return Decoded(record.raw, record.key, record.value._replace(data=row))

    def _layout(self, shape: tuple[Column, ...], schema_id: Any) -> Any:
        if len(self._layouts) >= MAX_LAYOUTS:
            self._layouts.clear()
        layout = self._layouts[schema_id] = _classify(shape, schema_id, self.strict)
        return layout

    def _schemaless(self, data: dict[str, Any]) -> Any:
        if ("op" in data or self.strict) and "source" in data and ("after" in data or "before" in data):
            return None  # an envelope, typed from its values
        if "source" in data and any(f in data for f in SCHEMA_CHANGE_FIELDS):
            return _SKIP
        if self.strict and data.keys() == {"ts_ms"}:  # a heartbeat
            return _SKIP
        if self.strict and "source" in data and "message" in data and data.get("op") == "m":
            return _SKIP
        if self.strict and "status" in data and data.keys() >= TRANSACTION_FIELDS and data["status"] in TX_STATUS:
            return _SKIP  # a transaction marker: skipped by its schema's name, so also without one
        return _SCHEMALESS_FLATTENED if DELETED_FIELD in data else _PLAIN


def _classify(shape: tuple[Column, ...], schema_id: Any, strict: bool) -> Any:
    name = shape.name if isinstance(shape, Struct) else None
    names = {c.name for c in shape}
    if name and (
        name in SKIPPED_NAMES
        or name.endswith(SCHEMA_CHANGE_SUFFIX)
        or (name.startswith(MESSAGE_NAME[0]) and name.endswith(MESSAGE_NAME[1]))
    ):
        return _SKIP
    envelope = (name or "").endswith(".Envelope") or (
        ("op" in names or strict) and "source" in names and ("after" in names or "before" in names)
    )
    if envelope:
        return _Layout(shape, schema_id)
    if strict and "source" in names and any(f in names for f in SCHEMA_CHANGE_FIELDS):
        return _SKIP
    if strict and {"op", "source", "message"} <= names:  # a message event under another schema name
        return _SKIP
    return _Flattened(shape, schema_id) if DELETED_FIELD in names else _PLAIN


class Unavailable:
    """Debezium's placeholder for a value it could not read (an unchanged TOAST column), in the
    forms its PostgreSQL connector sends: the text, its UTF-8 bytes, a one-item array of either."""

    def __init__(self, placeholder: str) -> None:
        self.forms = (placeholder, placeholder.encode())
        self.arrays = ([placeholder], [placeholder.encode()])

    def without(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """`row` without its placeholder fields; None when it has none (the usual row: C-level
        membership tests, no Python step per field)."""
        values = row.values()
        if not any(form in values for form in (*self.forms, *self.arrays)):
            return None
        return {k: v for k, v in row.items() if v not in self.forms and v not in self.arrays}


def _change(record: Decoded, data: Mapping[str, Any], layout: _Layout | None) -> tuple[Change, Decoded]:
    op = data.get("op")
    if op in UPSERT_OPS:
        row = data.get("after")
        if row.__class__ is not dict:
            raise MappingError(f"Debezium {op!r} event without an `after` row (null or not a struct)")
        shape, schema_id = layout.after if layout is not None else (None, None)
        return Change.UPSERT, Decoded(record.raw, record.key, Payload(row, shape, schema_id))
    if op == "d":
        row = data.get("before")
        shape, schema_id = layout.before if layout is not None else (None, None)
        if row.__class__ is not dict:
            row, shape, schema_id = None, None, None  # the key must come from the record key
        return Change.DELETE, Decoded(record.raw, record.key, Payload(row, shape, schema_id))
    if op == "t":
        return Change.TRUNCATE, record
    if op is None or op == "m":  # no operation (a malformed or partial event), a logical-decoding message
        return Change.SKIP, record
    raise MappingError(f"Debezium event with unknown op {str(op)[:10]!r} (known: c, r, u, d, t, m)")


def _flattened(record: Decoded, data: dict[str, Any], layout: _Flattened) -> tuple[Change, Decoded]:
    """An ExtractNewRecordState row with its `__deleted` field: a delete when "true", else an
    upsert of the row without the field."""
    flag = data.get(DELETED_FIELD)
    if flag is True or (flag.__class__ is str and flag.lower() == "true"):
        return Change.DELETE, record
    row = {k: v for k, v in data.items() if k != DELETED_FIELD}
    return Change.UPSERT, Decoded(record.raw, record.key, Payload(row, layout.shape, layout.schema_id))


# ------------------------------------------------------------------------------ metadata columns, soft deletes

ENVELOPE_FIELDS = frozenset({"op", "ts_ms", "ts_us", "ts_ns"})  # bare add.fields names read from the envelope
BOOLEAN = ColumnType(Kind.BOOLEAN)


def source_block(envelope: Payload | None) -> dict[str, Any] | None:
    """The `source` struct of a change event (db, schema, table, lsn, ts_ms...); None without one."""
    if envelope is None:
        return None
    source = envelope.data.get("source")
    return source if source.__class__ is dict else None


class ChangeFields:
    """Debezium's `add.fields` and a soft-delete mode, applied to the row a change event carries.

    `fields` are Debezium's names: `op`, `ts_ms` (the envelope's), `source.<field>` and
    `transaction.<field>`, or a bare source field (`table`, `lsn`); each becomes the column
    `<prefix><name with . as _>` (`source.ts_ms` -> `__source_ts_ms`), nullable, typed from the
    envelope's schema. With `soft_delete`, a delete becomes an upsert of the `before` row's
    non-null fields (or of the key alone) with `<prefix>deleted` = true, and every upsert sets it
    to false. The new shapes are worked out once per envelope schema; per record, a dict copy and
    a few lookups."""

    def __init__(self, fields: tuple[str, ...], prefix: str = "__", soft_delete: bool = False) -> None:
        self.paths: list[tuple[str, str | None, str]] = []  # (column, block or None, field)
        for name in fields:
            head, sep, field = name.partition(".")
            block: str | None = head
            if not sep:
                block, field = (None if name in ENVELOPE_FIELDS else "source"), name
            self.paths.append((prefix + name.replace(".", "_"), block, field))
        self.deleted = prefix + "deleted" if soft_delete else None
        self._shapes: dict[Any, tuple[Shape, Any]] = {}

    def apply(self, change: Change, record: Decoded, envelope: Payload | None) -> tuple[Change, Decoded]:
        """The record's change and row with the metadata columns (UPSERT and DELETE; others unchanged)."""
        if change is not Change.UPSERT and change is not Change.DELETE:
            return change, record
        deleted = self.deleted
        if change is Change.DELETE and deleted is None:
            return change, record  # a hard delete needs the key only
        value = record.value
        data = value.data if value.data.__class__ is dict else {}
        # A soft delete writes what `before` knows. Under PostgreSQL's default REPLICA IDENTITY,
        # Debezium's `before` holds the key and nulls: written whole, they erased the row's last
        # values. A null field is left out (the column keeps what the last change wrote there,
        # which a full before-image's null repeats).
        row = {k: v for k, v in data.items() if v is not None} if change is Change.DELETE else dict(data)
        row.pop(DELETED_FIELD, None)  # ExtractNewRecordState's flag: a flattened delete in soft mode
        if envelope is not None:
            data = envelope.data
            for column, block, field in self.paths:
                part = data if block is None else data.get(block)
                row[column] = part.get(field) if part.__class__ is dict else None
        if deleted is not None:
            row[deleted] = change is Change.DELETE
        shape, schema_id = self._shape(change, value, envelope)
        return Change.UPSERT, Decoded(record.raw, record.key, Payload(row, shape, schema_id))

    def _shape(self, change: Change, value: Payload, envelope: Payload | None) -> tuple[Shape, Any]:
        if not isinstance(value.shape, tuple) or value.schema_id is None:
            return None, None  # typed from the values
        cache_key = (value.schema_id, change, envelope is None or envelope.schema_id)
        known = self._shapes.get(cache_key)
        if known is None:
            columns = tuple(c for c in value.shape if c.name != DELETED_FIELD)
            extra = self._columns(envelope) if envelope is not None else ()
            if self.deleted is not None:
                extra += (Column(self.deleted, BOOLEAN),)
            names = {c.name for c in extra}
            shape = tuple(c for c in columns if c.name not in names) + extra
            nested = value.shape.nested if isinstance(value.shape, Struct) else {}
            if len(self._shapes) >= MAX_LAYOUTS:
                self._shapes.clear()
            known = self._shapes[cache_key] = (
                Struct(shape, None, {k: v for k, v in nested.items() if k not in names}) if nested else shape,
                ("debezium.fields", cache_key),
            )
        return known

    def _columns(self, envelope: Payload) -> tuple[Column, ...]:
        shape = envelope.shape if isinstance(envelope.shape, tuple) else ()
        nested = shape.nested if isinstance(shape, Struct) else {}
        columns = []
        for column, block, field in self.paths:
            part = shape if block is None else nested.get(block)
            found = next((c for c in part or () if c.name == field), None) if isinstance(part, tuple) else None
            if found is None:
                where = field if block is None else f"{block}.{field}"
                raise MappingError(f"SINK_CDC_ADD_FIELDS: the change event's schema has no field {where!r}")
            columns.append(Column(column, found.type))
        return tuple(columns)
