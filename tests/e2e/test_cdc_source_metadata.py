"""`sink run --env-file` with Debezium change events named after their source table
(`SINK_TABLE_NAME_FORMAT=r_${source.table}` then `table_name_case`), Debezium's metadata as columns
(`SINK_CDC_ADD_FIELDS=op,source.lsn,source.table`), soft deletes (`SINK_CDC_DELETE_MODE=soft`) and
header transforms (`drop_headers` before a `filter` on a header): the table ends as the source
table plus its deleted rows, flagged, each row carrying the metadata of its last change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.debezium import SourceTable, customer, standard_history
from tests.support.kafka import create_topic, produce

pytestmark = pytest.mark.e2e


def test_source_names_metadata_columns_soft_deletes_and_header_transforms(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = f"dbserver1.inventory.{unique_name}"
    source_table = f"{unique_name}Src"  # the source block's table; snake_cased into the target name
    table = f"r_{unique_name}_src_copy"
    drop_table(pg_url, table)
    create_topic(bootstrap_servers, topic)
    source = SourceTable(source_table)
    standard_history(source)
    records = source.connect_json()
    last: dict[int, dict[str, Any]] = {}  # id -> the envelope of its last change
    for key, envelope in source.events:
        if envelope is not None:
            last[key["id"]] = envelope
    # Dropped by the filter (header `replay`): row 2 keeps its state.
    stray = SourceTable(source_table)
    stray.insert(customer(2, first_name="must not land"))
    records.append({**stray.connect_json()[0], "headers": {"replay": "1"}})
    # Carries a `noise` header that drop_headers removes before the filter looks: it lands.
    extra = SourceTable(source_table)
    extra.insert(customer(8))
    records.append({**extra.connect_json()[0], "headers": {"noise": "1", "other": "x"}})
    last[8] = extra.events[0][1]
    produce(bootstrap_servers, topic, records)

    env = write_env(
        tmp_path / "cdc.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        key_format="connect_json",
        value_format="connect_json",
        cdc_format="debezium",
        insert_mode="upsert",
        pk_mode="record_key",
        delete_enabled="true",
        auto_create="true",
        table_name_format="'r_${source.table}'",
        cdc_add_fields="op,source.lsn,source.table",
        cdc_delete_mode="soft",
        transforms="quiet,replays,noisy,names",
        transforms__quiet__type="drop_headers",
        transforms__quiet__headers="noise",
        transforms__replays__type="filter",
        transforms__replays__predicate="flagged",
        transforms__noisy__type="filter",
        transforms__noisy__predicate="noisy",
        transforms__names__type="table_name_case",
        transforms__names__case="snake_case",
        transforms__names__suffix="_copy",
        predicates__flagged__type="has_header_key",
        predicates__flagged__name="replay",
        predicates__noisy__type="has_header_key",
        predicates__noisy__name="noise",
    )
    sink_runner.run_until_committed(env, bootstrap_servers, unique_name, topic, {0: len(records)}, timeout=90)

    live = {row["id"]: row for row in [*source.state(), customer(8)]}
    expected = []
    for i in sorted(last):
        envelope = last[i]
        deleted = envelope["op"] == "d"
        values = envelope["before"] if deleted else live[i]
        expected.append(
            {
                **values,
                "__op": envelope["op"],
                "__source_lsn": envelope["source"]["lsn"],
                "__source_table": source_table,
                "__deleted": deleted,
            }
        )
    try:
        rows = fetch_rows(pg_url, table, order_by="id")
        assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert rows == expected
        assert [r["id"] for r in rows if r["__deleted"]] == [7]
    finally:
        drop_table(pg_url, table)
