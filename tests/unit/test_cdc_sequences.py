"""Debezium records as the connectors really write them, beyond row changes: PostgreSQL's
logical-decoding message events (`op` = `m`, a `message` block and no `before`/`after`) are no rows.
And a random history of one key folded in one batch ends as its last event says (row level)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.model import Coord, Op, Outcome, RawRecord, Row, Status
from sink.pipeline import Preparer
from sink.transforms import MappingRules, RowMapper

SOURCE = {"version": "2.7.0.Final", "connector": "postgresql", "name": "srv", "ts_ms": 1, "db": "inv", "table": ""}
SOURCE_FIELDS = [{"field": f, "type": "string", "optional": True} for f in ("version", "connector", "name", "db")]
SOURCE_FIELDS += [{"field": "ts_ms", "type": "int64", "optional": False}]
SOURCE_FIELDS += [{"field": "table", "type": "string", "optional": True}]

# io.debezium.connector.postgresql.LogicalDecodingMessageMonitor: value and key of a message event
# (pg_logical_emit_message), on the `<topic.prefix>.message` topic.
MESSAGE_SCHEMA = {
    "type": "struct",
    "optional": False,
    "name": "io.debezium.connector.postgresql.MessageValue",
    "fields": [
        {"field": "op", "type": "string", "optional": False},
        {"field": "ts_ms", "type": "int64", "optional": True},
        {
            "field": "source",
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.postgresql.Source",
            "fields": SOURCE_FIELDS,
        },
        {
            "field": "message",
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.postgresql.Message",
            "fields": [
                {"field": "prefix", "type": "string", "optional": True},
                {"field": "content", "type": "bytes", "optional": True},
            ],
        },
    ],
}
MESSAGE = {"op": "m", "ts_ms": 2, "source": SOURCE, "message": {"prefix": "audit", "content": "aGk="}}
MESSAGE_KEY_SCHEMA = {
    "type": "struct",
    "optional": True,
    "name": "io.debezium.connector.postgresql.MessageKey",
    "fields": [{"field": "prefix", "type": "string", "optional": True}],
}


def _prepare(rules: MappingRules, fmt: str, key: Any, value: Any, topic: str = "srv.message") -> Row | Outcome:
    decoder = JsonDecoder() if fmt == "json" else ConnectJsonDecoder()
    preparer = Preparer(decoder, decoder, RowMapper(rules))
    return preparer.prepare(RawRecord(Coord(topic, 0, 0), _body(key), _body(value)))


def _body(value: Any) -> bytes | None:
    return None if value is None else json.dumps(value).encode()


@pytest.mark.parametrize("fmt", ["json", "connect_json"])
def test_a_logical_decoding_message_event_is_skipped_not_written_as_a_row(fmt: str) -> None:
    """README: `op` = `m` (message) is skipped. Debezium's message events carry `message`, not
    `before`/`after`, so they were taken for flattened rows: a table of `op`, `source`, `message`
    columns, one row per prefix."""
    key: Any = {"prefix": "audit"}
    value: Any = MESSAGE
    if fmt == "connect_json":
        key = {"schema": MESSAGE_KEY_SCHEMA, "payload": key}
        value = {"schema": MESSAGE_SCHEMA, "payload": value}
    result = _prepare(MappingRules(pk_mode="record_key", cdc_format="debezium"), fmt, key, value)
    assert isinstance(result, Outcome), result
    assert (result.status, result.operation) == (Status.SKIPPED, "skip")


def test_a_message_event_named_by_its_schema_is_skipped_in_auto_mode_too() -> None:
    key = {"schema": MESSAGE_KEY_SCHEMA, "payload": {"prefix": "audit"}}
    value = {"schema": MESSAGE_SCHEMA, "payload": MESSAGE}
    result = _prepare(MappingRules(pk_mode="record_key", cdc_format="auto"), "connect_json", key, value)
    assert isinstance(result, Outcome) and result.status is Status.SKIPPED


def test_a_message_event_under_another_schema_name_is_skipped_by_its_fields() -> None:
    """A schema name adjusted or lost on the way (another converter): `op`, `source` and
    `message` without `before`/`after` is still a message event for `debezium`."""
    key = {"schema": MESSAGE_KEY_SCHEMA, "payload": {"prefix": "audit"}}
    value = {"schema": {**MESSAGE_SCHEMA, "name": "srv.message.Value"}, "payload": MESSAGE}
    result = _prepare(MappingRules(pk_mode="record_key", cdc_format="debezium"), "connect_json", key, value)
    assert isinstance(result, Outcome) and result.status is Status.SKIPPED


def test_auto_mode_keeps_a_schemaless_row_with_a_message_field() -> None:
    """Schemaless, only `debezium` (every record a change event) reads such a value as a message."""
    row = _prepare(
        MappingRules(pk_mode="record_key", cdc_format="auto"),
        "json",
        {"id": 1},
        {"id": 1, "op": "m", "source": "web", "message": "hello"},
        topic="t",
    )
    assert isinstance(row, Row) and row.op is Op.UPSERT
    assert dict(row.values) == {"id": 1, "op": "m", "source": "web", "message": "hello"}


@pytest.mark.parametrize(
    "marker",
    [
        {
            "status": "BEGIN",
            "id": "571:53195829",
            "ts_ms": 1486500577125,
            "event_count": None,
            "data_collections": None,
        },
        {
            "status": "END",
            "id": "571:53195829",
            "ts_ms": 1486500577691,
            "event_count": 2,
            "data_collections": [
                {"data_collection": "s1.a", "event_count": 1},
                {"data_collection": "s1.b", "event_count": 1},
            ],
        },
    ],
)
def test_a_schemaless_transaction_marker_is_skipped_like_its_schemad_form(marker: dict[str, Any]) -> None:
    """Debezium's transaction metadata (`<topic.prefix>.transaction`, picked up by a
    SINK_TOPICS_REGEX like `srv\\..*`) is skipped when its schema names it; schemaless it was a
    row of `status`, `id`, `event_count`... in a table of its own."""
    rules = MappingRules(pk_mode="record_key", cdc_format="debezium")
    result = _prepare(rules, "json", {"id": marker["id"]}, marker, topic="srv.transaction")
    assert isinstance(result, Outcome) and result.status is Status.SKIPPED, result


def test_a_row_with_a_status_field_is_still_a_row() -> None:
    rules = MappingRules(pk_mode="record_key", cdc_format="debezium")
    row = _prepare(rules, "json", {"id": 7}, {"id": 7, "status": "BEGIN", "ts_ms": 5}, topic="t")
    assert isinstance(row, Row) and dict(row.values) == {"id": 7, "status": "BEGIN", "ts_ms": 5}


# ------------------------------------------------------------------------------ one key, one batch


def _history(rng: random.Random, length: int) -> tuple[list[tuple[Any, Any]], dict[str, Any] | None]:
    """Events of key 1 (schemaless): creates, snapshot reads, updates (with or without `before`),
    deletes with their tombstones; and the row the source ends with (None: deleted)."""
    row: dict[str, Any] | None = None
    events: list[tuple[Any, Any]] = []
    for n in range(length):
        source = {"connector": "postgresql", "db": "inv", "table": "t", "lsn": n}
        if row is None:
            row = {"id": 1, "v": n}
            events.append(({"id": 1}, {"before": None, "after": row, "source": source, "op": rng.choice("cr")}))
        elif rng.random() < 0.5:
            before = rng.choice([row, None])
            row = {"id": 1, "v": n}
            events.append(({"id": 1}, {"before": before, "after": row, "source": source, "op": rng.choice("ur")}))
        else:
            before = rng.choice([row, {"id": 1, "v": None}, None])
            events.append(({"id": 1}, {"before": before, "after": None, "source": source, "op": "d"}))
            events.append(({"id": 1}, None))
            row = None
    return events, row


@pytest.mark.parametrize("seed", range(40))
def test_a_keys_events_replayed_in_order_end_as_the_last_says(seed: int) -> None:
    """Rows the mapper makes of one key's history, applied in order, give the source's row; an
    in-order replay is what the batch fold must reproduce (tests/integration/test_cdc_sequences_db.py
    checks the fold on the databases)."""
    rng = random.Random(seed)
    events, final = _history(rng, rng.randrange(1, 12))
    rules = MappingRules(pk_mode="record_key", cdc_format="debezium", delete_enabled=rng.random() < 0.5)
    preparer = Preparer(JsonDecoder(), JsonDecoder(), RowMapper(rules))
    table: dict[Any, dict[str, Any]] = {}
    for offset, (key, value) in enumerate(events):
        result = preparer.prepare(RawRecord(Coord("t", 0, offset), _body(key), _body(value)))
        if isinstance(result, Outcome):
            assert value is None and not rules.delete_enabled  # only a tombstone may be skipped
            continue
        assert dict(result.key) == {"id": 1}
        if result.op is Op.DELETE:
            table.pop(1, None)
        else:
            assert result.op is Op.UPSERT
            table[1] = dict(result.values)
    assert table.get(1) == final
