"""A JSON document that arrived as text (Debezium's `io.debezium.data.Json`, `JsonDocument`) lands
in a JSON column as that document, on every database and both of PostgreSQL's paths: numbers past a
double's 17 significant digits exact, and the document `null` a JSON null in a NOT NULL column,
never SQL NULL. Read back as text by each database's own JSON functions."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore, create_engine
from sink.jsonvalues import JsonDocument
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.pipeline import Writer, WriteRules

pytestmark = pytest.mark.integration

EXACT = '{"price": 12345678901234567.89, "ratio": 0.1234567890123456789, "big": 123456789012345678901234567890}'
SPEC_COLUMNS = (
    Column("id", ColumnType(Kind.INT64), nullable=False),
    Column("doc", ColumnType(Kind.JSON), nullable=False),
)


def _row(spec: TableSpec, offset: int, doc: JsonDocument) -> Row:
    raw = RawRecord(Coord("docs", 0, offset), None, None)
    return Row(raw, spec.name, Op.UPSERT, {"id": offset}, {"id": offset, "doc": doc}, spec)


def _documents(url: str, table: str) -> dict[int, str]:
    """Each row's document as the text the database gives back (jsonb's own output on PostgreSQL)."""
    engine = create_engine(url)
    rows = sa.table(table, sa.column("id"), sa.column("doc"))
    query = sa.select(rows.c.id, sa.cast(rows.c.doc, sa.Text)).order_by(rows.c.id)
    try:
        with engine.connect() as connection:
            found = connection.execute(query).all()
    finally:
        engine.dispose()
    return {int(i): str(text) for i, text in found}


def test_a_json_document_lands_as_it_arrived(store: SqlStore, url: str, name: str) -> None:
    spec = TableSpec(name, SPEC_COLUMNS, ("id",))
    rows = [_row(spec, 1, JsonDocument(EXACT)), _row(spec, 2, JsonDocument("null")), _row(spec, 3, JsonDocument("[]"))]
    writer = Writer(store, WriteRules(insert_mode="upsert", auto_create=True))

    outcomes = writer.write(Batch(spec.name, spec, tuple(rows)))

    assert [o.status for o in outcomes] == [Status.WRITTEN] * 3, [o.error for o in outcomes]
    documents = _documents(url, name)
    assert json.loads(documents[1], parse_float=Decimal) == json.loads(EXACT, parse_float=Decimal)
    assert documents[2] == "null", "the document null is a JSON null, not SQL NULL"
    assert json.loads(documents[3]) == []
