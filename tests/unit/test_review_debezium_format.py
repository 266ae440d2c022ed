"""Review: Debezium change events in Connect JSON against Debezium's documented event format.

Each event is built as Debezium's PostgreSQL connector writes it (envelope, column schemas with
their defaults and logical names), decoded and mapped by the real Preparer, and the row it gives is
compared with what the source column held."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sink.adapters.db import json_dumps
from sink.formats.connect_json import ConnectJsonDecoder
from sink.model import Coord, Op, RawRecord, Row
from sink.pipeline import Preparer
from sink.transforms import MappingRules, RowMapper
from tests.support.debezium import connect_schemas

CDC = MappingRules(pk_mode="record_key", cdc_format="debezium")


def _field(field: str, type_: str, optional: bool = True, logical: str | None = None, **extra: Any) -> dict[str, Any]:
    schema = {"type": type_, "optional": optional, "field": field, **extra}
    return schema if logical is None else {**schema, "name": logical}


def _source() -> dict[str, Any]:
    return {
        "version": "2.7.0.Final",
        "connector": "postgresql",
        "name": "dbserver1",
        "ts_ms": 1_700_000_000_000,
        "snapshot": "false",
        "db": "inventory",
        "sequence": None,
        "schema": "inventory",
        "table": "t",
        "txId": 1,
        "lsn": 1,
        "xmin": None,
    }


def _prepare(row_fields: list[dict[str, Any]], op: str, before: Any, after: Any, rules: MappingRules = CDC) -> Row:
    key_schema, schema = connect_schemas("t", row_fields)
    key = {"id": (after or before)["id"]}
    payload = {"before": before, "after": after, "source": _source(), "op": op, "ts_ms": 1, "transaction": None}
    preparer = Preparer(ConnectJsonDecoder(), ConnectJsonDecoder(), RowMapper(rules))
    raw = RawRecord(
        Coord("dbserver1.inventory.t", 0, 0),
        json.dumps({"schema": key_schema, "payload": key}).encode(),
        json.dumps({"schema": schema, "payload": payload}).encode(),
    )
    result = preparer.prepare(raw)
    assert isinstance(result, Row), result
    return result


# ------------------------------------------------------------------------------ NULL vs column default


def test_a_null_column_with_a_default_stays_null() -> None:
    """Debezium puts a column's DEFAULT in its field schema (`default`). A row whose column is NULL
    is written by a source JsonConverter with replace.null.with.default=false (KIP-581, the setting
    that keeps NULLs) as `null`: the replica must hold NULL, not the column's default."""
    fields = [
        _field("id", "int32", optional=False),
        _field("status", "string", default="active"),
        _field("n", "int32", default=7),
    ]
    row = _prepare(fields, "c", None, {"id": 1, "status": None, "n": None})
    assert row.op is Op.UPSERT
    assert dict(row.values) == {"id": 1, "status": None, "n": None}
    # an update that nulls the column is applied as a NULL too
    row = _prepare(fields, "u", {"id": 1, "status": "blocked", "n": 3}, {"id": 1, "status": None, "n": None})
    assert dict(row.values) == {"id": 1, "status": None, "n": None}


def test_a_soft_delete_of_a_key_only_before_does_not_write_the_column_defaults() -> None:
    """REPLICA IDENTITY DEFAULT: a delete's `before` holds the key and nulls. A soft delete leaves
    the null fields out, so the row keeps its last values; a null read as its column's default was
    written over them."""
    fields = [
        _field("id", "int32", optional=False),
        _field("status", "string", default="active"),
        _field("n", "int32", default=7),
    ]
    rules = MappingRules(pk_mode="record_key", cdc_format="debezium", cdc_soft_delete=True)
    row = _prepare(fields, "d", {"id": 1, "status": None, "n": None}, None, rules)
    assert row.op is Op.UPSERT
    assert dict(row.values) == {"id": 1, "__deleted": True}


def test_a_field_the_payload_lacks_and_a_required_null_still_get_the_default() -> None:
    """What only the default can give stays as Connect's JsonConverter reads it: an absent field,
    and a null of a field that is not optional."""
    fields = [_field("id", "int32", optional=False), _field("status", "string", default="active")]
    assert dict(_prepare(fields, "c", None, {"id": 1}).values) == {"id": 1, "status": "active"}
    fields = [_field("id", "int32", optional=False), _field("level", "int32", optional=False, default=5)]
    assert dict(_prepare(fields, "c", None, {"id": 1, "level": None}).values) == {"id": 1, "level": 5}


# ------------------------------------------------------------------------------ io.debezium.data.Json


JSON_FIELDS = [_field("id", "int32", optional=False), _field("doc", "string", logical="io.debezium.data.Json")]


def test_a_json_column_keeps_its_numbers_exactly() -> None:
    """Debezium's Json is the source document's text; PostgreSQL's jsonb holds numbers as numeric,
    exactly. What the sink writes to the column must be the same document."""
    text = '{"price": 12345678901234567.89, "ratio": 0.1234567890123456789}'
    row = _prepare(JSON_FIELDS, "c", None, {"id": 1, "doc": text})
    written = json_dumps(row.values["doc"])  # what goes into the JSONB column
    assert json.loads(written, parse_float=Decimal) == json.loads(text, parse_float=Decimal)


def test_a_json_null_document_is_not_sql_null() -> None:
    """Debezium's Json holds "a JSON document, array, or scalar": jsonb 'null' arrives as the text
    `null`, which is a value of a NOT NULL jsonb column, not a missing one."""
    fields = [
        _field("id", "int32", optional=False),
        _field("doc", "string", optional=False, logical="io.debezium.data.Json"),
    ]
    row = _prepare(fields, "c", None, {"id": 1, "doc": "null"})
    assert row.values["doc"] is not None


# ------------------------------------------------------------------------------ temporal edges that match


def test_temporal_values_at_their_edges() -> None:
    """Before 1970, nanosecond precision (truncated to the microsecond, as documented), an offset,
    Year 0: each is the instant or value the source column held."""
    fields = [
        _field("id", "int32", optional=False),
        _field("d", "int32", logical="io.debezium.time.Date"),
        _field("ts", "int64", logical="io.debezium.time.Timestamp"),
        _field("mts", "int64", logical="io.debezium.time.MicroTimestamp"),
        _field("nts", "int64", logical="io.debezium.time.NanoTimestamp"),
        _field("zts", "string", logical="io.debezium.time.ZonedTimestamp"),
        _field("nt", "int64", logical="io.debezium.time.NanoTime"),
        _field("y", "int32", logical="io.debezium.time.Year"),
    ]
    after = {
        "id": 1,
        "d": -25567,  # 1900-01-01
        "ts": -1,  # 1969-12-31 23:59:59.999
        "mts": -1,
        "nts": -1_500,  # 1.5 µs before the epoch: its microsecond is 23:59:59.999998
        "zts": "1960-05-01T10:00:00.123456789+05:30",
        "nt": 86_399_999_999_999,
        "y": 0,
    }
    values = dict(_prepare(fields, "c", None, after).values)
    assert values == {
        "id": 1,
        "d": dt.date(1900, 1, 1),
        "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
        "mts": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        "nts": dt.datetime(1969, 12, 31, 23, 59, 59, 999998),
        "zts": dt.datetime(1960, 5, 1, 4, 30, 0, 123456, tzinfo=dt.UTC),
        "nt": dt.time(23, 59, 59, 999999),
        "y": 0,
    }
