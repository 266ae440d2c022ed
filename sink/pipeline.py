"""The two halves of the work on records: `Preparer` (bytes -> Row) and `Writer` (Batch -> Outcomes).

The writer owns table DDL (create, evolve; `refusals.py` sorts out the records a refused change
concerns) and bad-row isolation: a batch the database rejects is searched, each part under its own
savepoint, so the good rows land and only the rejected rows become record errors, each with the
database's own reason. The search finds the *first* rejected row of a rejected chunk (binary search
over prefixes: a prefix the database takes is kept under its released savepoint), then goes on in
chunks sized by the rejections seen (see `_write_isolated`), in as many transactions as the
savepoint budget asks (`transactions.BatchTransactions`), writing the good rows in order, so
`stop_at_rejection` (errors.tolerance=none) can stop right at the first bad row with nothing after
it written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, NoReturn, TypeGuard

from .batch import Unit, WriteUnit, segments, unit_rows
from .errors import (
    DatabaseUnavailable,
    DecodeError,
    MappingError,
    RecordRejected,
    SchemaEvolutionRefused,
    SinkError,
)
from .formats import MAGIC_BYTE, schema_id_headers
from .identifiers import IdentifierRules
from .keys import key_equality, whole_numbers_as_ints
from .model import (
    UPSERT,
    Batch,
    Decoded,
    InsertMode,
    Op,
    Outcome,
    Payload,
    RawRecord,
    Row,
    SchemaId,
    Settled,
    Stage,
    Status,
    TableSpec,
    make,
)
from .plan import delete_slot, write_plan
from .ports import BodyReader, ChecksKeys, CommitHook, Decoder, OnCommit, ReadsBodies, Store
from .refusals import refusals, refused_anyway, refused_outcome, subbatch
from .schema import Evolution, evolve
from .transactions import BatchTransactions
from .transforms import RowMapper

NULL = Payload(None)
NO_HEADERS = (None, None)  # schema_id_headers of a record whose headers carry no framing
MAX_LANES = 1024  # (topic, value schema) pairs with a lane, or known to have none; then forgotten


class Lane(NamedTuple):
    """What makes the row of a record of one topic and value schema, worked out once
    (`Preparer._learn`): the body reader, then the row's table, spec, key field, schema id, whether
    the spec is inferred, the value's field names when the schema fixes them (`Row.fields`), and
    the topic and framing of the records it takes."""

    read: BodyReader
    table: str
    spec: TableSpec
    key_field: str
    schema_id: SchemaId
    inferred: bool
    fields: tuple[str, ...] | None
    topic: str
    frame: bytes  # the values' first five bytes: magic byte 0 and the schema id


class Preparer:
    """Decode and map one raw record. Raises a RecordError (with its Connect stage) for bad input.

    The usual record (no schema id in its headers, a value framed with magic byte 0, of a schema
    whose plan needs nothing but the value: see `RowMapper.value_row_template`) takes a *lane*,
    worked out from the first record of its topic and schema: its key checked, its body read, its
    row made, in one call and without the intermediate Payloads (a fifth of the CPU of preparing a
    record, measured in process). A record the lane cannot take as the full path would (a key or
    body that fails, a key field that is null) goes the full path, which reports it. The worker
    hands a lane a poll's records a run at a time (`lane`, then `lane_rows`)."""

    def __init__(self, key_decoder: Decoder, value_decoder: Decoder, mapper: RowMapper) -> None:
        self.key_decoder = key_decoder
        self.value_decoder = value_decoder
        self.mapper = mapper
        self._bodies = value_decoder if isinstance(value_decoder, ReadsBodies) else None
        self._check_key = key_decoder.validator() if isinstance(key_decoder, ChecksKeys) else key_decoder.decode
        self._lanes: dict[tuple[str, bytes], Lane | None] = {}  # by topic and frame (`Lane.frame`)

    def prepare(self, raw: RawRecord) -> Row | Outcome:
        """Any exception while decoding or mapping one record is that record's error, at its
        Connect stage, whatever its type (a library's RecursionError, a malformed schema's
        TypeError): one record can never stop the sink. Outages (RetriableError) and operator
        problems (FatalError) pass through."""
        lane = self.lane(raw)
        if lane is not None:
            rows, _size = self.lane_rows(lane, (raw,))
            if rows:
                return rows[0]
        return self._prepare(raw)

    def lane(self, raw: RawRecord) -> Lane | None:
        """The lane of `raw`'s topic and value schema, when the record may take one: no framing
        header, a value framed with magic byte 0 (whether the lane takes it: `lane_rows`)."""
        data = raw.value
        if not self._lanes or data is None:
            return None
        if raw.headers and schema_id_headers(raw.headers) != NO_HEADERS:
            return None
        return self._lanes.get((raw.coord.topic, data[:5]))  # (keys hold magic byte 0: `_learn`)

    def lane_rows(self, lane: Lane, raws: Iterable[RawRecord], budget: float = math.inf) -> tuple[list[Row], int]:
        """What `prepare` makes of each of the leading `raws` that `lane` takes: their Rows, up to
        the first record of another lane, the first the lane cannot take (the full path says what
        is wrong with it), or the first whose key and value bytes, with those before it, would
        reach `budget`; and the bytes of the records taken. The usual poll's records are prepared here
        a run at a time (`Worker._take_run`)."""
        read, table, spec, name, schema_id, inferred, fields, topic, frame = lane
        check_key = self._check_key
        rows: list[Row] = []
        append = rows.append
        size = 0
        for raw in raws:
            data, key = raw.value, raw.key
            if data is None or not data.startswith(frame) or raw.coord.topic != topic:
                break
            if raw.headers and schema_id_headers(raw.headers) != NO_HEADERS:
                break
            record_size = len(data) + (0 if key is None else len(key))
            if size + record_size >= budget:
                break
            try:
                if key is not None:
                    check_key(key)
                values = read(data)
            except Exception:  # the full path decodes it again, and says what is wrong
                values = None
            if values.__class__ is not dict or (value := values.get(name)) is None:
                break
            size += record_size
            append(make(Row, (raw, table, UPSERT, {name: value}, values, spec, schema_id, inferred, fields)))
        return rows, size

    def _prepare(self, raw: RawRecord) -> Row | Outcome:
        key_header = value_header = None
        if raw.headers:  # newer Confluent serializers may carry the schema id in a header
            key_header, value_header = schema_id_headers(raw.headers)
        # Decoded inline (a call less per payload: this runs once per record).
        try:
            key = NULL if raw.key is None else self.key_decoder.decode(raw.key, key_header)
        except Exception as exc:
            _raise_decode_error(exc, Stage.KEY_CONVERTER)
        try:
            value = NULL if raw.value is None else self.value_decoder.decode(raw.value, value_header)
        except Exception as exc:
            _raise_decode_error(exc, Stage.VALUE_CONVERTER)
        decoded = make(Decoded, (raw, key, value))
        try:
            row = self.mapper.to_row(decoded)
            if row is None:
                table = self.mapper.table_name(raw.coord.topic)
                return Outcome(raw, Status.SKIPPED, table, "skip", stage=Stage.TRANSFORMATION)
        except (SinkError, MemoryError):
            raise
        except Exception as exc:
            raise MappingError("the record cannot become a row", detail=_describe_exception(exc)) from exc
        if self._bodies is not None and isinstance(value.schema_id, int) and key_header is value_header is None:
            self._learn(raw, value.schema_id)  # (an int: a schema id framed with magic byte 0)
        return row

    def _learn(self, raw: RawRecord, schema_id: int) -> None:
        """Work out the lane of the record's topic and value schema, once (None: it has none)."""
        data = raw.value
        assert data is not None and self._bodies is not None
        where = (raw.coord.topic, data[:5])
        if where in self._lanes or data[:1] != bytes((MAGIC_BYTE,)):
            return
        if len(self._lanes) >= MAX_LANES:
            self._lanes.clear()
        template = self.mapper.value_row_template(raw.coord.topic, schema_id)
        read = self._bodies.body_reader(schema_id) if template is not None else None
        if template is None or read is None:
            self._lanes[where] = None
            return
        table, spec, key_field, inferred = template
        fields = self._bodies.body_fields(schema_id)
        self._lanes[where] = Lane(read, table, spec, key_field, schema_id, inferred, fields, *where)


def _raise_decode_error(exc: Exception, stage: Stage) -> NoReturn:
    """A decoder's exception as the record error of its stage; outages and operator problems
    (other SinkErrors) pass through."""
    if isinstance(exc, DecodeError):
        exc.stage = stage
        raise exc
    if isinstance(exc, SinkError | MemoryError):
        raise exc
    what = "key" if stage is Stage.KEY_CONVERTER else "value"
    raise DecodeError(f"the {what} cannot be decoded", stage=stage, detail=_describe_exception(exc)) from exc


def _describe_exception(exc: BaseException) -> str:
    """A library's exception for the `detail` of a record error (which may quote values)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# ------------------------------------------------------------------------------ the store port


@dataclass(frozen=True, slots=True)
class WriteRules:
    insert_mode: InsertMode = "insert"
    auto_create: bool = False
    auto_evolve: bool = False
    stop_at_rejection: bool = False  # errors.tolerance=none: write nothing after the first rejected row
    identifiers: IdentifierRules = field(default_factory=IdentifierRules)
    max_columns: int | None = None  # per table, checked before any DDL
    # Savepoints one transaction may take while isolating rejected rows. PostgreSQL keeps a lock per
    # subtransaction until the end of the transaction (a shared, server-wide table) and slows every
    # session past 64 of them, so isolation commits what it settled and goes on in a new transaction.
    max_savepoints: int = 50
    # SINK_UPSERT_VERSION_FIELD: a column of the rows; an upsert (or delete) changes a stored row
    # only when its version is newer (a delete: no older); stale records are reported `skip`.
    version_field: str | None = None
    # The database may find two different strings one key (MariaDB/MySQL: trailing spaces, and the
    # case-insensitive collations of tables it did not create): such keys are kept apart (`keys`).
    loose_string_keys: bool = False


Checkpoint = Callable[[], None]  # called before each statement; raises to abandon the batch


class Writer:
    def __init__(self, store: Store, rules: WriteRules) -> None:
        self.store = store
        self.rules = rules
        self.max_savepoints = rules.max_savepoints
        self.stale_records = 0  # records not written because the table (or the batch) held a newer version

    def write(
        self,
        batch: Batch,
        on_commit: OnCommit | None = None,
        checkpoint: Checkpoint | None = None,
        hook: CommitHook | None = None,
    ) -> Settled:
        """Write one batch, normally in one transaction; return the outcomes of what was settled.

        Isolating rejected rows may take several transactions: `on_commit` hears the outcomes of
        each as it commits (what was committed stays so, whatever happens to the rest). A record the
        table cannot take without a change the sink refuses is a SchemaRefused record error. When
        `checkpoint()` raises (a shutdown deadline), the open transaction is rolled back and the
        rest of the batch left unwritten. `hook` (exactly-once) writes the positions in each
        transaction before it commits."""
        outcomes = Settled()

        def committed(part: Settled) -> None:
            outcomes.merge(part)
            if on_commit is not None:
                on_commit(part)

        self._write(batch, committed, checkpoint or _carry_on, hook)
        return outcomes

    def _write(
        self,
        batch: Batch,
        committed: OnCommit,
        checkpoint: Checkpoint,
        hook: CommitHook | None = None,
        refused_before: bool = False,
    ) -> None:
        if batch.rows[0].op is Op.TRUNCATE:  # the Batcher gives a truncate a batch of its own
            self._truncate(batch, committed, hook)
            return
        if (
            all(row.op is Op.DELETE for row in batch.rows)
            and self.store.table(batch.spec.name, batch.spec.schema) is None
        ):
            # Nothing to delete from a table that does not exist; creating it from the key alone
            # would shape it without the columns of the records that follow.
            committed(Settled([Outcome(r.raw, Status.DELETED, batch.table, "delete", r.key) for r in batch.rows]))
            return
        try:
            spec = self.ensure_table(batch.spec, inferred=batch.inferred)
        except SchemaEvolutionRefused as refusal:
            despite = self._despite_deletes(batch)
            if despite is None:
                self._write_around(batch, refusal, committed, checkpoint, hook, refused_before)
                return
            spec, batch = despite
        insert_mode = self.rules.insert_mode == "insert"
        version = self.rules.version_field
        if version is not None and spec.column(version) is None:
            missing = RecordRejected(
                f"SINK_UPSERT_VERSION_FIELD {version!r} is no column of table {spec.qualified!r}: the records "
                "carry no such field, so their version cannot be compared",
                code="version field missing",
                column=version,
            )
            committed(Settled([o for row in batch.rows for o in _rejected_row(row, missing)]))
            return
        keys = key_equality(spec, self.rules.loose_string_keys)
        parts = list(segments(batch.rows, insert_mode, version=version, keys=keys))
        with BatchTransactions(self.store, self.max_savepoints, committed, hook) as txs:
            if self.rules.stop_at_rejection and sum(map(len, parts)) < len(batch.rows):
                # Some key comes more than once, so a unit holds rows from both sides of a row that
                # may be rejected: try the batch whole; if anything is rejected, write it again
                # without folding (record order), so the stop leaves nothing after it written.
                if self._attempt_whole(txs, spec, parts):
                    return
                parts = list(segments(batch.rows, insert_mode, exact=True, version=version, keys=keys))
            for segment in parts:
                if not self._write_isolated(txs, spec, segment, checkpoint):
                    break  # stopped at a rejected row: the rest stays unwritten and unsettled

    def _despite_deletes(self, batch: Batch) -> tuple[TableSpec, Batch] | None:
        """When the change the table refused was asked by the deletes alone (a key type inferred
        from a tombstone: 1.0 or "1" for a bigint column), the table ready for the batch's writes
        and the batch with the deletes' whole-number keys as ints. Deletes write no column, so the
        table need not take that type; the database compares their keys with its own. None when a
        delete names a column the table lacks or a key no row can have (2.5 for a bigint column),
        or when the writes need the refused change themselves."""
        existing = self.store.table(batch.spec.name, batch.spec.schema)
        deletes = [row for row in batch.rows if row.op is Op.DELETE]
        if existing is None or not deletes or not _keyed_by_columns_of(existing, deletes):
            return None
        keys = whole_numbers_as_ints(existing, [row.key for row in deletes])
        if keys is None:
            return None
        writes = [row for row in batch.rows if row.op is not Op.DELETE]
        try:
            table = self.ensure_table(subbatch(batch, writes).spec, inferred=batch.inferred) if writes else existing
        except SchemaEvolutionRefused:
            return None
        rekeyed = {id(row): row._replace(key=key) for row, key in zip(deletes, keys, strict=True) if key is not row.key}
        return table, replace(batch, rows=tuple(rekeyed.get(id(row), row) for row in batch.rows))

    def _truncate(self, batch: Batch, committed: OnCommit, hook: CommitHook | None) -> None:
        """Empty the table (nothing to do when it does not exist): one transaction, its outcome
        settled when it committed."""
        (row,) = batch.rows
        outcome = Outcome(row.raw, Status.DELETED, batch.table, "truncate")
        if self.store.table(batch.spec.name, batch.spec.schema) is None:
            committed(Settled([outcome]))
            return
        try:
            with BatchTransactions(self.store, self.max_savepoints, committed, hook) as txs:
                txs.current().truncate(batch.spec)
                txs.settle([outcome])
        except RecordRejected as exc:  # e.g. another table's foreign key: that record's error, rolled back
            committed(Settled(_rejected_row(row, exc)))

    # -------------------------------------------------------------- DDL

    def ensure_table(self, wanted: TableSpec, inferred: bool = False) -> TableSpec:
        existing = self.store.table(wanted.name, wanted.schema)
        if existing is None:
            self._check_creatable(wanted)
            self.store.create_table(wanted)
            existing = self.store.table(wanted.name, wanted.schema)
            if existing is None:
                return wanted
            # Another worker may have created it first, from another schema (CREATE TABLE IF NOT
            # EXISTS then leaves theirs): it takes these rows only as any existing table would.
        evolution = self.evolution(existing, wanted, inferred)
        if not evolution:
            return existing
        if not self.rules.auto_evolve:
            raise SchemaEvolutionRefused(
                f"table {wanted.qualified!r} needs {_describe(evolution)} to take these records; "
                "set SINK_AUTO_EVOLVE=true or change the table yourself",
                fix=evolution,
            )
        self.store.alter_table(existing, evolution)
        return self.store.table(wanted.name, wanted.schema) or wanted

    def _check_creatable(self, wanted: TableSpec) -> None:
        if not self.rules.auto_create:
            # The sink creates no schema either (as Debezium's JDBC sink), unless it may create tables.
            where = "" if wanted.schema is None else f" (and schema {wanted.schema!r} if that is missing too)"
            raise SchemaEvolutionRefused(
                f"table {wanted.qualified!r} does not exist; create it{where} or set SINK_AUTO_CREATE=true",
                fix=wanted,
            )
        self._check_names_against(None, wanted)
        if not wanted.columns:
            raise SchemaEvolutionRefused(
                f"table {wanted.qualified!r} cannot be created from records whose fields are all null "
                "(no column type to give them)"
            )
        self._check_width(wanted.qualified, len(wanted.columns))

    def evolution(self, existing: TableSpec, wanted: TableSpec, inferred: bool) -> Evolution:
        """The safe change that lets `existing` take rows of `wanted`; SchemaEvolutionRefused when
        there is none (an unsafe type change, a name the database would take for another column,
        more columns than a table may have)."""
        self._check_names_against(existing, wanted)
        evolution = evolve(existing, wanted, self.store.storage_type, inferred=inferred)
        if evolution.add:
            self._check_width(existing.qualified, len(existing.columns) + len(evolution.add))
        return evolution

    def _check_names_against(self, existing: TableSpec | None, wanted: TableSpec) -> None:
        """No field of `wanted` may be another column under the database's name comparison: neither
        a column of the table nor another field (records of several shapes merge into one spec)."""
        identifiers = self.rules.identifiers
        taken = identifiers.column_keys(existing.column_names if existing else ())
        clash = identifiers.column_clash(wanted.column_names, taken)
        if clash is None:
            return
        name, other = clash
        if existing is None or existing.column(other) is None:
            raise SchemaEvolutionRefused(
                f"table {wanted.qualified!r}: fields {other!r} and {name!r} would be one column for "
                f"{identifiers.database}, which compares column names without regard to case"
            )
        raise SchemaEvolutionRefused(
            f"table {wanted.qualified!r}: field {name!r} would be column {other!r}, which "
            f"{identifiers.database} takes for the same name (it compares column names without "
            "regard to case); rename the field, e.g. with SINK_FIELDS_EXCLUDE or a transform"
        )

    def _check_width(self, table: str, columns: int) -> None:
        limit = self.rules.max_columns
        if limit is not None and columns > limit:
            raise SchemaEvolutionRefused(
                f"table {table!r} would have {columns} columns, more than the {limit} allowed "
                "(SINK_TABLE_MAX_COLUMNS, at most the database's own limit)"
            )

    # -------------------------------------------------------------- refused changes

    def _write_around(
        self,
        batch: Batch,
        refusal: SchemaEvolutionRefused,
        committed: OnCommit,
        checkpoint: Checkpoint,
        hook: CommitHook | None,
        refused_before: bool,
    ) -> None:
        """The table cannot take the batch as it is: the records that need the refused change become
        SchemaRefused record errors, the others are written (with errors.tolerance=none, only those
        before the first refused record). `refused_before`: this batch was refused once already
        with no record to blame."""
        reasons = refusals(self, batch, refusal)
        if not reasons and not refused_before:
            # Nobody's change is refused now (another worker made it meanwhile): again, once.
            self._write(batch, committed, checkpoint, hook, refused_before=True)
            return
        if not reasons:  # refused again: the change is the deletes' (a key of another type), never made
            reasons = refused_anyway(self, batch, refusal)
        first = next(i for i, row in enumerate(batch.rows) if id(row) in reasons)
        if self.rules.stop_at_rejection:
            good, bad = list(batch.rows[:first]), [batch.rows[first]]
        else:
            good = [row for row in batch.rows if id(row) not in reasons]
            bad = [row for row in batch.rows if id(row) in reasons]
        if good:
            self._write(subbatch(batch, good), committed, checkpoint, hook)
        committed(Settled([refused_outcome(row, reasons[id(row)]) for row in bad]))

    # -------------------------------------------------------------- isolation

    def _write_isolated(
        self, txs: BatchTransactions, spec: TableSpec, units: list[WriteUnit], checkpoint: Checkpoint
    ) -> bool:
        """Write `units` in order, each rejected unit isolated as a record error. The whole list is
        tried first; when a chunk is rejected, a binary search over its prefixes finds its first
        rejected unit (the prefixes the database takes are kept), and the next chunk is sized by the
        rejections seen so far (doubling while chunks go in). With k rejected units in n this costs
        about k·(log2 n + 2) statements when they are few, and stays linear in n when they are many
        (trying "all the rest" after each one would cost k·n rows).
        False when stopped at the first rejected unit (`stop_at_rejection`)."""
        start, size, rejected = 0, len(units), 0
        while start < len(units):
            checkpoint()
            stop = min(len(units), start + size)
            failure = self._attempt(txs, spec, units, start, stop)
            if failure is None:
                start, size = stop, size * 2
                continue
            bad, error = self._first_rejected(txs, spec, units, start, stop, failure, checkpoint)
            if error is not None:
                txs.settle(list(_rejected(units[bad], error)))
                if self.rules.stop_at_rejection:
                    return False
                rejected += 1
            start = bad + 1
            # The first rejections may be all there are: the rest is tried whole, as a batch with one
            # bad row costs no more than that. Past them, chunks of the mean gap between rejections
            # (about one rejected unit each), so many rejections cost linear work, not rows times rejections.
            size = len(units) if rejected < WHOLE_REST_TRIES else max(1, start // rejected)
        return True

    def _first_rejected(
        self,
        txs: BatchTransactions,
        spec: TableSpec,
        units: list[WriteUnit],
        low: int,
        high: int,
        failure: RecordRejected,
        checkpoint: Checkpoint,
    ) -> tuple[int, RecordRejected | None]:
        """Binary search for the first rejected unit of units[low:high], which the database refused
        as a whole; the good units before it are written on the way. Returns its index and the
        database's reason (None if, tried alone, it went in after all)."""
        error: RecordRejected | None = failure if high - low == 1 else None  # units[low] alone's reason
        while high - low > 1:
            checkpoint()
            middle = (low + high) // 2
            attempt = self._attempt(txs, spec, units, low, middle)
            if attempt is None:
                low = middle
            else:
                high = middle
                error = attempt if high - low == 1 else None
        if error is None:
            error = self._attempt(txs, spec, units, low, low + 1)
        return low, error

    def _attempt_whole(self, txs: BatchTransactions, spec: TableSpec, parts: list[list[WriteUnit]]) -> bool:
        """Every segment under one savepoint: True and settled, or False and rolled back."""
        tx = txs.current()
        mode = self.rules.insert_mode
        outcomes: list[Outcome] = []
        try:
            with tx.savepoint():
                for units in parts:
                    operations = tx.apply(spec, write_plan(units, spec, self.rules.version_field), mode)
                    outcomes += self._outcomes(spec.qualified, units, operations, mode)
        except RecordRejected:
            txs.savepoint_taken()
            return False
        txs.settle(outcomes)
        txs.savepoint_taken()
        return True

    def _attempt(
        self, txs: BatchTransactions, spec: TableSpec, units: list[WriteUnit], start: int, stop: int
    ) -> RecordRejected | None:
        """One statement (per operation) for units[start:stop] under a savepoint: their outcomes
        (settled when the transaction commits) or the database's reason for rejecting them."""
        chunk = units[start:stop]
        tx = txs.current()
        try:
            with tx.savepoint():
                operations = tx.apply(spec, write_plan(chunk, spec, self.rules.version_field), self.rules.insert_mode)
        except RecordRejected as exc:
            txs.savepoint_taken()
            return exc
        except DatabaseUnavailable as exc:
            if exc.sqlstate == OUT_OF_SHARED_MEMORY and self.max_savepoints > 1:
                # Too many locks for one transaction: fewer savepoints each when the batch is retried.
                self.max_savepoints = max(1, self.max_savepoints // 2)
            raise
        if not operations and self.rules.version_field is None and _all_rows(chunk):
            txs.settle_written(spec.qualified, self.rules.insert_mode, chunk)  # the usual chunk
        else:
            txs.settle(self._outcomes(spec.qualified, chunk, operations, self.rules.insert_mode))
        txs.savepoint_taken()
        return None

    def _outcomes(self, table: str, units: list[WriteUnit], operations: dict[int, str], mode: str) -> list[Outcome]:
        if self.rules.version_field is None:
            return _outcomes(table, units, operations, mode)
        outcomes = [o for i, unit in enumerate(units) for o in _versioned(table, unit, i, operations, mode)]
        self.stale_records += sum(1 for o in outcomes if o.operation == "skip" and o.status is Status.WRITTEN)
        return outcomes


OUT_OF_SHARED_MEMORY = "53200"
WHOLE_REST_TRIES = 3


def _keyed_by_columns_of(table: TableSpec, rows: Sequence[Row]) -> bool:
    """Whether every row names its key by columns `table` has (so a delete finds its row there)."""
    return all(row.key and all(table.column(name) is not None for name in row.key) for row in rows)


def _carry_on() -> None:
    return None


def _all_rows(units: list[WriteUnit]) -> TypeGuard[list[Row]]:
    """Whether every unit is a write of its own (a Row)."""
    return set(map(type, units)) <= {Row}


def _outcomes(table: str, units: list[WriteUnit], operations: dict[int, str], mode: str) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for i, unit in enumerate(units):
        if isinstance(unit, Row):  # most units: a write of its own
            outcomes.append(Outcome(unit.raw, Status.WRITTEN, table, operations.get(i) or mode, unit.key))
        else:
            outcomes += _settled(table, unit, operations.get(i), mode)
    return outcomes


def _settled(table: str, unit: Unit, operation: str | None, mode: str) -> Iterator[Outcome]:
    for row in unit.rows:
        if row.op is Op.DELETE:
            yield Outcome(row.raw, Status.DELETED, table, "delete", row.key)
        elif row is unit.final:
            yield Outcome(row.raw, Status.WRITTEN, table, operation or mode, row.key)
        else:  # an earlier version of the key, superseded in the same batch
            yield Outcome(row.raw, Status.WRITTEN, table, "skip", row.key)


def _versioned(table: str, unit: WriteUnit, index: int, operations: dict[int, str], mode: str) -> Iterator[Outcome]:
    """A unit's outcomes under a version field: what the database did with its delete and its
    write (`Transaction.apply`: "skip" when the stored row was newer), the rows the unit found
    older than an earlier one of the batch (`Unit.stale`) and those superseded reported `skip`."""
    assert isinstance(unit, Unit)  # segments makes Units only, under a version field
    stale = unit.stale or ()
    deleted = operations.get(delete_slot(index), "delete")
    for row in unit.rows:
        if any(row is s for s in stale):
            yield Outcome(row.raw, Status.WRITTEN, table, "skip", row.key)
        elif row.op is Op.DELETE:
            status = Status.WRITTEN if deleted == "skip" else Status.DELETED
            yield Outcome(row.raw, status, table, deleted, row.key)
        elif row is unit.final:
            yield Outcome(row.raw, Status.WRITTEN, table, operations.get(index) or mode, row.key)
        else:  # an earlier version of the key, superseded in the same batch
            yield Outcome(row.raw, Status.WRITTEN, table, "skip", row.key)


def _rejected(unit: WriteUnit, exc: RecordRejected) -> Iterator[Outcome]:
    for row in unit_rows(unit):
        yield from _rejected_row(row, exc)


def _rejected_row(row: Row, exc: RecordRejected) -> Iterator[Outcome]:
    error = exc.for_record(row.coord)
    yield Outcome(row.raw, Status.FAILED, row.table, row.op.value, row.key, Stage.TASK_PUT, error)


def _describe(evolution: Evolution) -> str:
    parts = [f"new column {c.name!r} ({c.type})" for c in evolution.add]
    parts += [f"column {c.name!r} widened from {c.type} to {t}" for c, t in evolution.widen]
    parts += [f"column {n!r} made nullable" for n in evolution.drop_not_null]
    return ", ".join(parts)
