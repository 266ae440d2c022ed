"""Schema-qualified targets on real PostgreSQL and MariaDB (a MariaDB schema is a database):
SINK_TABLE_NAME_FORMAT=<schema>.${source.table} puts Debezium's tables in that schema, created with
the table only under SINK_AUTO_CREATE; each part quoted on its own, so dots, quotes and backticks
in a source table stay in its name; a qualified table evolves in its schema; two schemas hold
tables of one name apart (also through PostgreSQL's COPY stage)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.errors import SchemaRefused
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules
from tests.support.debezium import SourceTable, customer, standard_history
from tests.support.kafka import create_topic, produce
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration

TARGETS = {"postgresql": "pg_url", "postgresql_copy": "pg_url", "mariadb": "mariadb_url"}
ID = Column("id", ColumnType(Kind.INT64), nullable=False)
NOTE = Column("note", ColumnType(Kind.STRING))
HOSTILE_TABLE = 'we"ird.`t`'


class Schemas:
    """A database's schemas made by a test, dropped (with their tables) before and after it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []

    def name(self, schema: str) -> str:
        self._drop(schema)
        self.made.append(schema)
        return schema

    def exists(self, schema: str) -> bool:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            return schema in sa.inspect(engine).get_schema_names()
        finally:
            engine.dispose()

    def rows(self, schema: str, table: str) -> list[dict[str, Any]]:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                reflected = sa.Table(table, sa.MetaData(), schema=schema, quote_schema=True, autoload_with=connection)
                query = sa.select(reflected).order_by(reflected.c.id)
                return [dict(row) for row in connection.execute(query).mappings()]
        finally:
            engine.dispose()

    def drop_all(self) -> None:
        for schema in self.made:
            self._drop(schema)

    def _drop(self, schema: str) -> None:
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            cascade = engine.dialect.name == "postgresql"  # MariaDB's DROP SCHEMA drops its tables
            with engine.begin() as connection:
                name = sa.sql.quoted_name(schema, quote=True)
                connection.execute(sa.schema.DropSchema(name, cascade=cascade, if_exists=True))
        finally:
            engine.dispose()


@pytest.fixture(params=list(TARGETS))
def target(request: pytest.FixtureRequest) -> Iterator[tuple[SqlStore, Schemas]]:
    url = str(request.getfixturevalue(TARGETS[request.param]))
    engine = create_engine(url)
    store = SqlStore(engine)
    if request.param == "postgresql_copy":
        store.dialect.bulk_min_rows = 1  # type: ignore[misc]
    elif store.dialect.name == "postgresql":
        store.dialect.bulk_min_rows = None  # type: ignore[misc]
    schemas = Schemas(url)
    yield store, schemas
    engine.dispose()
    schemas.drop_all()


def spec(name: str, schema: str, *columns: Column) -> TableSpec:
    return TableSpec(name, (ID, *columns), ("id",), schema)


def write(
    store: SqlStore, table: TableSpec, values: Sequence[Mapping[str, Any]], create: bool = True, deletes: int = 0
) -> list[Outcome]:
    """Upserts of `values`, then deletes of the first `deletes` ids, as one batch of `table`."""
    rows = [
        Row(RawRecord(Coord("q", 0, i), None, None), table.qualified, Op.UPSERT, {"id": v["id"]}, v, table)
        for i, v in enumerate(values)
    ]
    key_only = TableSpec(table.name, (ID,), ("id",), table.schema)
    rows += [
        Row(
            RawRecord(Coord("q", 0, len(rows) + i), None, None),
            table.qualified,
            Op.DELETE,
            {"id": v["id"]},
            {},
            key_only,
        )
        for i, v in enumerate(values[:deletes])
    ]
    writer = Writer(store, WriteRules("upsert", auto_create=create, auto_evolve=True))
    return writer.write(Batch(table.qualified, table, tuple(rows)))


def test_two_schemas_hold_tables_of_one_name_apart(target: tuple[SqlStore, Schemas], unique_name: str) -> None:
    store, schemas = target
    one, two = schemas.name(f"{unique_name}_one"), schemas.name(f"{unique_name}_two")
    items = [{"id": i, "note": f"one {i}"} for i in range(1, 21)]
    outcomes = write(store, spec("items", one, NOTE), items, deletes=1)
    assert {o.table for o in outcomes} == {f"{one}.items"}
    assert all(o.status in (Status.WRITTEN, Status.DELETED) for o in outcomes)
    write(store, spec("items", two, NOTE), [{"id": i, "note": f"two {i}"} for i in range(1, 4)])
    assert schemas.rows(one, "items") == items[1:]
    assert schemas.rows(two, "items") == [{"id": i, "note": f"two {i}"} for i in range(1, 4)]


def test_a_qualified_table_evolves_in_its_schema_and_nowhere_else(
    target: tuple[SqlStore, Schemas], unique_name: str
) -> None:
    store, schemas = target
    replica, other = schemas.name(f"{unique_name}_r"), schemas.name(f"{unique_name}_o")
    write(store, spec(HOSTILE_TABLE, other), [{"id": 1}])  # the same name elsewhere, without `note`
    write(store, spec(HOSTILE_TABLE, replica), [{"id": 1}])
    write(store, spec(HOSTILE_TABLE, replica, NOTE), [{"id": 2, "note": "added"}])
    reflected = store.table(HOSTILE_TABLE, replica)
    assert reflected is not None and reflected.schema == replica and reflected.column_names == ("id", "note")
    assert schemas.rows(replica, HOSTILE_TABLE) == [{"id": 1, "note": None}, {"id": 2, "note": "added"}]
    assert schemas.rows(other, HOSTILE_TABLE) == [{"id": 1}]
    assert store.table(HOSTILE_TABLE) is None  # nor in the connection's default schema


def test_a_hostile_schema_name_is_quoted_as_one_name(target: tuple[SqlStore, Schemas], unique_name: str) -> None:
    store, schemas = target
    hostile = schemas.name(f'{unique_name}"s.c`h')
    write(store, spec(HOSTILE_TABLE, hostile, NOTE), [{"id": 1, "note": "x"}, {"id": 2, "note": "y"}], deletes=1)
    assert schemas.rows(hostile, HOSTILE_TABLE) == [{"id": 2, "note": "y"}]


def test_a_missing_schema_is_created_only_with_auto_create(target: tuple[SqlStore, Schemas], unique_name: str) -> None:
    store, schemas = target
    replica = schemas.name(f"{unique_name}_r")
    (refused,) = write(store, spec("items", replica, NOTE), [{"id": 1, "note": "x"}], create=False)
    assert refused.status is Status.FAILED and isinstance(refused.error, SchemaRefused)
    message = str(refused.error)
    assert f"table '{replica}.items' does not exist; create it (and schema '{replica}' if" in message
    assert "CREATE SCHEMA IF NOT EXISTS" in message and "SINK_AUTO_CREATE=true" in message
    assert not schemas.exists(replica)
    (written,) = write(store, spec("items", replica, NOTE), [{"id": 1, "note": "x"}])
    assert written.status is Status.WRITTEN and schemas.exists(replica)
    assert schemas.rows(replica, "items") == [{"id": 1, "note": "x"}]


# ------------------------------------------------------------------------------ through the sink


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_debezium_events_land_in_the_schema_the_format_names(
    bootstrap_servers: str, backend: str, request: pytest.FixtureRequest, unique_name: str
) -> None:
    """`<unique>_${source.db}.${source.table}`: a schema per source database, each made by the sink;
    `customers` in two of them; a source table named with a dot, quotes and backticks."""
    url = str(request.getfixturevalue({"postgresql": "pg_url", "mariadb": "mariadb_url"}[backend]))
    schemas = Schemas(url)
    east, west = schemas.name(f"{unique_name}_east"), schemas.name(f"{unique_name}_west")
    first, second, odd = SourceTable("customers"), SourceTable("customers"), SourceTable(HOSTILE_TABLE)
    standard_history(first)
    second.snapshot([customer(1), customer(2)])
    second.update(2, first_name="moved")
    odd.insert(customer(7))
    odd.insert(customer(8))
    odd.delete(7)
    for source, db in ((first, "east"), (second, "west"), (odd, "east")):
        for _key, envelope in source.events:
            if envelope is not None:
                envelope["source"]["db"] = db
    records = first.connect_json() + second.connect_json() + odd.connect_json()
    topic = f"dbserver1.inventory.{unique_name}"
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, records)
    env = sink_env(
        bootstrap_servers,
        url,
        topic,
        unique_name,
        cdc_format="debezium",
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
        key_format="connect_json",
        value_format="connect_json",
        table_name_format=unique_name + "_${source.db}.${source.table}",
    )
    try:
        with running_sink(env) as sink:
            sink.wait_committed(topic, {0: len(records)})
        assert [r["id"] for r in schemas.rows(east, "customers")] == [r["id"] for r in first.state()]
        assert [(r["id"], r["first_name"]) for r in schemas.rows(west, "customers")] == [
            (r["id"], r["first_name"]) for r in second.state()
        ]
        assert [r["id"] for r in schemas.rows(east, HOSTILE_TABLE)] == [8]
    finally:
        schemas.drop_all()
