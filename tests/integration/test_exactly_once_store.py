"""Exactly-once: the offsets table and its compare-and-set on real PostgreSQL, MariaDB and SQLite.

A claim inserts the row when missing and bumps the epoch; a transaction writes its rows and the
partition's next offset together, only while the epoch is the one this worker claimed. A zombie
(an older claim) has its whole transaction refused: neither its rows nor its position land.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from sink.adapters.db import SqlOffsets, SqlStore, create_engine
from sink.errors import Fenced
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, RawRecord, Row, Status, TableSpec
from sink.offsets import Ledger, OffsetTracker
from sink.pipeline import Writer, WriteRules
from tests.support.db import drop_table, fetch_rows

pytestmark = pytest.mark.integration

TOPIC = "eos"


@pytest.fixture
def offsets_table(url: str, unique_name: str) -> Iterator[str]:
    name = f"{unique_name}_offsets"
    drop_table(url, name)
    yield name
    drop_table(url, name)


def _offsets(store: SqlStore, table: str, group: str = "g1") -> SqlOffsets:
    return SqlOffsets(store, group, table)


def _batch(table: str, partition: int, offsets: range) -> Batch:
    spec = TableSpec(table, (Column("v", ColumnType(Kind.STRING), nullable=False),), ())
    rows = tuple(
        Row(RawRecord(Coord(TOPIC, partition, o), None, None), table, Op.UPSERT, {}, {"v": f"{partition}-{o}"}, spec)
        for o in offsets
    )
    return Batch(table, spec, rows)


def _writer(store: SqlStore) -> Writer:
    return Writer(store, WriteRules("insert", auto_create=True))


def _write(ledger: Ledger, writer: Writer, batch: Batch, tracker: OffsetTracker) -> None:
    for row in batch.rows:
        tracker.track(row.coord)
    partitions = {(r.coord.topic, r.coord.partition) for r in batch.rows}
    outcomes = writer.write(batch, hook=ledger.for_batch(tracker.snapshot(partitions)))
    for outcome in outcomes:
        tracker.settle(outcome.coord)


def test_claim_creates_the_row_and_bumps_the_epoch(store: SqlStore, offsets_table: str) -> None:
    offsets = _offsets(store, offsets_table)
    assert offsets.claim([(TOPIC, 0), (TOPIC, 1)]) == {(TOPIC, 0): (None, 1), (TOPIC, 1): (None, 1)}
    assert offsets.claim([(TOPIC, 0)]) == {(TOPIC, 0): (None, 2)}
    assert _offsets(store, offsets_table, "other").claim([(TOPIC, 0)]) == {(TOPIC, 0): (None, 1)}  # per group
    assert offsets.rows() == {(TOPIC, 0): (None, 2), (TOPIC, 1): (None, 1)}
    _offsets(store, offsets_table)  # created when missing only: a second start keeps the rows
    assert offsets.rows()[(TOPIC, 0)] == (None, 2)


def test_compare_and_set_on_the_epoch(store: SqlStore, offsets_table: str) -> None:
    offsets = _offsets(store, offsets_table)
    offsets.claim([(TOPIC, 0)])
    with offsets.transaction() as tx:
        assert offsets.advance(tx, {(TOPIC, 0): (42, 1)}) == frozenset()
    with offsets.transaction() as tx:  # the same position again still matches (MariaDB: found rows)
        assert offsets.advance(tx, {(TOPIC, 0): (42, 1)}) == frozenset()
        assert offsets.advance(tx, {(TOPIC, 0): (None, 1)}) == frozenset()  # keep it as it is
    assert offsets.rows() == {(TOPIC, 0): (42, 1)}
    assert offsets.claim([(TOPIC, 0)]) == {(TOPIC, 0): (42, 2)}
    with offsets.transaction() as tx:  # the old epoch: refused, nothing updated
        assert offsets.advance(tx, {(TOPIC, 0): (99, 1)}) == frozenset({(TOPIC, 0)})
    assert offsets.rows() == {(TOPIC, 0): (42, 2)}


def test_rows_and_position_land_together_and_a_zombie_writes_nothing(
    store: SqlStore, offsets_table: str, name: str
) -> None:
    zombie = Ledger(_offsets(store, offsets_table))
    assert zombie.claim([(TOPIC, 0)]) == {}  # no position yet: start at the committed offset
    writer, tracker = _writer(store), OffsetTracker()
    _write(zombie, writer, _batch(name, 0, range(0, 10)), tracker)
    assert _offsets(store, offsets_table).rows() == {(TOPIC, 0): (10, 1)}
    assert len(fetch_rows(store.engine.url.render_as_string(False), name)) == 10

    owner = Ledger(_offsets(store, offsets_table))
    assert owner.claim([(TOPIC, 0)]) == {(TOPIC, 0): 10}  # the new owner starts where the rows end
    with pytest.raises(Fenced) as fenced:
        _write(zombie, writer, _batch(name, 0, range(10, 20)), tracker)
    assert fenced.value.partitions == frozenset({(TOPIC, 0)})
    url = store.engine.url.render_as_string(False)
    assert sorted(r["v"] for r in fetch_rows(url, name)) == sorted(f"0-{o}" for o in range(10))  # nothing of it
    assert _offsets(store, offsets_table).rows() == {(TOPIC, 0): (10, 2)}

    _write(owner, writer, _batch(name, 0, range(10, 20)), OffsetTracker())
    assert sorted(r["v"] for r in fetch_rows(url, name)) == sorted(f"0-{o}" for o in range(20))
    assert _offsets(store, offsets_table).rows() == {(TOPIC, 0): (20, 2)}


def test_position_stops_before_an_unsettled_record(store: SqlStore, offsets_table: str, name: str) -> None:
    """Offsets 0-4 in the batch, 5 polled but elsewhere (another table's open batch), 6-9 in the
    batch: the transaction writes all ten rows' worth but position 5, never past offset 5."""
    ledger = Ledger(_offsets(store, offsets_table))
    ledger.claim([(TOPIC, 3)])
    tracker = OffsetTracker()
    for o in range(10):
        tracker.track(Coord(TOPIC, 3, o))
    batch = _batch(name, 3, range(10))
    batch = Batch(batch.table, batch.spec, tuple(r for r in batch.rows if r.coord.offset != 5))
    outcomes = _writer(store).write(batch, hook=ledger.for_batch(tracker.snapshot([(TOPIC, 3)])))
    assert {o.status for o in outcomes} == {Status.WRITTEN}
    assert _offsets(store, offsets_table).rows() == {(TOPIC, 3): (5, 1)}
    for outcome in outcomes:
        tracker.settle(outcome.coord)
    tracker.settle(Coord(TOPIC, 3, 5))  # e.g. dead-lettered: no row, the position moves on its own
    ledger.catch_up(tracker.prefixes())
    assert _offsets(store, offsets_table).rows() == {(TOPIC, 3): (10, 1)}


def test_a_claim_waits_for_the_zombie_transaction_holding_the_row(
    url: str, store: SqlStore, offsets_table: str
) -> None:
    """The zombie's compare-and-set locks the row: the new owner's claim waits for its commit and
    then reads its position (PostgreSQL and MariaDB lock rows; SQLite locks the whole database)."""
    offsets = _offsets(store, offsets_table)
    offsets.claim([(TOPIC, 0)])
    claimed: dict[str, object] = {}
    engine = create_engine(url)
    try:
        other = SqlOffsets(SqlStore(engine), "g1", offsets_table)
        with offsets.transaction() as tx:
            assert offsets.advance(tx, {(TOPIC, 0): (7, 1)}) == frozenset()
            thread = threading.Thread(target=lambda: claimed.update(other.claim([(TOPIC, 0)])))
            thread.start()
            time.sleep(0.5)
            assert not claimed, "the claim did not wait for the transaction holding the row"
        thread.join(30)
        assert claimed == {(TOPIC, 0): (7, 2)}
    finally:
        engine.dispose()


def test_offsets_table_name_is_quoted(store: SqlStore, unique_name: str) -> None:
    table = f"{unique_name} Offsets-Tab"
    url = store.engine.url.render_as_string(False)
    drop_table(url, table)
    try:
        offsets = _offsets(store, table)
        offsets.claim([(TOPIC, 0)])
        assert sa.inspect(store.engine).has_table(table)
        assert [r["epoch"] for r in fetch_rows(url, table)] == [1]
    finally:
        drop_table(url, table)
