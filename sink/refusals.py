"""Which records need a table change the sink (or the database) refuses, and the batch without them.

A batch the table cannot take as it is does not stop the sink: each record shape is judged alone
(a schemaless batch merges several), first by the sink's own rules without DDL, then by the
database, and only the records of refused shapes become `SchemaRefused` record errors.
"""

from __future__ import annotations

from typing import Protocol

from .errors import SchemaEvolutionRefused, SchemaRefused
from .identifiers import IdentifierRules
from .model import Batch, Op, Outcome, Row, Stage, Status, TableSpec
from .ports import Store
from .schema import Evolution, merge_inferred


class _Rules(Protocol):
    @property
    def identifiers(self) -> IdentifierRules: ...


class Writer(Protocol):
    """What the refusals need of `pipeline.Writer` (which calls them): its store, its naming rules,
    and its judgement of a table change, tried without writing anything."""

    @property
    def store(self) -> Store: ...

    @property
    def rules(self) -> _Rules: ...

    def ensure_table(self, wanted: TableSpec, inferred: bool = False) -> TableSpec: ...

    def evolution(self, existing: TableSpec, wanted: TableSpec, inferred: bool) -> Evolution: ...


def refusals(writer: Writer, batch: Batch, refusal: SchemaEvolutionRefused) -> dict[int, SchemaRefused]:
    """Which records need a refused change, each with its reason. A schemaless batch merges
    several record shapes: each is judged alone, first by the sink's own rules (no DDL), then by
    the database (each shape's own change is applied, in record order; only on failure). When
    no shape is refused alone but the batch's change was (evolution is off), every record that
    needs a change is; when nothing needs a change any more, none is."""
    shapes: dict[int, list[Row]] = {}
    for row in batch.rows:
        if row.op is not Op.DELETE:
            shapes.setdefault(id(row.spec), []).append(row)
    existing = writer.store.table(batch.spec.name, batch.spec.schema)
    verdicts = {shape: _verdict(writer, existing, rows[0].spec, batch.inferred) for shape, rows in shapes.items()}
    if not any(verdicts.values()):
        verdicts = _name_clashes(writer, existing, shapes)
    if not any(verdicts.values()) and len(shapes) > 1:
        verdicts = {shape: _tried(writer, rows[0].spec, batch.inferred) for shape, rows in shapes.items()}
        existing = writer.store.table(batch.spec.name, batch.spec.schema)
    if not any(verdicts.values()):
        verdicts = {
            shape: refusal if _needs_change(writer, existing, rows[0].spec, batch.inferred) else None
            for shape, rows in shapes.items()
        }
    table = writer.store.table(batch.spec.name, batch.spec.schema)
    errors = {shape: _record_error(writer, v, table) for shape, v in verdicts.items() if v is not None}
    return {id(row): errors[shape] for shape, rows in shapes.items() if shape in errors for row in rows}


def _name_clashes(
    writer: Writer, existing: TableSpec | None, shapes: dict[int, list[Row]]
) -> dict[int, SchemaEvolutionRefused | None]:
    """Shapes, in record order, with a field that an earlier shape's field (or a column) would
    be under the database's name comparison: `Name` in one record, `name` in another."""
    identifiers = writer.rules.identifiers
    seen = identifiers.column_keys(existing.column_names if existing else ())
    verdicts: dict[int, SchemaEvolutionRefused | None] = {}
    for shape, rows in shapes.items():
        spec = rows[0].spec
        clash = identifiers.column_clash(spec.column_names, seen)
        verdicts[shape] = (
            None
            if clash is None
            else SchemaEvolutionRefused(
                f"table {spec.qualified!r}: field {clash[0]!r} would be the same column as {clash[1]!r} for "
                f"{identifiers.database}, which compares column names without regard to case"
            )
        )
        if clash is None:
            seen.update(identifiers.column_keys(spec.column_names))
    return verdicts


def _tried(writer: Writer, wanted: TableSpec, inferred: bool) -> SchemaEvolutionRefused | None:
    """Make the table fit one record shape; the refusal if the sink or the database will not."""
    try:
        writer.ensure_table(wanted, inferred)
    except SchemaEvolutionRefused as refusal:
        return refusal
    return None


def _verdict(
    writer: Writer, existing: TableSpec | None, wanted: TableSpec, inferred: bool
) -> SchemaEvolutionRefused | None:
    """The sink's own refusal of the change `wanted` needs (no DDL)."""
    if existing is None:
        return None
    try:
        writer.evolution(existing, wanted, inferred)
    except SchemaEvolutionRefused as refusal:
        return refusal
    return None


def _needs_change(writer: Writer, existing: TableSpec | None, wanted: TableSpec, inferred: bool) -> bool:
    if existing is None:
        return True
    try:
        return bool(writer.evolution(existing, wanted, inferred))
    except SchemaEvolutionRefused:
        return True


def refused_anyway(writer: Writer, batch: Batch, refusal: SchemaEvolutionRefused) -> dict[int, SchemaRefused]:
    """For a batch the table refused twice though no record's shape needs the change (`refusals`
    judges writes only): the deletes, whose key asked for it (one no row of the key column can
    have, 2.5 for a bigint, or one naming a column the table lacks; `Writer._despite_deletes`
    writes the others), each with the refusal's reason; every record when there is no delete.
    Without it the writer would try the batch again and again."""
    error = _record_error(writer, refusal, writer.store.table(batch.spec.name, batch.spec.schema))
    deletes = [row for row in batch.rows if row.op is Op.DELETE]
    return {id(row): error for row in deletes or batch.rows}


def _record_error(writer: Writer, refusal: SchemaEvolutionRefused, existing: TableSpec | None) -> SchemaRefused:
    message = str(refusal)
    fix = refusal.fix
    if isinstance(fix, Evolution) and existing is not None:
        message += f"; to take these records, run: {writer.store.ddl_text(existing, existing, fix)}"
    elif isinstance(fix, TableSpec):
        message += f"; to take these records, run: {writer.store.ddl_text(None, fix, None)}"
    return SchemaRefused(message)


def subbatch(batch: Batch, rows: list[Row]) -> Batch:
    """The batch with only `rows`; a schemaless batch's spec is merged again from theirs."""
    writes = [row for row in rows if row.op is Op.UPSERT]
    if not writes:
        return Batch(batch.table, rows[0].spec, tuple(rows), True)
    if not batch.inferred:
        return Batch(batch.table, batch.spec, tuple(rows), False)
    spec = writes[0].spec
    for row in writes[1:]:
        if row.spec is not spec:
            spec = merge_inferred(spec, row.spec.columns)
    return Batch(batch.table, spec, tuple(rows), True)


def refused_outcome(row: Row, error: SchemaRefused) -> Outcome:
    return Outcome(row.raw, Status.FAILED, row.table, row.op.value, dict(row.key), Stage.TASK_PUT, error)
