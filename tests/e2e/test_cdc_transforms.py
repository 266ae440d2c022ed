"""`sink run --env-file` with Debezium change events and a transforms chain, as a user would run
it: the events of a source table, routed by `regex_router` to a table named after the source
table, fields renamed and dropped by `replace_field`, the Kafka offset added by `insert_field`,
records with a header dropped by `filter`, end as the expected copy of the source table; a bad
transform configuration stops `sink run` and `sink check` with exit code 2 and one line naming the
variable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import SINK, SinkRunner, _clean_environ, write_env
from tests.support.db import drop_table, fetch_rows
from tests.support.debezium import SourceTable, customer, standard_history
from tests.support.kafka import create_topic, produce

pytestmark = pytest.mark.e2e


def test_debezium_events_through_a_transform_chain(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = f"dbserver1.inventory.{unique_name}"
    table = f"{unique_name}_copy"
    drop_table(pg_url, table)
    create_topic(bootstrap_servers, topic)
    source = SourceTable(unique_name)
    standard_history(source)
    records = source.connect_json()
    offsets = {}  # id -> offset of the last upsert of that row
    for offset, (key, envelope) in enumerate(source.events):
        if envelope is not None and envelope["after"] is not None:
            offsets[key["id"]] = offset
    # A change of row 2 carrying the header `replay`: the filter drops it, the row keeps its state.
    stray = SourceTable(unique_name)
    stray.insert(customer(2, first_name="must not land"))
    records.append({**stray.connect_json()[0], "headers": {"replay": "1"}})
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
        transforms="route,fields,coords,replays",
        transforms__route__type="regex_router",
        transforms__route__regex=r"'dbserver1\.inventory\.(.*)'",
        transforms__route__replacement="'$1_copy'",
        transforms__fields__type="replace_field",
        transforms__fields__exclude="prefs,score",
        transforms__fields__renames="first_name:given_name,email:mail",
        transforms__coords__type="insert_field",
        transforms__coords__offset_field="kafka_offset",
        transforms__replays__type="filter",
        transforms__replays__predicate="replayed",
        predicates__replayed__type="has_header_key",
        predicates__replayed__name="replay",
    )
    sink_runner.run_until_committed(env, bootstrap_servers, unique_name, topic, {0: len(records)}, timeout=90)

    expected = []
    for row in source.state():
        kept = {k: v for k, v in row.items() if k not in ("prefs", "score")}
        kept["given_name"], kept["mail"] = kept.pop("first_name"), kept.pop("email")
        expected.append({**kept, "kafka_offset": offsets[row["id"]]})
    try:
        assert fetch_rows(pg_url, table, order_by="id") == expected
    finally:
        drop_table(pg_url, table)


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"transforms": "route", "transforms__route__type": "regex_routr"}, "SINK_TRANSFORMS__ROUTE__TYPE"),
        ({"transforms": "route", "transforms__route__type": "regex_router"}, "SINK_TRANSFORMS__ROUTE__REGEX"),
        (
            {"transforms": "c", "transforms__c__type": "cast", "transforms__c__spec": "qty:decimal"},
            "SINK_TRANSFORMS__C__SPEC",
        ),
        (
            {"transforms": "a", "transforms__b__type": "filter", "transforms__a__type": "filter"},
            "SINK_TRANSFORMS__B__TYPE",
        ),
        ({"cdc_format": "debezium"}, "SINK_CDC_FORMAT"),
    ],
)
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_bad_transform_configuration_exits_2_naming_the_variable(
    command: str, settings: dict[str, str], variable: str, pg_url: str, tmp_path: Path
) -> None:
    env = write_env(tmp_path / "bad.env", "127.0.0.1:9", pg_url, "orders", "g-transforms", **settings)
    done = subprocess.run(
        [str(SINK), command, "--env-file", str(env)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environ(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.startswith(f"sink: configuration error: {variable}: "), done.stderr[-3000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
