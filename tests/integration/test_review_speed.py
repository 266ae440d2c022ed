"""Defects found by a review of the speed work (6c19050..HEAD) that need a real database."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from sink.adapters.db import SqlStore
from sink.formats.logical import converter
from sink.model import Column, Kind
from tests.integration.test_pg_binary_copy import (  # noqa: F401  (fixtures)
    ID,
    CopyFormats,
    formats,
    store,
    tables,
    write_both_ways,
)
from tests.integration.test_writer_contract import ct

pytestmark = pytest.mark.integration


@pytest.fixture
def unique_name() -> str:
    """Tables of this review are prefixed `review_` (dropped after each test by `tables`)."""
    return f"review_{uuid.uuid4().hex[:10]}"


def test_zoned_timestamps_with_offsets_text_refuses_land_as_by_text(
    store: SqlStore,  # noqa: F811
    formats: CopyFormats,  # noqa: F811
    tables: tuple[str, str],  # noqa: F811
) -> None:
    """`pgbinary._all_aware` lets any fixed-offset datetime go binary. A Debezium ZonedTimestamp
    string keeps its own offset (`logical._zoned`), and Python takes offsets PostgreSQL's text
    input does not: a fraction of a second (22007 invalid input syntax) or beyond +-15:59:59
    (22009 time zone displacement out of range). Binary COPY takes both. So the same record is a
    record error in a batch of 15 rows (executemany: text) and is written in a batch of 16 (binary
    COPY), and the two tables of `write_both_ways` differ."""
    zoned = converter("io.debezium.time.ZonedTimestamp", None)
    assert zoned is not None
    at = zoned("2024-01-01T00:00:00+01:00:00.500000")
    assert at.utcoffset() == dt.timedelta(hours=1, microseconds=500000)
    far = zoned("2024-01-01T00:00:00+16:00")
    columns = (ID, Column("at", ct(Kind.TIMESTAMP, precision=6)))
    write_both_ways(store, formats, tables, columns, [[{"id": 1, "at": at}, {"id": 2, "at": far}]])
