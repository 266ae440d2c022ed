"""A batch ends as its records applied one by one, on real databases (PostgreSQL on both paths,
MariaDB, SQLite): the cases `tests/unit/test_batch_equivalence.py` found against its model."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlStore
from sink.batch import Batcher
from sink.errors import SchemaRefused
from sink.formats.json_plain import JsonDecoder
from sink.model import Coord, Outcome, RawRecord, Row, Status
from sink.pipeline import Preparer, Writer, WriteRules
from sink.transforms import MappingRules, RowMapper
from tests.support.db import drop_table, fetch_rows

pytestmark = pytest.mark.integration


class Sink:
    """Schemaless JSON records (each carries only its own fields), one Writer, batch by batch."""

    def __init__(
        self,
        store: SqlStore,
        table: str,
        version: str | None = None,
        mode: str = "upsert",
        key_column_name: str | None = "id",
    ) -> None:
        rules = MappingRules(
            table_name_format=table,
            pk_mode="record_key",
            key_column_name=key_column_name,
            version_field=version,
            delete_enabled=True,
        )
        self.preparer = Preparer(JsonDecoder(), JsonDecoder(), RowMapper(rules))
        rules_w = WriteRules(
            mode,  # type: ignore[arg-type]
            auto_create=True,
            auto_evolve=True,
            version_field=version,
            loose_string_keys=store.dialect.loose_string_keys,
        )
        self.writer = Writer(store, rules_w)
        self.offset = 0

    def batch(self, *records: tuple[Any, dict[str, Any] | None]) -> list[Outcome]:
        batcher = Batcher(100_000, 60_000, lambda: 0.0)
        for key, value in records:
            body = None if value is None else json.dumps(value).encode()
            raw = RawRecord(Coord("t", 0, self.offset), json.dumps(key).encode(), body)
            self.offset += 1
            row = self.preparer.prepare(raw)
            assert isinstance(row, Row), row
            assert batcher.add(row) == []
        batches = batcher.drain()
        return [o for b in batches for o in self.writer.write(b)]


def test_a_newer_partial_write_does_not_carry_an_older_skipped_writes_fields(
    store: SqlStore, name: str, url: str
) -> None:
    """Stored version 5. Version 3 (stale, skipped) sets `note`; version 7 sets only `extra`. One by
    one `note` keeps its stored value; a unit that merged both wrote version 3's `note`."""
    sink = Sink(store, name, version="v")
    sink.batch((1, {"v": 5, "note": "stored", "extra": "stored"}))
    outcomes = sink.batch((1, {"v": 3, "note": "old"}), (1, {"v": 7, "extra": "new"}))
    assert [o.operation for o in outcomes] == ["skip", "update"]
    assert fetch_rows(url, name, order_by="id") == [{"id": 1, "v": 7, "note": "stored", "extra": "new"}]
    # With nothing stored, both records apply in turn.
    sink.batch((2, {"v": 3, "note": "old"}), (2, {"v": 7, "extra": "new"}))
    assert fetch_rows(url, name, order_by="id")[1] == {"id": 2, "v": 7, "note": "old", "extra": "new"}


def both_ways(
    store: SqlStore, url: str, name: str, records: list[tuple[Any, dict[str, Any] | None]], **sink: Any
) -> tuple[Any, Any]:
    """The table after `records` as one batch, and after each record in a batch of its own (in a
    second table, seeded alike with the first record)."""
    single = name + "_1"
    drop_table(url, single)
    try:
        batch, alone = Sink(store, name, **sink), Sink(store, single, **sink)
        batch.batch(records[0])
        alone.batch(records[0])
        batch.batch(*records[1:])
        for r in records[1:]:
            alone.batch(r)
        return fetch_rows(url, name, order_by="id"), fetch_rows(url, single, order_by="id")
    finally:
        drop_table(url, single)


@pytest.mark.parametrize("written", ["A", "á", "a "])
def test_keys_that_differ_in_case_accent_or_trailing_space_are_two_keys(
    store: SqlStore, name: str, url: str, written: str
) -> None:
    """MariaDB's default collation (utf8mb4_general_ci) made 'A', 'á' and 'a' one key: one row for
    several Kafka keys, and a batch (its units keyed as Python compares) disagreeing with the
    database: the upsert of 'A' survived the later delete of 'a', which one by one removed it.
    String key columns are created in a binary collation now, without padding on MariaDB
    (utf8mb4_nopad_bin): 'a ' and 'a' are two keys there too."""
    records = [("seed", {"note": "x"}), (written, {"note": "written"}), ("a", None)]
    batched_rows, alone = both_ways(store, url, name, records)
    assert batched_rows == alone
    assert sorted(r["id"] for r in alone) == sorted(["seed", written]), "the delete of 'a' deletes no other key"


def test_a_key_given_as_text_and_as_a_number(store: SqlStore, name: str, url: str) -> None:
    """Key 1 written, then a tombstone with key "1" (text, as another producer may send it): the
    databases cast "1" to the integer key column, one row. The batch kept them two units of one
    segment, so the delete ran first and the row survived (the tombstone reported deleted); the
    two keys are now apart, in record order (`sink.keys`)."""
    records = [(0, {"note": "seed"}), (1, {"note": "first"}), ("1", None)]
    batched_rows, alone = both_ways(store, url, name, records)
    assert batched_rows == alone


def test_a_key_with_a_field_the_tables_primary_key_lacks(store: SqlStore, name: str, url: str) -> None:
    """Schemaless keys {"id": 1} then (a tombstone) {"id": 1, "b": 2}: the table's primary key is
    `id`, so the database deletes row 1 by `id` alone; the batch keys its units by every field of
    the record's key, made two, and ran the delete first: row 1 survived (reported deleted)."""
    records: list[tuple[Any, dict[str, Any] | None]] = [
        ({"id": 0}, {"note": "seed"}),
        ({"id": 1}, {"note": "x"}),
        ({"id": 1, "b": 2}, None),
    ]
    batched_rows, alone = both_ways(store, url, name, records, key_column_name=None)
    assert [r["id"] for r in batched_rows] == [r["id"] for r in alone] == [0]


@pytest.mark.parametrize("version", [None, "v"])
def test_random_batches_end_as_their_records_one_by_one(
    store: SqlStore, name: str, url: str, version: str | None
) -> None:
    """Small random batches of schemaless upserts (each with some of the fields, versions missing,
    null or numbers) and tombstones, over a few integer keys: the table after the batch equals
    the table after each record in a batch of its own."""
    rng = random.Random(f"db-{version}")
    seed = (0, {"a": "seed", "b": "seed", "v": 0})
    for n in range(4):
        records: list[tuple[Any, dict[str, Any] | None]] = [(k, {"a": "s", "b": "s", "v": 2}) for k in range(4)]
        for _ in range(rng.randrange(4, 12)):
            key = rng.randrange(4)
            if rng.random() < 0.15:
                records.append((key, None))
                continue
            value: dict[str, Any] = {f: rng.choice(["p", "q", None]) for f in "ab" if rng.random() < 0.6}
            if rng.random() < 0.8:
                value["v"] = rng.choice([None, 1, 2, 3, 4])
            records.append((key, value))
        table = f"{name}_{n}"
        drop_table(url, table)
        try:
            batch, alone = Sink(store, table, version=version), Sink(store, table + "_1", version=version)
            for sink in (batch, alone):
                sink.batch(seed)
                sink.batch(*records[:4])  # the stored rows (version 2)
            batch.batch(*records[4:])
            for r in records[4:]:
                alone.batch(r)
            got, want = fetch_rows(url, table, order_by="id"), fetch_rows(url, table + "_1", order_by="id")
            assert got == want, records
        finally:
            drop_table(url, table)
            drop_table(url, table + "_1")


def test_a_tombstone_whose_key_the_table_cannot_take_is_refused_not_retried_forever(
    store: SqlStore, name: str, url: str
) -> None:
    """A schemaless tombstone keyed 2.5 for a bigint key column: the batch it opens asks for a key
    column change the sink never makes. It was written again and again until a RecursionError
    stopped the sink (at every restart); now the tombstone is the record refused, with the reason,
    and the records around it are written."""
    sink = Sink(store, name)
    sink.batch((1, {"note": "kept"}))
    (refused,) = sink.batch((2.5, None))
    assert refused.status is Status.FAILED and isinstance(refused.error, SchemaRefused), refused
    assert "id" in str(refused.error)
    outcomes = sink.batch((2, {"note": "after"}), (1, None))
    assert [o.status for o in outcomes] == [Status.WRITTEN, Status.DELETED]
    assert fetch_rows(url, name, order_by="id") == [{"id": 2, "note": "after"}]


def test_a_key_holding_an_array_is_judged_by_the_database_not_a_crash(store: SqlStore, name: str, url: str) -> None:
    """A JSON key {"id": [1, 2]} made every batch holding it raise TypeError (a bug to the worker:
    exit 1 at every restart, whatever errors.tolerance). Now the batch is written: each record
    gets one outcome (a record error for the array key, which no key column holds), and the
    other records land."""
    sink = Sink(store, name, key_column_name=None)
    sink.batch(({"id": 0}, {"note": "seed"}))
    outcomes = sink.batch(({"id": [1, 2]}, {"note": "x"}), ({"id": 3}, {"note": "y"}), ({"id": [1, 2]}, {"note": "z"}))
    by_offset = {o.raw.coord.offset: o for o in outcomes}
    assert sorted(by_offset) == [1, 2, 3] and len(outcomes) == 3, "one outcome per record"
    for offset in (1, 3):  # the array key: the row's error (no key column holds an array)
        assert by_offset[offset].status is Status.FAILED and by_offset[offset].error is not None
    assert by_offset[2].status is Status.WRITTEN
    assert fetch_rows(url, name, order_by="id") == [{"id": 0, "note": "seed"}, {"id": 3, "note": "y"}]


def test_keys_one_in_a_case_insensitive_table_the_user_made(mariadb_url: str, unique_name: str) -> None:
    """An existing MariaDB table keyed by a utf8mb4_general_ci column: 'A' and 'a' are one row
    there. Write 'A', then a tombstone for 'a': one by one the row is gone; a batch that kept the
    two keys in one segment ran the delete first and kept it."""
    url, name = mariadb_url, unique_name
    single = name + "_1"
    engine = sa.create_engine(url)
    store = SqlStore(engine)
    try:
        with engine.begin() as conn:
            for table in (name, single):
                conn.exec_driver_sql(
                    f"CREATE TABLE `{table}` (id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci "
                    "NOT NULL PRIMARY KEY, note TEXT)"
                )
        batch, alone = Sink(store, name), Sink(store, single)
        records: list[tuple[Any, dict[str, Any] | None]] = [("seed", {"note": "x"}), ("A", {"note": "A"}), ("a", None)]
        batch.batch(*records)
        for r in records:
            alone.batch(r)
        assert fetch_rows(url, single, order_by="id") == [{"id": "seed", "note": "x"}]
        assert fetch_rows(url, name, order_by="id") == fetch_rows(url, single, order_by="id")
    finally:
        drop_table(url, name)
        drop_table(url, single)
        engine.dispose()


def test_mariadb_compares_no_key_across_classes(mariadb_url: str, unique_name: str) -> None:
    """MariaDB compares a string column with a number as numbers and a numeric column with a string
    by its numeric prefix: a tombstone keyed 0 deleted every string key without a numeric prefix
    ('alice', 'bob'), one keyed 'abc' row 0 and '1_0' row 1. A number for a string key now goes as
    its text; a string for a numeric key as its number, or is the record's error."""
    url, texts, numbers = mariadb_url, unique_name, unique_name + "_n"
    engine = sa.create_engine(url)
    store = SqlStore(engine)
    try:
        by_text = Sink(store, texts)
        by_text.batch(("alice", {"note": "a"}), ("bob", {"note": "b"}), ("0", {"note": "zero"}))
        outcomes = by_text.batch(("carol", {"note": "c"}), (0, None))  # opened by a string key: one spec
        assert [o.status for o in outcomes] == [Status.WRITTEN, Status.DELETED]
        assert [r["id"] for r in fetch_rows(url, texts, order_by="id")] == ["alice", "bob", "carol"]

        by_number = Sink(store, numbers)
        by_number.batch(*((i, {"note": str(i)}) for i in (0, 1, 10, 11)))
        outcomes = by_number.batch((2, {"note": "2"}), ("abc", None), ("1_0", None), (" 10 ", None), ("1.1e1", None))
        assert [o.status for o in outcomes] == [Status.WRITTEN, Status.FAILED, Status.FAILED] + [Status.DELETED] * 2
        assert all("no number" in str(o.error) for o in outcomes[1:3]), outcomes
        assert [r["id"] for r in fetch_rows(url, numbers, order_by="id")] == [0, 1, 2]
    finally:
        drop_table(url, texts)
        drop_table(url, numbers)
        engine.dispose()


@pytest.mark.parametrize("bulk", [None, 1], ids=["executemany", "copy"])
def test_a_single_value_for_an_array_column_is_the_records_error(
    pg_url: str, unique_name: str, bulk: int | None
) -> None:
    """SQLAlchemy's ARRAY processor iterated a str bound for a text[] column: the row-by-row path
    stored 'abc' as {a,b,c}, '' as {} and '{p,q}' as its five characters, where COPY refused the
    first two (malformed array literal) and parsed the third. Both paths now refuse all three."""
    engine = sa.create_engine(pg_url)
    store = SqlStore(engine)
    store.dialect.bulk_min_rows = bulk  # type: ignore[misc]
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE TABLE "{unique_name}" (id bigint PRIMARY KEY, note text[], n int[])')
        sink = Sink(store, unique_name)
        outcomes = sink.batch(
            (2, {"note": ""}),
            (3, {"note": "abc"}),
            (4, {"note": "{p,q}"}),
            (5, {"n": 7}),
            (6, {"note": ["z"], "n": [1]}),
        )
        assert [o.status for o in outcomes] == [Status.FAILED] * 4 + [Status.WRITTEN]
        assert all("single value (not an array)" in str(o.error) for o in outcomes[:4]), outcomes
        assert fetch_rows(pg_url, unique_name, order_by="id") == [{"id": 6, "note": ["z"], "n": [1]}]
    finally:
        drop_table(pg_url, unique_name)
        engine.dispose()
