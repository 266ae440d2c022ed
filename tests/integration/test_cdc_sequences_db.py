"""Random Debezium histories through Preparer + Batcher + Writer, cut into random batches, end as the
source tables themselves (a model applying each change in turn): inserts, updates (with and without
`before`), deletes with their tombstones, primary-key changes (delete + tombstone + create),
snapshot reads, truncates (null key) between other tables' events, and records that are no rows
(heartbeats, schema changes, logical-decoding messages) on the same topics."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sink.adapters.db import SqlStore
from sink.batch import Batcher
from sink.formats.connect_json import ConnectJsonDecoder
from sink.formats.json_plain import JsonDecoder
from sink.model import Coord, Outcome, RawRecord, Row
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.support.db import drop_table, fetch_rows, table_exists
from tests.unit.test_cdc_sequences import MESSAGE, MESSAGE_KEY_SCHEMA, MESSAGE_SCHEMA

pytestmark = pytest.mark.integration

TOPICS = ("a", "b")


def _field(name: str, type_: str, optional: bool = True) -> dict[str, Any]:
    return {"field": name, "type": type_, "optional": optional}


ROW = [_field("id", "int32", False), _field("name", "string", False), _field("n", "int64")]
KEY_SCHEMA = {"type": "struct", "optional": False, "name": "srv.inv.t.Key", "fields": [_field("id", "int32", False)]}
SOURCE = [_field("connector", "string", False), _field("db", "string", False), _field("table", "string", False)]
SOURCE += [_field("lsn", "int64")]
ENVELOPE = {
    "type": "struct",
    "optional": False,
    "name": "srv.inv.t.Envelope",
    "fields": [
        {"type": "struct", "optional": True, "name": "srv.inv.t.Value", "field": "before", "fields": ROW},
        {"type": "struct", "optional": True, "name": "srv.inv.t.Value", "field": "after", "fields": ROW},
        {"type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source", "field": "source"}
        | {"fields": SOURCE},
        _field("op", "string", False),
        _field("ts_ms", "int64"),
    ],
}
HEARTBEAT = {
    "schema": {
        "type": "struct",
        "optional": False,
        "name": "io.debezium.connector.common.Heartbeat",
        "fields": [_field("ts_ms", "int64", False)],
    },
    "payload": {"ts_ms": 1},
}
SCHEMA_CHANGE = {
    "schema": {
        "type": "struct",
        "optional": False,
        "name": "io.debezium.connector.mysql.SchemaChangeValue",
        "fields": [
            {"type": "struct", "optional": False, "field": "source", "fields": SOURCE},
            _field("databaseName", "string"),
            _field("ddl", "string"),
        ],
    },
    "payload": {
        "source": {"connector": "mysql", "db": "inv", "table": "a", "lsn": 0},
        "databaseName": "inv",
        "ddl": "ALTER TABLE a ADD COLUMN z INT",
    },
}


class Source:
    """The source database: its tables' rows, and the Kafka records Debezium publishes for each
    change, as (topic, key, value) with key and value the payloads (None: a null key or value)."""

    def __init__(self, rng: random.Random, soft: bool, truncates: bool = True) -> None:
        self.rng = rng
        self.soft = soft
        self.truncates = truncates
        self.rows: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in TOPICS}
        self.gone: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in TOPICS}  # soft-deleted rows
        self.events: list[tuple[str, Any, Any]] = []
        self.lsn = 0
        self.version: dict[tuple[str, int], int] = {}  # (topic, id) -> lsn of the row's last upsert
        self.kinds: set[str] = set()  # what the history holds (the tests check their seeds cover it)

    def _emit(self, topic: str, key: Any, op: str, before: Any = None, after: Any = None) -> None:
        self.lsn += 1
        source = {"connector": "postgresql", "db": "inv", "table": topic, "lsn": self.lsn}
        value = {"before": before, "after": after, "source": source, "op": op, "ts_ms": self.lsn}
        if after is not None:
            self.version[topic, after["id"]] = self.lsn
        self.events.append((topic, key, value))

    def _new_row(self, i: int) -> dict[str, Any]:
        n = self.rng.choice([None, self.rng.randrange(1000)])
        return {"id": i, "name": f"r{i}-{self.lsn}", "n": n}

    def _before(self, row: dict[str, Any]) -> dict[str, Any] | None:
        # REPLICA IDENTITY FULL (the whole row), DEFAULT (updates: none), a hard delete: key only.
        return row if self.soft or self.rng.random() < 0.5 else None

    def step(self) -> None:
        topic = self.rng.choice(TOPICS)
        rows = self.rows[topic]
        i = self.rng.randrange(1, 6)
        roll = self.rng.random()
        if roll < 0.05:
            self.events.append((topic, None, self.rng.choice(["heartbeat", "schema change"])))
            self.kinds.add("noise")
        elif roll < 0.08 and self.truncates:
            rows.clear()
            self.gone[topic].clear()
            self._emit(topic, None, "t")
            self.kinds.add("truncate")
        elif roll < 0.10:
            self.events.append((topic, {"prefix": "audit"}, "message"))
            self.kinds.add("message")
        elif i not in rows:
            rows[i] = self._new_row(i)
            self.gone[topic].pop(i, None)
            self._emit(topic, {"id": i}, self.rng.choice("cr"), None, rows[i])
            self.kinds.add("create")
        elif roll < 0.45:
            before = rows[i]
            rows[i] = {**before, "name": f"u{i}-{self.lsn}", "n": self.rng.choice([None, self.lsn])}
            self._emit(topic, {"id": i}, self.rng.choice("uuur"), self._before(before), rows[i])
            self.kinds.add("update")
        elif roll < 0.7:
            self._delete(topic, i)
            self.kinds.add("delete")
        else:  # a primary-key change: a delete of the old key, its tombstone, a create of the new
            new = self.rng.choice([k for k in range(1, 7) if k not in rows] or [None])
            if new is None:
                return
            row = self._delete(topic, i)
            rows[new] = {**row, "id": new}
            self.gone[topic].pop(new, None)
            self._emit(topic, {"id": new}, "c", None, rows[new])
            self.kinds.add("pk change")

    def _delete(self, topic: str, i: int) -> dict[str, Any]:
        row = self.rows[topic].pop(i)
        # REPLICA IDENTITY FULL (the whole row) or DEFAULT: the key, nullable columns null, required
        # ones Debezium's fallback ("" for the NOT NULL `name`). A soft delete keeps the nullable
        # columns' last values (a key-only `before` wrote its nulls over them); the fallback of a
        # required column is written (it cannot be told from a value). Without any `before`, the
        # key-and-flag upsert would break the NOT NULL `name`.
        full = self.rng.random() < 0.5
        before = row if full else {"id": i, "name": "", "n": None}
        self.gone[topic][i] = row if full else {**row, "name": ""}
        self._emit(topic, {"id": i}, "d", before, None)
        self.events.append((topic, {"id": i}, None))
        return row

    def state(self, topic: str, versioned: bool = False) -> list[dict[str, Any]]:
        if versioned:
            rows = self.rows[topic]
            return [{**rows[i], "__source_lsn": self.version[topic, i]} for i in sorted(rows)]
        if not self.soft:
            return [self.rows[topic][i] for i in sorted(self.rows[topic])]
        live = {i: {**r, "__deleted": False} for i, r in self.rows[topic].items()}
        dead = {i: {**r, "__deleted": True} for i, r in self.gone[topic].items()}
        both = {**dead, **live}
        return [both[i] for i in sorted(both)]


def _encode(fmt: str, key: Any, value: Any) -> tuple[bytes | None, bytes | None]:
    if value == "heartbeat":
        return None, json.dumps(HEARTBEAT if fmt == "connect_json" else HEARTBEAT["payload"]).encode()
    if value == "schema change":
        return None, json.dumps(SCHEMA_CHANGE if fmt == "connect_json" else SCHEMA_CHANGE["payload"]).encode()
    if value == "message":  # a logical-decoding message, as it is (ExtractNewRecordState passes it)
        if fmt == "connect_json":
            key = {"schema": MESSAGE_KEY_SCHEMA, "payload": key}
            return json.dumps(key).encode(), json.dumps({"schema": MESSAGE_SCHEMA, "payload": MESSAGE}).encode()
        return json.dumps(key).encode(), json.dumps(MESSAGE).encode()
    if fmt == "flat":  # ExtractNewRecordState, delete.handling.mode=rewrite (schemaless; no truncates here)
        if value is not None:
            row = value["after"] if value["op"] != "d" else value["before"]
            value = {**row, "__deleted": "true" if value["op"] == "d" else "false"}
        fmt = "json"
    if fmt == "json":
        k = None if key is None else json.dumps(key).encode()
        v = None if value is None else json.dumps(value).encode()
        return k, v
    k = None if key is None else json.dumps({"schema": KEY_SCHEMA, "payload": key}).encode()
    v = None if value is None else json.dumps({"schema": ENVELOPE, "payload": value}).encode()
    return k, v


def _replay(
    store: SqlStore, name: str, fmt: str, source: Source, rng: random.Random, start: int = 0, **rules: Any
) -> None:
    """Events from `start` on, through a new sink (a restart replays from a committed offset)."""
    decoder = ConnectJsonDecoder() if fmt == "connect_json" else JsonDecoder()
    rules = {"table_name_format": name + "_${topic}", "pk_mode": "record_key", **rules}
    mapping = MappingRules(cdc_format="debezium", truncate_enabled=True, **rules)
    preparer = Preparer(decoder, decoder, RowMapper(mapping))
    version = rules.get("version_field")
    writer = Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True, version_field=version))
    events = source.events
    offset = start
    while offset < len(events):
        size = rng.choice([1, 2, 3, 5, 8, 13, 40])
        batcher = Batcher(100_000, 60_000, lambda: 0.0)
        closed = []
        for topic, key, value in events[offset : offset + size]:
            k, v = _encode(fmt, key, value)
            prepared = preparer.prepare(RawRecord(Coord(topic, 0, offset), k, v))
            offset += 1
            if isinstance(prepared, Outcome):
                assert prepared.operation == "skip", prepared
                continue
            assert isinstance(prepared, Row)
            closed += batcher.add(prepared)
        for batch in closed + batcher.drain():
            outcomes = writer.write(batch)
            assert all(o.status.name != "FAILED" for o in outcomes), outcomes


ALL_KINDS = {"noise", "truncate", "message", "create", "update", "delete", "pk change"}


def _history(rng: random.Random, soft: bool = False, truncates: bool = True) -> Source:
    source = Source(rng, soft, truncates)
    for _ in range(50):
        source.step()
    assert source.kinds == ALL_KINDS - (set() if truncates else {"truncate"}), "a seed that covers every kind"
    return source


def _tables(name: str) -> list[str]:
    return [f"{name}_{t}" for t in TOPICS]


def _check(url: str, name: str, source: Source, versioned: bool = False) -> None:
    for topic, table in zip(TOPICS, _tables(name), strict=True):
        expected = source.state(topic, versioned)
        if not expected and not table_exists(url, table):
            continue  # nothing ever written there (or only deletes, which create no table)
        got = fetch_rows(url, table, order_by="id")
        if source.soft:
            got = [{**r, "__deleted": bool(r["__deleted"])} for r in got]  # MariaDB/SQLite: 0/1
        assert got == expected, (topic, source.events)


@pytest.fixture
def tables(url: str, unique_name: str) -> Any:
    for table in _tables(unique_name):
        drop_table(url, table)
    yield unique_name
    for table in _tables(unique_name):
        drop_table(url, table)


VARIANTS = {
    "key": {"delete_enabled": True},  # tombstones delete again (idempotent)
    "key_no_tombstones": {"delete_enabled": False},  # tombstones skipped: the delete event did the work
    "value": {"pk_mode": "record_value", "pk_fields": ("id",)},  # deletes keyed by `before`
    "source_table": {"delete_enabled": True, "table_name_format": "{name}_${source.table}"},  # tombstones skipped
}


@pytest.mark.parametrize(
    ("fmt", "seed", "variant"),
    [
        ("connect_json", 4, "key"),
        ("connect_json", 5, "source_table"),
        ("json", 7, "key_no_tombstones"),
        ("json", 8, "value"),
        ("flat", 1, "key"),
        ("flat", 2, "value"),
    ],
)
def test_random_histories_in_random_batches_end_as_the_source(
    store: SqlStore, url: str, tables: str, fmt: str, seed: int, variant: str
) -> None:
    """Then a restart replays a random tail of the history again: the same final state. `flat`:
    the events flattened by ExtractNewRecordState's rewrite mode (`__deleted`), which drops
    truncates and messages (so the source makes none)."""
    rng = random.Random(seed)
    rules: dict[str, Any] = dict(VARIANTS[variant])
    if "table_name_format" in rules:
        rules["table_name_format"] = rules["table_name_format"].replace("{name}", tables)
    source = _history(rng, truncates=fmt != "flat")
    _replay(store, tables, fmt, source, rng, **rules)
    _check(url, tables, source)
    _replay(store, tables, fmt, source, rng, start=rng.randrange(len(source.events)), **rules)
    _check(url, tables, source)


@pytest.mark.parametrize(("fmt", "seed"), [("connect_json", 9), ("json", 13)])
def test_random_histories_with_the_source_lsn_as_version(
    store: SqlStore, url: str, tables: str, fmt: str, seed: int
) -> None:
    """SINK_UPSERT_VERSION_FIELD=__source_lsn (add.fields source.lsn): tombstones skipped, a delete
    carries its event's lsn; a restart's replay of older events changes nothing."""
    rng = random.Random(seed)
    source = _history(rng)
    rules = {"delete_enabled": True, "cdc_add_fields": ("source.lsn",), "version_field": "__source_lsn"}
    _replay(store, tables, fmt, source, rng, **rules)
    _check(url, tables, source, versioned=True)
    _replay(store, tables, fmt, source, rng, start=rng.randrange(len(source.events)), **rules)
    _check(url, tables, source, versioned=True)


@pytest.mark.parametrize(("fmt", "seed"), [("connect_json", 4), ("json", 2)])
def test_random_histories_with_soft_deletes(store: SqlStore, url: str, tables: str, fmt: str, seed: int) -> None:
    """REPLICA IDENTITY FULL or DEFAULT: a deleted row stays, as it was, flagged; a re-created key is
    live again; a truncate empties the table (the flagged rows too)."""
    rng = random.Random(seed)
    source = _history(rng, soft=True)
    _replay(store, tables, fmt, source, rng, delete_enabled=True, cdc_soft_delete=True)
    _check(url, tables, source)
