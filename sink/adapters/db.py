"""The database edge: SQLAlchemy engine, reflection, transactions with savepoints. Errors are
classified by code (SQLSTATE, MySQL errno, SQLite error name) in `dberrors`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ..dialects import Dialect, PostgresDialect, for_backend
from ..dialects.offsets import offset_statements
from ..errors import FatalError, RecordRejected
from ..jsonvalues import json_text
from ..model import ColumnType, Kind, TableSpec
from ..plan import Plan, Write, delete_slot
from ..ports import Transaction
from ..schema import Evolution
from . import pgcopy
from .dberrors import classified, classify, ddl_classified, driver_refusals
from .executemany import (
    ARRAY_VALUES,
    DOCUMENTS,
    Binder,
    DriverStatement,
    array_columns,
    compile_for_driver,
    execute_many,
    holds_documents,
    nested_value_refused,
    rows_binder,
    single_value_refused,
)
from .pgcopy import stage_and_merge
from .reflection import reflect_table

log = logging.getLogger("sink.db")


# ------------------------------------------------------------------------------ the store


MYSQL_SQL_MODE = "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"


def json_dumps(value: Any) -> str:
    return json_text(value)


def create_engine(url: str) -> Engine:
    backend = sa.engine.make_url(url).get_backend_name()
    kwargs: dict[str, Any] = {"json_serializer": json_dumps, "pool_pre_ping": True}
    if backend == "postgresql":
        # No server-side prepared statements: after a statement is rejected inside a pipeline,
        # psycopg's cache of them can name one the server already dropped (SQLSTATE 26000).
        kwargs["connect_args"] = {
            "connect_timeout": 5,
            "application_name": "kafka-sql-sink",
            "prepare_threshold": None,
        }
    elif backend in ("mysql", "mariadb"):
        # Strict, and no zero dates: a value MariaDB/MySQL cannot store is refused (that row's
        # error) instead of silently becoming 0, '' or '0000-00-00'.
        kwargs["connect_args"] = {"connect_timeout": 5, "charset": "utf8mb4", "sql_mode": MYSQL_SQL_MODE}
    engine = sa.create_engine(url, **kwargs)
    if backend == "sqlite":
        _sqlite_real_transactions(engine)
    return engine


def _sqlite_real_transactions(engine: Engine) -> None:
    """pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


class SqlTransaction:
    def __init__(self, connection: Connection, dialect: Dialect, store: SqlStore) -> None:
        self.connection = connection
        self.dialect = dialect
        self.store = store

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with classified():
            nested = self.connection.begin_nested()
        try:
            with classified(), driver_refusals():
                yield
        except BaseException:
            with classified():
                nested.rollback()
            raise
        else:
            with classified():
                nested.commit()

    def truncate(self, spec: TableSpec) -> None:
        with classified():
            self.connection.execute(self.dialect.truncate(self.store.sa_table(spec)))

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        table = self.store.sa_table(spec)
        key = spec.primary_key
        plan = self._exact_keys(spec, plan)
        if plan.version is not None:
            return self._apply_versioned(spec, table, plan)
        report = self.store.report_operations and mode == "upsert"
        if self._bulk(plan, spec):
            return self._apply_staged(spec, table, plan, mode, report)
        if plan.deletes:
            self._delete(table, key, plan.deletes)
        operations: dict[int, str] = {}
        for write in plan.writes:
            flags = self._upsert_reporting(table, key, write.columns, write.rows) if report else None
            if flags is None:
                self._write_rows(table, key, mode, write.columns, write.rows)
                continue
            for index, inserted in zip(write.units, flags, strict=True):
                operations[index] = "insert" if inserted else "update"
        return operations

    def _exact_keys(self, spec: TableSpec, plan: Plan) -> Plan:
        """The plan with its key values as the database compares them exactly (`Dialect.exact_keys`)."""
        exact = self.dialect.exact_keys
        deletes = exact(spec, plan.deletes)
        writes = [(write, exact(spec, write.rows)) for write in plan.writes]
        if deletes is plan.deletes and all(rows is write.rows for write, rows in writes):
            return plan
        changed = [dataclasses.replace(write, rows=list(rows)) for write, rows in writes]
        return dataclasses.replace(plan, deletes=list(deletes), writes=changed)

    def _delete(self, table: sa.Table, key: Sequence[str], keys: list[Mapping[str, Any]]) -> None:
        shape = (table, "delete", ())
        driver = self.store.driver_statement(shape, lambda: self.dialect.delete(table, key), (), _key_binds(key))
        parameters = self.store.rows_binder(shape, driver, table)
        execute_many(self.connection, driver, parameters(keys))

    def _write_rows(
        self, table: sa.Table, key: Sequence[str], mode: str, names: Sequence[str], rows: list[Mapping[str, Any]]
    ) -> None:
        """Insert/upsert/update `rows` (which carry `names`) on the driver's own executemany."""
        shape = (table, mode, names)
        if mode == "update":
            binds = {f"v{i}": name for i, name in enumerate(names)} | _key_binds(key)
            driver = self.store.driver_statement(shape, lambda: self.dialect.update(table, key, names), (), binds)
        else:
            driver = self.store.driver_statement(shape, lambda: self._insert(table, key, mode, names), names, {})
        parameters = self.store.rows_binder(shape, driver, table)
        execute_many(self.connection, driver, parameters(rows))

    def _upsert_reporting(
        self, table: sa.Table, key: Sequence[str], names: Sequence[str], rows: list[Mapping[str, Any]]
    ) -> list[bool] | None:
        """Upsert `rows` telling, row by row, an insert (True) from an update; None (nothing
        written) where the database cannot tell cheaply. RETURNING in parameter order needs
        SQLAlchemy's own executemany."""
        reporting = self.dialect.reporting_inserts(self._insert(table, key, "upsert", names))
        if reporting is None:
            return None
        _refuse_documents_for_scalars(table, names, rows)
        bind = self.dialect.bind
        params = [{name: bind(row.get(name)) for name in names} for row in rows]
        return list(self.connection.execute(reporting, params).scalars().all())

    def _insert(self, table: sa.Table, key: Sequence[str], mode: str, names: Sequence[str]) -> Any:
        return self.dialect.upsert(table, key, names) if mode == "upsert" else self.dialect.insert(table)

    def _bulk(self, plan: Plan, spec: TableSpec) -> bool:
        """COPY + merge for a plan this large, unless a column of the table bears a name the
        staging gives its own columns (the records' fields cannot: `identifiers`; a table made by
        hand can): those tables go by the driver's executemany."""
        threshold = self.dialect.bulk_min_rows
        if threshold is None or len(plan) < threshold:
            return False
        staging = self.dialect.identifiers.staging_columns
        return not staging or not any(name in staging for name in spec.column_names)

    def _apply_staged(self, spec: TableSpec, table: sa.Table, plan: Plan, mode: str, report: bool) -> dict[int, str]:
        """The bulk path (PostgreSQL): per step of the plan, COPY into a stage and one merge. With
        `report` (a result topic, upsert mode) the merge also tells each unit's insert from its
        update, so reporting costs no row-by-row statements."""
        assert isinstance(self.dialect, PostgresDialect)
        dialect, key = self.dialect, spec.primary_key
        if plan.deletes:
            keys = [[k.get(name) for name in key] for k in plan.deletes]
            stage_and_merge(
                self.connection, dialect, table, spec, key, keys, lambda st: dialect.delete_staged(table, st, key)
            )
        operations: dict[int, str] = {}
        for write in plan.writes:
            names = write.columns
            values = pgcopy.row_values(names, pgcopy.adapters(dialect, spec, names, json_dumps))
            if report and dialect.reports_merges(key, names):
                operations.update(self._staged_reporting(dialect, spec, table, write, values))
                continue
            rows = map(values, write.rows)
            stage_and_merge(
                self.connection, dialect, table, spec, names, rows, lambda st: dialect.merge(table, st, key, mode)
            )
        return operations

    def _staged_reporting(
        self, dialect: PostgresDialect, spec: TableSpec, table: sa.Table, write: Write, values: pgcopy.Adapt
    ) -> dict[int, str]:
        """One upsert step staged with each row's position and merged telling, unit by unit, an
        insert from an update (`merge_reporting`). A row the merge's answer does not find again (a
        trigger that rewrote its key) is left unreported: an upsert, not a guess."""
        positioned = ([*values(row), n] for n, row in enumerate(write.rows))
        merge = partial(dialect.merge_reporting, table, key=spec.primary_key)
        connection = self.connection
        inserted = pgcopy.stage_and_merge_reporting(connection, dialect, table, spec, write.columns, positioned, merge)
        return {index: "insert" if inserted[n] else "update" for n, index in enumerate(write.units) if n in inserted}

    # -------------------------------------------------------------- versioned upserts

    def _apply_versioned(self, spec: TableSpec, table: sa.Table, plan: Plan) -> dict[int, str]:
        """A plan under a version field (upsert mode): every statement conditional on the stored
        row's version, and each unit's fate probed by the same condition first, in the same
        transaction: "insert", "update" or "skip" (stale) for its write, "delete" or "skip" for
        its delete (under `delete_slot`). On PostgreSQL a plan as large as the bulk threshold is
        staged by COPY and probed with one join; elsewhere a probe per row."""
        if self._bulk(plan, spec) and isinstance(self.dialect, PostgresDialect):
            return self._apply_versioned_staged(spec, table, plan)
        version, key, bind = plan.version, spec.primary_key, self.dialect.bind
        assert version is not None and plan.delete_units is not None
        operations: dict[int, str] = {}
        if plan.deletes:
            probe = self.dialect.probe(table, key, version, delete=True)
            plain, versioned = [], []
            for index, keys in zip(plan.delete_units, plan.deletes, strict=True):
                incoming = keys.get(version)
                if incoming is None:
                    plain.append(keys)
                    operations[delete_slot(index)] = "delete"
                    continue
                versioned.append({**_key_params(key, keys, bind), "dv": bind(incoming)})
                found = self.connection.execute(probe, {**_key_params(key, keys, bind), "w": bind(incoming)}).first()
                operations[delete_slot(index)] = "delete" if found is None or found[0] else "skip"
            if plain:
                self._delete(table, key, plain)
            if versioned:
                self.connection.execute(self.dialect.delete(table, key, version), versioned)
        for write in plan.writes:
            names = write.columns
            probe = self.dialect.probe(table, key, version, delete=False, carried=version in names)
            for index, row in zip(write.units, write.rows, strict=True):
                params = {**_key_params(key, row, bind), "w": bind(row.get(version))}
                found = self.connection.execute(probe, params).first()
                operations[index] = "insert" if found is None else "update" if found[0] else "skip"
            _refuse_documents_for_scalars(table, names, write.rows)
            params_list = [{name: bind(row.get(name)) for name in names} for row in write.rows]
            self.connection.execute(self.dialect.upsert(table, key, names, version), params_list)
        return operations

    def _apply_versioned_staged(self, spec: TableSpec, table: sa.Table, plan: Plan) -> dict[int, str]:
        """The bulk path of `_apply_versioned` (PostgreSQL): per step, COPY with each row's
        position, one probe joining the stage to the table, one conditional merge."""
        assert isinstance(self.dialect, PostgresDialect)
        dialect, key, version = self.dialect, spec.primary_key, plan.version
        assert version is not None and plan.delete_units is not None
        operations: dict[int, str] = {}
        if plan.deletes:
            names = (*key, version)
            rows = [[*(k.get(n) for n in names), n] for n, k in enumerate(plan.deletes)]
            found = pgcopy.stage_probe_and_merge(
                self.connection,
                dialect,
                table,
                spec,
                names,
                rows,
                lambda st: dialect.probe_staged(table, st, key, version, delete=True),
                lambda st: dialect.delete_staged(table, st, key, version),
            )
            for n, index in enumerate(plan.delete_units):
                operations[delete_slot(index)] = "delete" if found.get(n, True) else "skip"
        for write in plan.writes:
            names = write.columns
            values = pgcopy.row_values(names, pgcopy.adapters(dialect, spec, names, json_dumps))
            staged = ([*values(row), n] for n, row in enumerate(write.rows))
            found = pgcopy.stage_probe_and_merge(
                self.connection,
                dialect,
                table,
                spec,
                names,
                staged,
                lambda st: dialect.probe_staged(table, st, key, version, delete=False),
                lambda st: dialect.merge(table, st, key, "upsert", version),
            )
            for n, index in enumerate(write.units):
                fresh = found.get(n)
                operations[index] = "insert" if fresh is None else "update" if fresh else "skip"
        return operations


def _key_params(key: Sequence[str], values: Mapping[str, Any], bind: Callable[[Any], Any]) -> dict[str, Any]:
    return {f"k{i}": bind(values.get(name)) for i, name in enumerate(key)}


def _key_binds(key: Sequence[str]) -> dict[str, str]:
    return {f"k{i}": name for i, name in enumerate(key)}


def _refuse_documents_for_scalars(table: sa.Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """A dict or list for a column that is not JSON (or a native array) is that row's error. Drivers
    fail on it in their own ways (sqlite3 and PyMySQL with a ProgrammingError or TypeError that also
    means "our bug"), so it is refused here, where it is unambiguous. So is a single value for a
    native array column, which SQLAlchemy's ARRAY processor would iterate ('abc' as {a,b,c})."""
    scalar = {n for n in names if not holds_documents(table.c[n].type)}
    arrays = array_columns(table, names)
    for row in rows:
        for name in scalar:
            if row.get(name).__class__ in DOCUMENTS:
                raise nested_value_refused(name)
        for name in arrays:
            if row.get(name).__class__ not in ARRAY_VALUES:
                raise single_value_refused(name)


class SqlStore:
    """Implements pipeline.Store over a SQLAlchemy engine. Reflected tables are cached and
    refreshed only after DDL, so a batch costs no catalogue queries."""

    def __init__(self, engine: Engine, report_operations: bool = False) -> None:
        self.engine = engine
        # Telling inserts from updates needs RETURNING in parameter order, which stops SQLAlchemy
        # from batching the upsert (about 4x slower on PostgreSQL): only when a report wants it.
        self.report_operations = report_operations
        self.dialect = for_backend(engine.dialect.name, engine.dialect)
        self._tables: dict[tuple[str | None, str], TableSpec] = {}  # by (schema, name): tables that exist
        self._sa_tables: dict[tuple[Any, ...], sa.Table] = {}
        self._driver_statements: dict[tuple[Any, ...], DriverStatement] = {}
        self._rows_binders: dict[tuple[Any, ...], Binder] = {}

    # -------------------------------------------------------------- reflection

    def table(self, name: str, schema: str | None = None) -> TableSpec | None:
        """The table as it is, cached once it exists. A missing table is looked up again at each
        ask: another worker may create it at any time, and a remembered "none" would skip deletes
        and hide its columns from this worker's next CREATE TABLE IF NOT EXISTS."""
        key = (schema, name)
        found = self._tables.get(key)
        if found is None:
            found = self._reflect(name, schema)
            if found is not None:
                self._tables[key] = found
        return found

    def _reflect(self, name: str, schema: str | None) -> TableSpec | None:
        with classified(), self.engine.connect() as connection:
            return reflect_table(connection, self.dialect, name, schema)

    def storage_type(self, column_type: ColumnType) -> ColumnType:
        return self.dialect.storage_type(column_type)

    def sa_table(self, spec: TableSpec) -> sa.Table:
        # Keyed without defaults: DML does not need them, and a record default may be a dict.
        shape = (spec.schema, spec.name, spec.primary_key, tuple((c.name, c.type, c.nullable) for c in spec.columns))
        table = self._sa_tables.get(shape)
        if table is None:
            table = self._sa_tables[shape] = self.dialect.table(spec)
        return table

    def driver_statement(
        self, shape: tuple[Any, ...], build: Callable[[], Any], column_keys: Sequence[str], binds: Mapping[str, str]
    ) -> DriverStatement:
        """The statement of `shape` (table, operation, columns) compiled once for the driver."""
        if shape not in self._driver_statements:
            self._driver_statements[shape] = compile_for_driver(build(), self.engine.dialect, column_keys, binds)
        return self._driver_statements[shape]

    def rows_binder(self, shape: tuple[Any, ...], statement: DriverStatement, table: sa.Table) -> Binder:
        """The statement's parameters for a list of rows, built column by column (`rows_binder`)."""
        binder = self._rows_binders.get(shape)
        if binder is None:
            scalar = {c.name for c in table.columns if not holds_documents(c.type)}
            arrays = array_columns(table, table.c.keys())
            binder = rows_binder(statement, self.dialect.bind, self.dialect.bind_classes, scalar, arrays)
            self._rows_binders[shape] = binder
        return binder

    # -------------------------------------------------------------- DDL

    def create_table(self, spec: TableSpec) -> None:
        log.info(
            "creating table %s with %d columns, primary key %s",
            spec.qualified,
            len(spec.columns),
            spec.primary_key,
        )
        create_racing(
            lambda: self._ddl(self._creation(spec), spec),
            lambda: self.table(spec.name, spec.schema) is not None,
            f"table {spec.qualified}",
        )

    def _creation(self, spec: TableSpec) -> list[Any]:
        """CREATE TABLE, after CREATE SCHEMA IF NOT EXISTS for a table of a schema: the sink creates
        a table's schema only where it may create the table (SINK_AUTO_CREATE)."""
        schema = [] if spec.schema is None else [self.dialect.create_schema(spec.schema)]
        return [*schema, self.dialect.create_table(spec)]

    def alter_table(self, existing: TableSpec, evolution: Evolution) -> None:
        log.info("evolving table %s: %s", existing.qualified, evolution)
        self._ddl(self.dialect.evolve_statements(existing, evolution), existing)

    def _ddl(self, statements: Sequence[Any], table: TableSpec) -> None:
        try:
            with ddl_classified(table.qualified), self.engine.begin() as connection:
                for statement in statements:
                    connection.execute(statement)
        finally:
            self._tables.pop((table.schema, table.name), None)

    def ddl_text(self, existing: TableSpec | None, wanted: TableSpec, evolution: Evolution | None) -> str:
        if existing is None or evolution is None:
            statements: Sequence[Any] = self._creation(wanted)
        else:
            statements = self.dialect.evolve_statements(existing, evolution)
        return "; ".join(" ".join(str(s.compile(dialect=self.engine.dialect)).split()) for s in statements)

    # -------------------------------------------------------------- DML

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with classified(), self.engine.begin() as connection:
            yield SqlTransaction(connection, self.dialect, self)

    def ping(self) -> str:
        with classified(), self.engine.connect() as connection:
            version = connection.dialect.server_version_info
            connection.execute(sa.text("SELECT 1"))
        return ".".join(str(part) for part in version or ())

    def close(self) -> None:
        self.engine.dispose()


# Workers started together on a new table (a first deployment of several replicas) create it at
# the same moment. PostgreSQL's IF NOT EXISTS looks in the catalogue before it inserts there, so
# the slower session may fail on the catalogue's own unique index (23505) or find a half-made
# object (42710, "type ... already exists") instead of the table. A failed creation is therefore
# tried again unless the table exists by then: never a record error, never a stop.
CATALOGUE_RACE_TRIES = 3


def create_racing(create: Callable[[], None], exists: Callable[[], bool], what: str) -> None:
    """Run `create`; when it fails, another session may be creating the same object: done if it
    exists by then, else tried again, CATALOGUE_RACE_TRIES times in all."""
    for attempt in range(1, CATALOGUE_RACE_TRIES + 1):
        try:
            create()
            return
        except (RecordRejected, FatalError):
            if attempt == CATALOGUE_RACE_TRIES:
                raise
            if exists():
                return  # another session created it meanwhile
            log.info("creating %s failed, maybe racing another session: again", what)


# ------------------------------------------------------------------------------ exactly-once


class SqlOffsets:
    """offsets.OffsetStore over the target database: the offsets table (created when missing) of
    one consumer group. SQL in `dialects/offsets.py`."""

    def __init__(self, store: SqlStore, group_id: str, table_name: str = "__sink_offsets", create: bool = True) -> None:
        """`create=False` (reset-offsets): the table is created only by `reset`, never by a read."""
        self.store = store
        self.group_id = group_id
        self.table_name = table_name
        self.statements = offset_statements(store.dialect, table_name)
        if create:
            self._create()

    def _create(self) -> None:
        """Workers started together create the table together: one that lost the race finds it made
        (see CATALOGUE_RACE_TRIES), whatever error the database gave it."""
        create_racing(self._create_once, self._exists, f"offsets table {self.table_name}")

    def _create_once(self) -> None:
        with ddl_classified(self.table_name), self.store.engine.begin() as connection:
            self.statements.table.create(connection, checkfirst=True)

    def _exists(self) -> bool:
        with classified(), self.store.engine.connect() as connection:
            return sa.inspect(connection).has_table(self.table_name)

    def transaction(self) -> AbstractContextManager[SqlTransaction]:
        return self.store.transaction()

    def claim(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int | None, int]]:
        """One transaction: each row inserted when missing, its epoch bumped, then read."""
        s, claimed = self.statements, {}
        with self.store.transaction() as tx, classified():
            for topic, partition in partitions:
                key = {"g": self.group_id, "t": topic, "p": partition}
                tx.connection.execute(s.insert_missing, key)
                tx.connection.execute(s.bump, key)
                next_offset, epoch = tx.connection.execute(s.read, key).one()
                claimed[(topic, partition)] = (next_offset, epoch)
        return claimed

    def advance(
        self, tx: Transaction, positions: Mapping[tuple[str, int], tuple[int | None, int]]
    ) -> frozenset[tuple[str, int]]:
        """Per partition, the compare-and-set on its epoch; the partitions where it matched no row.
        `tx` is one of this store's transactions (offsets.OffsetStore types it by the core's port)."""
        assert isinstance(tx, SqlTransaction)
        s, fenced = self.statements, set()
        with classified():
            for (topic, partition), (next_offset, epoch) in positions.items():
                key = {"g": self.group_id, "t": topic, "p": partition, "e": epoch}
                if next_offset is None:
                    result = tx.connection.execute(s.keep, key)
                else:
                    result = tx.connection.execute(s.advance, {**key, "n": next_offset})
                if result.rowcount != 1:
                    fenced.add((topic, partition))
        return frozenset(fenced)

    def rows(self) -> dict[tuple[str, int], tuple[int | None, int]]:
        """The group's rows (for tools and tests): (next_offset, epoch) by partition."""
        with classified(), self.store.engine.connect() as connection:
            if not sa.inspect(connection).has_table(self.table_name):
                return {}
            rows = connection.execute(self.statements.rows, {"g": self.group_id})
            return {(t, p): (n, e) for t, p, n, e in rows}

    def positions(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """reset.PositionsPort: the next offset the table holds per partition (None: none)."""
        rows = self.rows()
        return {tp: rows[tp][0] if tp in rows else None for tp in partitions}

    def reset(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """reset.PositionsPort: one transaction; each row created when missing, its next offset
        set and its epoch bumped (a worker still holding the partition is refused its next write)."""
        self._create()
        s = self.statements
        with self.store.transaction() as tx, classified():
            for (topic, partition), offset in sorted(offsets.items()):
                key = {"g": self.group_id, "t": topic, "p": partition}
                tx.connection.execute(s.insert_missing, key)
                tx.connection.execute(s.reset, {**key, "n": offset})


__all__ = ["Kind", "SqlOffsets", "SqlStore", "classify", "create_engine"]
