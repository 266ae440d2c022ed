"""Decoded record -> Row: primary-key mode, field filters, table routing, tombstones.

Kafka Connect's JDBC sink vocabulary: `pk.mode` none / kafka / record_key / record_value /
record_header, `pk.fields`, `fields.whitelist` (include) / exclude, `delete.enabled`.

Before the mapping, a record may be read as a Debezium change event (`cdc.ChangeReader`: its row,
an upsert or a delete, or nothing) and go through the transform chain (`smt.Chain`: Connect's
SMTs, compiled once per schema). Without either, records take the mapping directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cdc import UNAVAILABLE_VALUE, Change, ChangeFields, ChangeReader, source_block
from .errors import MappingError
from .formats import Struct
from .identifiers import IdentifierRules, check_columns, check_schema, check_table, split_table_name_format
from .model import (
    UPSERT,
    CdcFormat,
    Column,
    ColumnType,
    Decoded,
    Kind,
    Op,
    Payload,
    PkMode,
    Row,
    SchemaId,
    Stage,
    TableSpec,
    make,
)
from .schema import infer_columns, infer_type

KAFKA_FIELDS = ("__connect_topic", "__connect_partition", "__connect_offset")
KAFKA_TYPES = (ColumnType(Kind.STRING, length=249), ColumnType(Kind.INT32), ColumnType(Kind.INT64))
DEFAULT_KEY_FIELD = "__connect_key"
DEFAULT_VALUE_FIELD = "__connect_value"
MAX_INFERRED_SHAPES = 10_000  # distinct schemaless record shapes remembered
# SINK_TABLE_NAME_FORMAT placeholders filled from a Debezium event's `source` block.
SOURCE_PLACEHOLDERS = ("source.db", "source.schema", "source.table")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def source_placeholders(table_name_format: str) -> tuple[str, ...]:
    """The `${source.*}` placeholders a table name format uses, in SOURCE_PLACEHOLDERS order."""
    return tuple(p for p in SOURCE_PLACEHOLDERS if "${" + p + "}" in table_name_format)


@dataclass(frozen=True, slots=True)
class MappingRules:
    table_name_format: str = "${topic}"
    pk_mode: PkMode = "none"
    pk_fields: tuple[str, ...] = ()
    fields_include: tuple[str, ...] = ()
    fields_exclude: tuple[str, ...] = ()
    delete_enabled: bool = False
    cdc_format: CdcFormat = "none"  # see cdc.ChangeReader
    transforms: Any = None  # an smt.Chain, or None
    cdc_add_fields: tuple[str, ...] = ()  # Debezium's add.fields: op, source.ts_ms, ... (cdc.ChangeFields)
    cdc_add_fields_prefix: str = "__"
    cdc_soft_delete: bool = False  # a delete becomes an upsert with <prefix>deleted = true
    cdc_unavailable_value: str = UNAVAILABLE_VALUE  # Debezium's placeholder: such fields are left out
    # SINK_UPSERT_VERSION_FIELD: a delete row carries its version (from the `before` row or the
    # event's add.fields), and a Debezium tombstone is skipped (the delete before it did the work).
    version_field: str | None = None
    # Whole non-object values / keys in one column of this name (SINK_VALUE_COLUMN_NAME /
    # SINK_KEY_COLUMN_NAME); None: a schemaless scalar or array is a record error.
    value_column_name: str | None = None
    key_column_name: str | None = None
    truncate_enabled: bool = False  # SINK_TRUNCATE_ENABLED: a Debezium `t` empties the table, else a skip


class RowMapper:
    """Turns decoded records into rows. Specs built from a registry/Connect schema are cached by
    schema id, so a schema costs its mapping once, not once per record."""

    def __init__(self, rules: MappingRules, identifiers: IdentifierRules | None = None) -> None:
        self.rules = rules
        self.identifiers = identifiers or IdentifierRules()
        self._specs: dict[tuple[str, Any, Any], TableSpec] = {}
        self._inferred: dict[tuple[Any, ...], TableSpec] = {}
        self._key_columns: dict[tuple[Any, ...], tuple[Column, ...]] = {}  # by key shape
        self._tables: dict[str, str] = {}  # topic -> its table, once checked
        # (schema, table) as the database compares them -> the table's qualified name
        self._table_keys: dict[tuple[str | None, str], str] = {}
        # SINK_TABLE_NAME_FORMAT's schema part (None: unqualified) and table part
        self._schema_format, self._name_format = split_table_name_format(rules.table_name_format)
        self._targets: dict[str, tuple[str, str]] = {}  # a qualified name -> (bare name, schema)
        self._plans: dict[tuple[Any, ...], _RowPlan] = {}  # by topic and schema ids, see _plan_key
        self._cdc = ChangeReader(rules.cdc_format, rules.cdc_unavailable_value) if rules.cdc_format != "none" else None
        self._chain = rules.transforms if rules.transforms else None
        self._change_fields = (
            ChangeFields(rules.cdc_add_fields, rules.cdc_add_fields_prefix, rules.cdc_soft_delete)
            if self._cdc is not None and (rules.cdc_add_fields or rules.cdc_soft_delete)
            else None
        )
        self._source_parts = source_placeholders(rules.table_name_format)
        self._source_tables: dict[tuple[Any, ...], str] = {}  # (topic, source values) -> table
        self._recent: dict[str, str] = {}  # topic -> its latest source-named table (for skip reports)
        self._table_namer = getattr(self._chain, "table_namer", None)  # naming transforms on tables
        self._plain = self._cdc is None and self._chain is None and not self._source_parts
        self._plans_by_value_schema = rules.pk_mode in ("none", "record_value")  # see _plan_key

    def table_name(self, topic: str) -> str:
        """The table of a topic; a MappingError when the database cannot hold that name, or would
        take it for the table of another topic (names compared as the database compares them).
        With a `${source.*}` format the table depends on the record: the topic's latest one."""
        table = self._tables.get(topic)
        if table is None:
            if self._source_parts:
                return self._recent.get(topic, topic)
            table = self._checked({"topic": topic}, f"topic {topic!r}")
            self._tables[topic] = table
        return table

    def source_table_name(self, topic: str, source: Mapping[str, Any] | None) -> str:
        """The table of a change event under a `${source.*}` format: filled from its `source`
        block (a MappingError naming the placeholder when the record has none, or no such value)."""
        parts = self._source_parts
        if source is None:
            raise MappingError(
                f"SINK_TABLE_NAME_FORMAT uses ${{{parts[0]}}} but the record is no Debezium change event "
                "with a `source` block"
            )
        values = tuple(source.get(p[7:]) for p in parts)
        cache_key = (topic, *values)
        table = self._source_tables.get(cache_key)
        if table is None:
            filled = {"topic": topic}
            for placeholder, value in zip(parts, values, strict=True):
                if value is None or value.__class__ is not str or not value:
                    raise MappingError(
                        f"SINK_TABLE_NAME_FORMAT uses ${{{placeholder}}} but the event's source block has no "
                        f"{placeholder[7:]!r} value"
                    )
                filled[placeholder] = value
            table = self._checked(filled, f"topic {topic!r}")
            if len(self._source_tables) >= MAX_INFERRED_SHAPES:
                self._source_tables.clear()
            self._source_tables[cache_key] = table
        self._recent[topic] = table
        return table

    def _checked(self, values: Mapping[str, str], origin: str) -> str:
        """The table SINK_TABLE_NAME_FORMAT names with these placeholder values, after the naming
        transforms (on the table, not its schema), each part checked against the database's rules;
        its qualified name (`TableSpec.qualify`), which `_target` splits again. Each value is put in
        whole: a dot it holds stays part of its name."""
        name = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self._name_format)
        schema = None
        if self._schema_format is not None:
            schema = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self._schema_format)
            check_schema(self.identifiers, schema)
        if self._table_namer is not None:
            name = self._table_namer(name)
        check_table(self.identifiers, name)
        table = TableSpec.qualify(schema, name)
        keys = self.identifiers.table_key
        other = self._table_keys.setdefault((None if schema is None else keys(schema), keys(name)), table)
        if other != table:
            raise MappingError(
                f"table name {table!r} ({origin}) is the same table as {other!r} for "
                f"{self.identifiers.database}, which compares table names without regard to case"
            )
        if schema is not None:
            self._targets[table] = (name, schema)
        return table

    def _spec_of(self, table: str, columns: tuple[Column, ...], primary_key: tuple[str, ...]) -> TableSpec:
        """A spec of a table this mapper named: a qualified one's schema travels apart from its name."""
        name, schema = self._target(table)
        return TableSpec(name, columns, primary_key, schema)

    def _target(self, table: str) -> tuple[str, str | None]:
        return self._targets.get(table) or (table, None)

    def to_row(self, record: Decoded) -> Row | None:
        """The row for a record; None for a record that is not to write or delete anything (a
        tombstone without SINK_DELETE_ENABLED, a filtered record, a change event that is no row)."""
        if self._plain:
            value = record.value
            topic = record.raw.coord.topic
            if self._plans_by_value_schema and value.data.__class__ is dict:
                if value.shape is None:
                    return self._schemaless_row(record, topic)
                # The usual record: its schema's plan, found by (topic, value schema id) as
                # _plan_key would make it for these pk modes, without working the key out.
                plan = self._plans.get((topic, value.schema_id))
                planned = plan.row(record) if plan is not None else None
                if planned is not None:
                    return planned
            return self._row(record, topic)
        change, envelope = Change.PLAIN, None
        if self._cdc is not None:
            change, record, envelope = self._cdc.read_event(record)
            if change is Change.SKIP or (change is Change.TRUNCATE and not self.rules.truncate_enabled):
                return None
            if change is Change.TOMBSTONE and (
                self.rules.cdc_soft_delete or self._source_parts or self.rules.version_field
            ):
                # Soft deletes never delete; a tombstone has no source block to name its table by,
                # nor a version (the delete event before it did the work).
                return None
            if self._change_fields is not None:
                change, record = self._change_fields.apply(change, record, envelope)
        raw = record.raw
        topic = raw.coord.topic
        if self._chain is not None:
            transformed = self._chain.apply(record, topic)
            if transformed is None:
                return None
            topic, record = transformed
        table = self.source_table_name(topic, source_block(envelope)) if self._source_parts else None
        if change is Change.TRUNCATE:
            name = table or self.table_name(topic)
            return Row(raw, name, Op.TRUNCATE, {}, {}, self._spec_of(name, (), ()), None, True)
        if change is Change.DELETE:
            row: Row | None = self._delete(record, table or self.table_name(topic), envelope)
        else:
            row = self._row(record, topic, table)
        if row is not None and row.raw is not raw:  # header transforms: the row keeps the record as read
            row = row._replace(raw=raw)
        return row

    def value_row_template(self, topic: str, schema_id: SchemaId) -> tuple[str, TableSpec, str, bool] | None:
        """For records of `topic` whose value has schema `schema_id`, when their plan needs nothing
        but the value (no transform or change events, pk_mode record_value with one key field, no
        field filter): (table, spec, key field, inferred). Such a record's row is `Row(raw, table,
        Op.UPSERT, {field: value[field]}, value, spec, schema_id, inferred)` when the value is a
        dict holding that field (not None), as `to_row` makes it; None while no plan is known."""
        if not (self._plain and self._plans_by_value_schema):
            return None
        plan = self._plans.get((topic, schema_id))
        if plan is None or plan.value_key is None:
            return None
        return plan.table, plan.spec, plan.value_key, plan.inferred

    def _row(self, record: Decoded, topic: str, table: str | None = None) -> Row | None:
        value = record.value
        plan_key = _plan_key(record, topic if table is None else table, self.rules.pk_mode)
        if plan_key is not None:
            plan = self._plans.get(plan_key)
            if plan is not None:
                row = plan.row(record)
                if row is not None:
                    return row
        if table is None:
            table = self.table_name(topic)
        if value.data is None:
            return self._delete(record, table) if self.rules.delete_enabled else None
        key_values, key_columns = self._key(record)
        values = self._value(value)
        if not values and not key_values:
            raise MappingError(f"the record has no fields: nothing to write into table {table!r}")
        inferred = value.shape is None or (record.key.shape is None and self.rules.pk_mode == "record_key")
        spec = self._spec(table, record, key_columns, values, inferred)
        if plan_key is not None and not inferred:
            self._remember_plan(plan_key, _RowPlan(table, spec, tuple(key_values), self.rules))
        values = {**values, **key_values}
        return Row(record.raw, table, Op.UPSERT, key_values, values, spec, value.schema_id, inferred)

    def _schemaless_row(self, record: Decoded, topic: str) -> Row | None:
        """A schemaless object's row by the plan of its shape: its fields, in order, and their
        values' classes fix its spec and key columns (as `_inferred_spec` and `_fields` cache
        them), so the full mapping runs once per shape, not once per record."""
        data: dict[str, Any] = record.value.data
        shape = (topic, tuple(data), tuple(map(type, data.values())))
        plan = self._plans.get(shape)
        if plan is not None:
            planned = plan.row(record)
            if planned is not None:
                return planned
        row = self._row(record, topic)
        if row is not None and row.op is Op.UPSERT and row.inferred:
            self._remember_plan(shape, _RowPlan(row.table, row.spec, tuple(row.key), self.rules, inferred=True))
        return row

    def _remember_plan(self, plan_key: tuple[Any, ...], plan: _RowPlan) -> None:
        if len(self._plans) >= MAX_INFERRED_SHAPES:
            self._plans.clear()
        self._plans[plan_key] = plan

    # -------------------------------------------------------------- key

    def _delete(self, record: Decoded, table: str, envelope: Payload | None = None) -> Row:
        key_values, key_columns = self._key(record)
        spec = self._spec_of(table, key_columns, tuple(key_values))
        values = key_values
        version = self.rules.version_field
        if version is not None:
            found = self._delete_version(record, envelope, version)
            if found is not None:
                values = {**key_values, version: found}
        return Row(record.raw, table, Op.DELETE, key_values, values, spec, None, True)

    def _delete_version(self, record: Decoded, envelope: Payload | None, version: str) -> Any:
        """A delete's version: the field of the row it carries (Debezium's `before`), else the
        add.fields column of that name read from the event; None without either."""
        data = record.value.data
        if data.__class__ is dict and data.get(version) is not None:
            return data[version]
        if envelope is not None and self._change_fields is not None:
            for column, block, field in self._change_fields.paths:
                if column == version:
                    part = envelope.data if block is None else envelope.data.get(block)
                    return part.get(field) if part.__class__ is dict else None
        return None

    def _key(self, record: Decoded) -> tuple[dict[str, Any], tuple[Column, ...]]:
        mode = self.rules.pk_mode
        if mode == "none":
            return {}, ()
        if mode == "kafka":
            return self._kafka_key(record)
        if mode == "record_key":
            return self._fields(record.key, self.rules.pk_fields, "record key", DEFAULT_KEY_FIELD)
        if mode == "record_value":
            return self._fields(record.value, self.rules.pk_fields, "record value", DEFAULT_VALUE_FIELD)
        return self._header_key(record)

    def _kafka_key(self, record: Decoded) -> tuple[dict[str, Any], tuple[Column, ...]]:
        names = self.rules.pk_fields or KAFKA_FIELDS
        coord = record.coord
        values = dict(zip(names, (coord.topic, coord.partition, coord.offset), strict=True))
        return values, tuple(Column(n, t, nullable=False) for n, t in zip(names, KAFKA_TYPES, strict=True))

    def _header_key(self, record: Decoded) -> tuple[dict[str, Any], tuple[Column, ...]]:
        headers = dict(record.raw.headers)
        values: dict[str, Any] = {}
        for name in self.rules.pk_fields:
            raw = headers.get(name)
            if raw is None:
                raise MappingError(f"primary-key header {name!r} is missing or null", stage=Stage.TRANSFORMATION)
            values[name] = raw.decode("utf-8", "replace")
        return values, tuple(Column(n, ColumnType(Kind.STRING, length=255), nullable=False) for n in values)

    def _fields(
        self, payload: Payload, wanted: tuple[str, ...], what: str, default_name: str
    ) -> tuple[dict[str, Any], tuple[Column, ...]]:
        """Primary-key fields from a struct, or the single primitive as one key column."""
        data = payload.data
        if data is None:
            raise MappingError(f"{what} is null but SINK_PK_MODE needs it for the primary key")
        if not isinstance(data, Mapping):
            if len(wanted) > 1:  # one value cannot fill several key columns: never silently use the first
                raise MappingError(
                    f"{what} is a single value, not a struct, but SINK_PK_FIELDS names {len(wanted)} fields "
                    f"({', '.join(wanted)}); give one name (the key column) or send a struct {what}"
                )
            name = wanted[0] if wanted else self._whole_column(payload, what, default_name)
            signature: tuple[Any, ...] = (what, name, payload.schema_id, data.__class__)
            columns = self._key_columns.get(signature)
            if columns is None:
                column_type = payload.shape if isinstance(payload.shape, ColumnType) else infer_type(data)
                columns = self._remember_key(signature, (Column(name, _key_type(column_type), nullable=False),))
            return {name: data}, columns
        names = wanted or tuple(data)
        values = {n: data.get(n) for n in names}
        if None in values.values():
            missing = ", ".join(repr(n) for n, v in values.items() if v is None)
            raise MappingError(f"{what} has no value for primary-key field(s) {missing}")
        # The key columns depend on the schema (or, schemaless, on the values' classes) only: built
        # once per key shape, not once per record.
        signature = (what, names, payload.schema_id, *(v.__class__ for v in values.values()))
        columns = self._key_columns.get(signature)
        if columns is None:
            shape = {c.name: c for c in payload.shape} if isinstance(payload.shape, tuple) else {}
            columns = self._remember_key(
                signature,
                tuple(
                    Column(n, _key_type(shape[n].type if n in shape else infer_type(values[n])), nullable=False)
                    for n in names
                ),
            )
        return values, columns

    def _remember_key(self, signature: tuple[Any, ...], columns: tuple[Column, ...]) -> tuple[Column, ...]:
        if len(self._key_columns) >= MAX_INFERRED_SHAPES:
            self._key_columns.clear()
        self._key_columns[signature] = columns
        return columns

    # -------------------------------------------------------------- value

    def _value(self, payload: Payload) -> dict[str, Any]:
        """The value's fields (filtered), or a primitive value as its one field."""
        data = payload.data
        if not isinstance(data, Mapping):
            return {self._whole_column(payload, "record value", DEFAULT_VALUE_FIELD): data}
        return self._filtered(data)

    def _whole_column(self, payload: Payload, what: str, default_name: str) -> str:
        """The column a whole non-object key or value goes to: SINK_KEY_COLUMN_NAME /
        SINK_VALUE_COLUMN_NAME when set; a primitive with a schema (string format, a registry or
        Connect primitive) or a value a transform chain made (ExtractField, Cast of the whole value)
        keeps Connect's `__connect_key` / `__connect_value`; a schemaless scalar or array as read
        is no row of an object table: a record error, never a column added to the table."""
        value = what == "record value"
        chosen = self.rules.value_column_name if value else self.rules.key_column_name
        if chosen is not None:
            return chosen
        if payload.shape is not None or self._chain is not None:  # a transform chain made it whole on purpose
            return default_name
        kind = "an array" if isinstance(payload.data, list) else f"a single {type(payload.data).__name__} value"
        variable = "SINK_VALUE_COLUMN_NAME" if value else "SINK_KEY_COLUMN_NAME (or one name in SINK_PK_FIELDS)"
        raise MappingError(
            f"the {what} is {kind}, not an object with fields, so it fits no column of the table; "
            f"set {variable} to write whole values into one column",
            stage=Stage.VALUE_CONVERTER if value else Stage.KEY_CONVERTER,
        )

    def _value_columns(self, payload: Payload, values: Mapping[str, Any]) -> tuple[Column, ...]:
        """The value's columns from its shape: a struct's (those kept by the filters) or the primitive's."""
        if isinstance(payload.data, Mapping) and isinstance(payload.shape, tuple):
            return tuple(c for c in payload.shape if c.name in values)
        column_type = payload.shape if isinstance(payload.shape, ColumnType) else infer_type(payload.data)
        name = next(iter(values)) if len(values) == 1 else DEFAULT_VALUE_FIELD
        return (Column(name, column_type or ColumnType(Kind.STRING)),)

    def _filtered(self, data: Mapping[str, Any]) -> dict[str, Any]:
        include, exclude = self.rules.fields_include, self.rules.fields_exclude
        if not include and not exclude:
            return dict(data)
        return {k: v for k, v in data.items() if (not include or k in include) and k not in exclude}

    # -------------------------------------------------------------- spec

    def _spec(
        self,
        table: str,
        record: Decoded,
        key_columns: tuple[Column, ...],
        values: dict[str, Any],
        inferred: bool,
    ) -> TableSpec:
        """The spec of a record's row. A struct without a struct shape is typed from its values;
        otherwise the spec comes from the shapes, cached by schema ids unless a part is inferred."""
        value = record.value
        if isinstance(value.data, Mapping) and not isinstance(value.shape, tuple):
            return self._inferred_spec(table, key_columns, values)
        if inferred:
            return self._build(table, key_columns, self._value_columns(value, values))
        cache_key = (table, record.key.schema_id, value.schema_id)
        spec = self._specs.get(cache_key)
        if spec is None:
            spec = self._specs[cache_key] = self._build(table, key_columns, self._value_columns(value, values))
        return spec

    def _inferred_spec(self, table: str, key_columns: tuple[Column, ...], values: Mapping[str, Any]) -> TableSpec:
        """Schemaless records of one shape (same fields, same value classes) share one spec, so
        inference costs a signature per record instead of new Column objects."""
        signature = (table, key_columns, tuple((k, v.__class__) for k, v in values.items() if v is not None))
        spec = self._inferred.get(signature)
        if spec is None:
            if len(self._inferred) >= MAX_INFERRED_SHAPES:
                self._inferred.clear()
            spec = self._inferred[signature] = self._build(table, key_columns, infer_columns(values))
        return spec

    def _build(self, table: str, key_columns: tuple[Column, ...], value_columns: tuple[Column, ...]) -> TableSpec:
        """A new spec, its names checked against the database's rules (once per spec: specs are cached)."""
        spec = _build(*self._target(table), key_columns, value_columns)
        check_columns(self.identifiers, table, spec.column_names)
        return spec


PLANNED_PK_MODES = frozenset({"none", "record_value", "record_key"})


def _plan_key(record: Decoded, topic: str, pk_mode: str) -> tuple[Any, ...] | None:
    """What fixes a record's table, spec and key columns, when its schema does: the topic and the
    schema ids of a struct value with a schema (and of the key, when the key is the primary key).
    None for records whose row depends on their values (schemaless, primitives, tombstones)."""
    value = record.value
    shape_class = value.shape.__class__
    if value.data.__class__ is not dict or (shape_class is not tuple and shape_class is not Struct):
        return None
    if value.schema_id is None:
        return None
    if pk_mode == "record_value" or pk_mode == "none":
        return (topic, value.schema_id)
    if pk_mode == "record_key":
        key = record.key
        if key.data is None:
            return None
        if key.schema_id is not None:  # the key's schema fixes its shape
            return (topic, value.schema_id, key.schema_id, key.data.__class__ is dict)
        if key.shape.__class__ is ColumnType:  # a primitive without a registry (string keys)
            return (topic, value.schema_id, None, key.shape, key.data.__class__ is dict)
    return None


class _RowPlan:
    """A schema's row, worked out once by the full mapping: later records of the schema only have
    their values picked. `row` returns None when a record does not fit (a primary-key value is
    missing), so the full mapping raises its error."""

    __slots__ = ("exclude", "include", "inferred", "key_names", "pk_mode", "spec", "table", "value_key")

    def __init__(
        self, table: str, spec: TableSpec, key_names: tuple[str, ...], rules: MappingRules, inferred: bool = False
    ) -> None:
        self.table, self.spec, self.key_names, self.pk_mode = table, spec, key_names, rules.pk_mode
        self.inferred = inferred  # a schemaless shape's plan: its rows carry an inferred spec
        self.include = frozenset(rules.fields_include) if rules.fields_include else None
        self.exclude = frozenset(rules.fields_exclude) if rules.fields_exclude else None
        # The usual plan: one key field, picked from the record's own value, no field filtered.
        usual = rules.pk_mode == "record_value" and len(key_names) == 1 and not (self.include or self.exclude)
        self.value_key = key_names[0] if usual else None

    def row(self, record: Decoded) -> Row | None:
        data: dict[str, Any] = record.value.data
        name = self.value_key
        if name is not None and data.__class__ is dict:  # the usual plan: none of the cases below
            value = data.get(name)
            if value is None:
                return None
            key_values, values = {name: value}, data
        else:
            picked = self._picked(record, data)
            if picked is None:
                return None
            key_values, values = picked
        raw, schema_id = record.raw, record.value.schema_id
        return make(Row, (raw, self.table, UPSERT, key_values, values, self.spec, schema_id, self.inferred, None))

    def _picked(self, record: Decoded, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(key values, values) of a record under this plan; None when a key value is missing."""
        # Unfiltered, the decoder's own dict: made for this record and never changed after.
        values = data if self.include is None and self.exclude is None else self._filtered(data)
        if not values and not self.key_names:
            return None
        if self.pk_mode == "none":
            return {}, values
        source = data if self.pk_mode == "record_value" else record.key.data
        if source.__class__ is not dict:  # a primitive key: one key column
            key_values = {self.key_names[0]: source}
        elif len(self.key_names) == 1:  # one field, no comprehension
            name = self.key_names[0]
            value = source.get(name)
            if value is None:
                return None
            key_values = {name: value}
        else:
            key_values = {name: source.get(name) for name in self.key_names}
            if None in key_values.values():
                return None
        if self.pk_mode == "record_key" or values is not data:
            values = {**values, **key_values}
        return key_values, values

    def _filtered(self, data: dict[str, Any]) -> dict[str, Any]:
        include, exclude = self.include, self.exclude
        return {
            k: v for k, v in data.items() if (include is None or k in include) and (exclude is None or k not in exclude)
        }


def _key_type(column_type: ColumnType | None) -> ColumnType:
    # Primary keys must be bounded on MySQL/MariaDB; 255 characters keeps an index possible everywhere.
    if column_type is None or (column_type.kind is Kind.STRING and column_type.length is None):
        return ColumnType(Kind.STRING, length=255)
    return column_type


def _build(
    table: str, schema: str | None, key_columns: tuple[Column, ...], value_columns: tuple[Column, ...]
) -> TableSpec:
    key_names = {c.name for c in key_columns}
    columns = key_columns + tuple(c for c in value_columns if c.name not in key_names)
    return TableSpec(table, columns, tuple(c.name for c in key_columns), schema)
