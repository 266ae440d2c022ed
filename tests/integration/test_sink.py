"""The sink end to end in-process: real broker, real PostgreSQL and SQLite, the real worker.

Each test produces records, runs the worker built by `sink.cli.build_worker` until the consumer
group committed every record (so each record settled in the database), stops it as SIGTERM would
and compares the whole table with the state computed from the records.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import TargetDb
from tests.support.db import fetch_rows, primary_key, table_columns, table_exists
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for
from tests.support.runner import running_sink, sink_env

pytestmark = pytest.mark.integration


def run(
    bootstrap: str,
    db: TargetDb,
    topics: Sequence[str],
    ends: dict[str, dict[int, int]],
    group: str,
    **settings: Any,
) -> None:
    """Run the sink until the group committed `ends[topic][partition]` everywhere, then stop it."""
    env = sink_env(bootstrap, db.url, ",".join(topics), group, **settings)
    with running_sink(env) as sink:
        for topic, partition_ends in ends.items():
            sink.wait_committed(topic, partition_ends)


def sink_records(
    bootstrap: str,
    db: TargetDb,
    topic: str,
    records: Sequence[Mapping[str, Any]],
    group: str,
    partitions: int = 1,
    **settings: Any,
) -> None:
    """Create `topic`, produce `records` (dicts for `produce`) and run the sink until the group
    committed every one of them."""
    create_topic(bootstrap, topic, partitions=partitions)
    produce(bootstrap, topic, records)
    ends = Counter(record.get("partition", 0) for record in records)
    run(bootstrap, db, [topic], {topic: dict(ends)}, group, **settings)


def j(value: Any) -> str:
    return json.dumps(value)


def values(*documents: Any) -> list[dict[str, str]]:
    """Records with these JSON values and no key."""
    return [{"value": j(document)} for document in documents]


# ------------------------------------------------------------------------------ insert modes


def test_insert_mode_without_key_keeps_every_record(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table(unique_name)
    records = [{"id": i % 3, "name": f"n{i}", "score": i * 1.5, "ok": i % 2 == 0} for i in range(9)]
    sink_records(bootstrap_servers, db, table, values(*records), unique_name)
    rows = fetch_rows(db.url, table, order_by="name")
    assert sorted(rows, key=lambda r: r["name"]) == sorted(records, key=lambda r: r["name"])
    assert primary_key(db.url, table) == []


def test_upsert_with_tombstone_deletes(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table(unique_name)
    events: list[tuple[int, dict | None]] = [
        (1, {"name": "a", "qty": 1}),
        (2, {"name": "b", "qty": 2}),
        (1, {"name": "a2", "qty": 10}),
        (3, {"name": "c", "qty": 3}),
        (2, None),  # tombstone: delete 2
        (4, {"name": "d", "qty": 4}),
        (4, None),
        (4, {"name": "d2", "qty": 44}),  # deleted, then written again
        (5, None),  # tombstone for a key that never existed
        (3, {"name": "c2", "qty": 33}),
    ]
    expected: dict[int, dict] = {}
    for key, value in events:
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = {"id": key, **value}
    sink_records(
        bootstrap_servers,
        db,
        table,
        [{"key": j({"id": k}), "value": None if v is None else j(v)} for k, v in events],
        unique_name,
        key_format="json",
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
    )
    assert fetch_rows(db.url, table, order_by="id") == [expected[k] for k in sorted(expected)]
    assert primary_key(db.url, table) == ["id"]


def test_tombstones_are_skipped_without_delete(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table(unique_name)
    records = [{"key": "k1", "value": j({"v": 1})}, {"key": "k1", "value": None}, {"key": "k2", "value": j({"v": 2})}]
    sink_records(bootstrap_servers, db, table, records, unique_name, insert_mode="upsert", pk_mode="record_key")
    assert fetch_rows(db.url, table, order_by="__connect_key") == [
        {"__connect_key": "k1", "v": 1},
        {"__connect_key": "k2", "v": 2},
    ]


def test_update_mode_changes_existing_rows_only(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    topic = table = db.table(unique_name)
    metadata = sa.MetaData()
    existing = sa.Table(
        table,
        metadata,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text),
        sa.Column("qty", sa.BigInteger),
    )
    engine = sa.create_engine(db.url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(existing.insert(), [{"id": i, "name": f"old{i}", "qty": i} for i in (1, 2, 3)])
    finally:
        engine.dispose()
    updates = [
        {"id": 2, "name": "new2", "qty": 20},
        {"id": 9, "name": "new9", "qty": 90},  # no such row: update mode never inserts
        {"id": 3, "name": "new3", "qty": 30},
        {"id": 2, "name": "newer2", "qty": 21},
    ]
    sink_records(
        bootstrap_servers,
        db,
        topic,
        values(*updates),
        unique_name,
        insert_mode="update",
        pk_mode="record_value",
        pk_fields="id",
    )
    assert fetch_rows(db.url, table, order_by="id") == [
        {"id": 1, "name": "old1", "qty": 1},
        {"id": 2, "name": "newer2", "qty": 21},
        {"id": 3, "name": "new3", "qty": 30},
    ]


# ------------------------------------------------------------------------------ pk modes


def test_pk_mode_kafka_with_partitions(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    topic = table = db.table(unique_name)
    records = [{"value": j({"n": i}), "partition": i % 2} for i in range(6)]
    sink_records(bootstrap_servers, db, topic, records, unique_name, partitions=2, pk_mode="kafka")
    rows = fetch_rows(db.url, table, order_by=["__connect_partition", "__connect_offset"])
    assert rows == [
        {"__connect_topic": topic, "__connect_partition": p, "__connect_offset": o, "n": o * 2 + p}
        for p in (0, 1)
        for o in range(3)
    ]
    assert primary_key(db.url, table) == ["__connect_topic", "__connect_partition", "__connect_offset"]


# (records, settings, order_by, rows in the table, primary key or None when not checked)
UPSERT_BY_KEY = {
    "record_key_primitive": (
        [
            {"key": "order-1", "value": j({"qty": 1})},
            {"key": "order-2", "value": j({"qty": 2})},
            {"key": "order-1", "value": j({"qty": 3})},
        ],
        {"pk_mode": "record_key", "pk_fields": "order_id"},
        "order_id",
        [{"order_id": "order-1", "qty": 3}, {"order_id": "order-2", "qty": 2}],
        ["order_id"],
    ),
    "record_key_struct": (
        [
            {"key": j({"tenant": "a", "id": 1}), "value": j({"qty": 1})},
            {"key": j({"tenant": "b", "id": 1}), "value": j({"qty": 2})},
            {"key": j({"tenant": "a", "id": 1}), "value": j({"qty": 3})},
        ],
        {"key_format": "json", "pk_mode": "record_key"},
        "tenant",
        [{"tenant": "a", "id": 1, "qty": 3}, {"tenant": "b", "id": 1, "qty": 2}],
        ["tenant", "id"],
    ),
    "record_value": (
        values(
            {"sku": "x", "store": 1, "qty": 1},
            {"sku": "x", "store": 2, "qty": 2},
            {"sku": "x", "store": 1, "qty": 5},
        ),
        {"pk_mode": "record_value", "pk_fields": "sku,store"},
        "store",
        [{"sku": "x", "store": 1, "qty": 5}, {"sku": "x", "store": 2, "qty": 2}],
        ["sku", "store"],
    ),
    "record_header": (
        [
            {"value": j({"qty": 1}), "headers": {"tenant": "acme", "trace": "t1"}},
            {"value": j({"qty": 2}), "headers": {"tenant": "initech", "trace": "t2"}},
            {"value": j({"qty": 3}), "headers": {"tenant": "acme", "trace": "t3"}},
        ],
        {"pk_mode": "record_header", "pk_fields": "tenant"},
        "tenant",
        [{"tenant": "acme", "qty": 3}, {"tenant": "initech", "qty": 2}],
        None,
    ),
}


@pytest.mark.parametrize("case", list(UPSERT_BY_KEY))
def test_pk_mode_upserts_by_its_key(bootstrap_servers: str, db: TargetDb, unique_name: str, case: str) -> None:
    records, settings, order_by, rows, key = UPSERT_BY_KEY[case]
    table = db.table(unique_name)
    sink_records(bootstrap_servers, db, table, records, unique_name, insert_mode="upsert", **settings)
    assert fetch_rows(db.url, table, order_by=order_by) == rows
    if key is not None:
        assert primary_key(db.url, table) == key


def test_insert_mode_duplicate_key_with_tolerance_all_keeps_first(
    bootstrap_servers: str, db: TargetDb, unique_name: str
) -> None:
    table = db.table(unique_name)
    sink_records(
        bootstrap_servers,
        db,
        table,
        values({"id": 1, "v": "first"}, {"id": 2, "v": "two"}, {"id": 1, "v": "second"}, {"id": 3, "v": "three"}),
        unique_name,
        pk_mode="record_value",
        pk_fields="id",
        errors_tolerance="all",
    )
    assert fetch_rows(db.url, table, order_by="id") == [
        {"id": 1, "v": "first"},
        {"id": 2, "v": "two"},
        {"id": 3, "v": "three"},
    ], "an insert of an existing key fails on its own; it never overwrites"


# ------------------------------------------------------------------------------ tables


def test_auto_create_and_add_column_evolution(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    topic = table = db.table(unique_name)
    settings = {"insert_mode": "upsert", "pk_mode": "record_value", "pk_fields": "id", "auto_evolve": "true"}
    first = values({"id": 1, "name": "a"}, {"id": 2, "name": "b"})
    sink_records(bootstrap_servers, db, topic, first, unique_name, **settings)
    assert list(table_columns(db.url, table)) == ["id", "name"]

    later = values({"id": 3, "name": "c", "email": "c@x", "age": 30}, {"id": 1, "name": "a2", "age": 41})
    produce(bootstrap_servers, topic, later)
    run(bootstrap_servers, db, [topic], {topic: {0: 4}}, unique_name, **settings)
    columns = table_columns(db.url, table)
    assert list(columns) == ["id", "name", "email", "age"]
    assert columns["email"]["nullable"] and columns["age"]["nullable"]
    assert fetch_rows(db.url, table, order_by="id") == [
        {"id": 1, "name": "a2", "email": None, "age": 41},
        {"id": 2, "name": "b", "email": None, "age": None},
        {"id": 3, "name": "c", "email": "c@x", "age": 30},
    ]


def test_new_field_in_one_batch_with_old_records(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table(unique_name)
    records = values({"id": 1}, {"id": 2, "extra": "x"}, {"id": 3, "more": 1.5})
    sink_records(bootstrap_servers, db, table, records, unique_name, auto_evolve="true")
    assert fetch_rows(db.url, table, order_by="id") == [
        {"id": 1, "extra": None, "more": None},
        {"id": 2, "extra": "x", "more": None},
        {"id": 3, "extra": None, "more": 1.5},
    ]


def test_identifiers_that_need_quoting(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table("Select")
    documents = [
        {"user id": 1, 'x"y': "quote", "Über": "umlaut", "order": 1, "Mixed": True},
        {"user id": 2, 'x"y': "'; DROP TABLE x; --", "Über": "grüße", "order": 2, "Mixed": False},
        {"user id": 1, 'x"y': "quote2", "Über": "umlaut2", "order": 3, "Mixed": False},
    ]
    sink_records(
        bootstrap_servers,
        db,
        unique_name,
        values(*documents),
        unique_name,
        table_name_format="Select",
        insert_mode="upsert",
        pk_mode="record_value",
        pk_fields="user id",
    )
    assert list(table_columns(db.url, table)) == ["user id", 'x"y', "Über", "order", "Mixed"]
    assert primary_key(db.url, table) == ["user id"]
    assert fetch_rows(db.url, table, order_by="user id") == [documents[2], documents[1]]


def test_topic_name_that_needs_quoting_as_table(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table(f"Orders.{unique_name}-V2")
    sink_records(bootstrap_servers, db, table, values(*({"id": i} for i in range(3))), unique_name)
    assert fetch_rows(db.url, table, order_by="id") == [{"id": 0}, {"id": 1}, {"id": 2}]


def test_multi_partition_topic(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    table = db.table(unique_name)
    records = []
    expected: dict[str, int] = {}
    for i in range(60):
        key = f"k{i % 12}"
        partition = (i % 12) % 3  # a key always goes to the same partition, as a keyed producer does
        records.append({"key": key, "value": j({"n": i}), "partition": partition})
        expected[key] = i
    sink_records(
        bootstrap_servers,
        db,
        table,
        records,
        unique_name,
        partitions=3,
        insert_mode="upsert",
        pk_mode="record_key",
        batch_size=7,
    )
    rows = fetch_rows(db.url, table, order_by="__connect_key")
    assert {r["__connect_key"]: r["n"] for r in rows} == expected
    assert len(rows) == 12


def test_two_topics_into_two_tables(bootstrap_servers: str, db: TargetDb, unique_name: str) -> None:
    orders, customers = db.table(f"{unique_name}_orders"), db.table(f"{unique_name}_customers")
    create_topic(bootstrap_servers, orders)
    create_topic(bootstrap_servers, customers, partitions=2)
    produce(bootstrap_servers, orders, [{"value": j({"order": i, "total": i * 10})} for i in range(4)])
    produce(
        bootstrap_servers,
        customers,
        [{"value": j({"name": f"c{i}"}), "partition": i % 2} for i in range(5)],
    )
    run(
        bootstrap_servers,
        db,
        [orders, customers],
        {orders: {0: 4}, customers: {0: 3, 1: 2}},
        unique_name,
    )
    assert fetch_rows(db.url, orders, order_by="order") == [{"order": i, "total": i * 10} for i in range(4)]
    assert fetch_rows(db.url, customers, order_by="name") == [{"name": f"c{i}"} for i in range(5)]


def test_table_name_format_fans_topics_into_their_tables(
    bootstrap_servers: str, db: TargetDb, unique_name: str
) -> None:
    a, b = f"{unique_name}_a", f"{unique_name}_b"
    db.table(f"sink_{a}")
    db.table(f"sink_{b}")
    for topic in (a, b):
        create_topic(bootstrap_servers, topic)
        produce(bootstrap_servers, topic, values({"from": topic}))
    run(bootstrap_servers, db, [a, b], {a: {0: 1}, b: {0: 1}}, unique_name, table_name_format="sink_${topic}")
    assert fetch_rows(db.url, f"sink_{a}") == [{"from": a}]
    assert fetch_rows(db.url, f"sink_{b}") == [{"from": b}]


def test_missing_table_without_auto_create_stops_with_a_clear_error(
    bootstrap_servers: str, db: TargetDb, unique_name: str
) -> None:
    topic = db.table(unique_name)
    create_topic(bootstrap_servers, topic)
    produce(bootstrap_servers, topic, values({"id": 1}))
    env = sink_env(bootstrap_servers, db.url, topic, unique_name, auto_create="false")
    with running_sink(env, expect_exit=1) as sink:
        sink.thread.join(60)
        assert sink.exit_code == 1
    assert not table_exists(db.url, topic)
    assert committed_offsets(bootstrap_servers, unique_name, topic) == {0: None}


def test_float_for_an_inferred_integer_column_stops_instead_of_rounding(
    bootstrap_servers: str, db: TargetDb, unique_name: str
) -> None:
    topic = table = db.table(unique_name)
    sink_records(bootstrap_servers, db, topic, values({"id": 1, "price": 10}), unique_name, auto_evolve="true")
    produce(bootstrap_servers, topic, values({"id": 2, "price": 10.75}))
    env = sink_env(bootstrap_servers, db.url, topic, unique_name, auto_evolve="true")
    with running_sink(env, expect_exit=1) as sink:
        sink.thread.join(60)
    assert fetch_rows(db.url, table, order_by="id") == [{"id": 1, "price": 10}], "10.75 must never be stored as 11"
    assert committed_offsets(bootstrap_servers, unique_name, topic) == {0: 1}


def test_group_members_hand_partitions_over_without_rereading(
    bootstrap_servers: str, pg: TargetDb, unique_name: str
) -> None:
    """A second member joins mid-stream and leaves again: each rebalance flushes and commits what
    the member holds before its partitions move. Insert mode keyed by the Kafka coordinates fails
    (and exits 1) on any record read twice."""
    topic = pg.table(unique_name)
    create_topic(bootstrap_servers, topic, partitions=4)
    produced = dict.fromkeys(range(4), 0)
    stop_producing = threading.Event()

    def producer() -> None:
        n = 0
        while not stop_producing.is_set():
            chunk = [{"value": j({"n": n + i}), "partition": (n + i) % 4} for i in range(40)]
            produce(bootstrap_servers, topic, chunk)
            for record in chunk:
                produced[record["partition"]] += 1
            n += len(chunk)
            time.sleep(0.05)

    env = sink_env(bootstrap_servers, pg.url, topic, unique_name, insert_mode="insert", pk_mode="kafka", batch_size=20)
    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    try:
        with running_sink(env) as first:
            first.wait_committed(topic, dict.fromkeys(range(4), 40))
            with running_sink(env) as second:
                wait_for(lambda: second.worker.counters.commits > 0, 60, message="the second member got no work")
                wait_for(lambda: first.worker.counters.commits > 0, 5)
            stop_producing.set()
            thread.join(30)
            first.wait_committed(topic, produced)
            assert second.worker.counters.records_in > 0
    finally:
        stop_producing.set()
    rows = fetch_rows(pg.url, topic)
    total = sum(produced.values())
    assert len(rows) == total
    assert first.worker.counters.records_in + second.worker.counters.records_in == total, "no record read twice"


def test_tombstones_before_any_value_do_not_shape_the_table(
    bootstrap_servers: str, db: TargetDb, unique_name: str
) -> None:
    """A batch of deletes for a table that does not exist yet deletes nothing; it must not create
    a key-only table that the first real record then cannot be written to."""
    topic = table = db.table(unique_name)
    settings = {"insert_mode": "upsert", "pk_mode": "record_key", "delete_enabled": "true"}
    tombstones = [{"key": "k1", "value": None}, {"key": "k2", "value": None}]
    sink_records(bootstrap_servers, db, topic, tombstones, unique_name, **settings)
    produce(bootstrap_servers, topic, [{"key": "k1", "value": j({"name": "one", "qty": 1})}])
    run(bootstrap_servers, db, [topic], {topic: {0: 3}}, unique_name, **settings)
    assert fetch_rows(db.url, table) == [{"__connect_key": "k1", "name": "one", "qty": 1}]
