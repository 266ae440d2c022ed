"""Workers started together on a new table create it at the same moment: PostgreSQL's IF NOT
EXISTS then fails the slower session on the catalogue's unique index (SQLSTATE 23505), which
used to escape as a record error. Each store must end with the table, never an error."""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlOffsets, SqlStore, create_engine
from sink.model import Column, ColumnType, Kind, TableSpec

SESSIONS = 3
ROUNDS = 8


def _create_together(stores: list[SqlStore], spec: TableSpec) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def create(store: SqlStore) -> None:
        start.wait()
        try:
            store.create_table(spec)
        except BaseException as exc:  # every failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


@pytest.mark.parametrize("in_schema", [False, True], ids=["table", "schema-qualified"])
def test_sessions_creating_one_table_at_once_all_succeed(pg_url: str, in_schema: bool) -> None:
    stores = [SqlStore(create_engine(pg_url)) for _ in range(SESSIONS)]
    created: list[TableSpec] = []
    try:
        for _ in range(ROUNDS):
            spec = TableSpec(
                f"race_{uuid.uuid4().hex[:8]}",
                (Column("id", ColumnType(Kind.INT64), nullable=False), Column("v", ColumnType(Kind.STRING))),
                ("id",),
                f"race_{uuid.uuid4().hex[:6]}" if in_schema else None,
            )
            created.append(spec)
            assert _create_together(stores, spec) == []
            assert all(store.table(spec.name, spec.schema) is not None for store in stores)
    finally:
        engine = sa.create_engine(pg_url)
        with engine.begin() as connection:
            for spec in created:
                if spec.schema is None:
                    connection.execute(sa.text(f'DROP TABLE IF EXISTS "{spec.name}"'))
                else:
                    connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{spec.schema}" CASCADE'))
        engine.dispose()
        for store in stores:
            store.close()


def test_workers_creating_the_offsets_table_at_once_all_succeed(pg_url: str, unique_name: str) -> None:
    """Exactly-once workers started together each create the offsets table when it is missing."""
    stores = [SqlStore(create_engine(pg_url)) for _ in range(SESSIONS)]
    errors: list[BaseException] = []
    start = threading.Barrier(SESSIONS)

    def create(store: SqlStore) -> None:
        start.wait()
        try:
            SqlOffsets(store, "g", unique_name)
        except BaseException as exc:  # every failure is the finding
            errors.append(exc)

    try:
        threads = [threading.Thread(target=create, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
    finally:
        with stores[0].engine.begin() as connection:
            connection.execute(sa.text(f'DROP TABLE IF EXISTS "{unique_name}"'))
        for store in stores:
            store.close()
