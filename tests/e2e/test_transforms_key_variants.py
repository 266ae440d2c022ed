"""`sink run --env-file` with the `$Key` variants added for issue 10: a JSON key's `day` (epoch
milliseconds) becomes a date (`timestamp_converter_key`), its `region` moves into a header
(`header_from_key`, `move`: out of the primary key), and the record's partition joins the primary
key (`insert_field_key`); the table's key and rows say so."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows, primary_key
from tests.support.kafka import create_topic, produce

pytestmark = pytest.mark.e2e


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp() * 1000)


def test_key_variants_shape_the_primary_key(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = table = unique_name
    drop_table(pg_url, table)
    create_topic(bootstrap_servers, topic)
    day1, day2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    records = [
        {"key": json.dumps({"id": 1, "day": _ms(day1), "region": "eu"}), "value": json.dumps({"qty": 1})},
        {"key": json.dumps({"id": 1, "day": _ms(day2), "region": "eu"}), "value": json.dumps({"qty": 2})},
        {"key": json.dumps({"id": 2, "day": _ms(day1)}), "value": json.dumps({"qty": 3})},
        {"key": json.dumps({"id": 1, "day": _ms(day1), "region": "us"}), "value": json.dumps({"qty": 4})},
    ]
    produce(bootstrap_servers, topic, records)
    env = write_env(
        tmp_path / "keys.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        key_format="json",
        value_format="json",
        insert_mode="upsert",
        pk_mode="record_key",
        table_name_format=table,
        transforms="day,region,part",
        transforms__day__type="timestamp_converter_key",
        transforms__day__field="day",
        transforms__day__target_type="Date",
        transforms__region__type="header_from_key",
        transforms__region__fields="region",
        transforms__region__headers="zone",
        transforms__region__operation="move",
        transforms__part__type="insert_field_key",
        transforms__part__partition_field="part",
    )
    sink_runner.run_until_committed(env, bootstrap_servers, unique_name, topic, {0: len(records)}, timeout=60)

    try:
        assert primary_key(pg_url, table) == ["id", "day", "part"]
        rows = fetch_rows(pg_url, table, order_by=["id", "day"])
        # The region left the key (moved into a header), so the last record upserts the first one's row.
        assert rows == [
            {"id": 1, "day": day1, "part": 0, "qty": 4},
            {"id": 1, "day": day2, "part": 0, "qty": 2},
            {"id": 2, "day": day1, "part": 0, "qty": 3},
        ]
    finally:
        drop_table(pg_url, table)
