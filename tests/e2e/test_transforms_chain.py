"""`sink run --env-file` over plain JSON records with transform chains that cover every transform
and predicate not yet seen end to end elsewhere (issue 10):

* reshaping a value: tombstones dropped (`record_is_tombstone`), the interesting part taken out
  (`extract_field`), nested objects flattened with a delimiter (`flatten`), strings cast to
  numbers and booleans (`cast`), timestamps converted both ways (`timestamp_converter`), a card
  number masked (`mask_field`), records filtered on a field (`field_value_matches`, plain and
  negated), columns snake_cased (`column_name_case`), and a key made of a value field
  (`value_to_key`, `extract_field_key`, `hoist_field_key`);
* routing and headers: a table per kind (`field_router`), per month for some kinds only
  (`timestamp_router` with `topic_name_matches`), fields moved into headers (`header_from`) and
  headers added (`insert_header`, once under a predicate) that end as the primary key
  (`SINK_PK_MODE=record_header`) or drop records (`filter` + `has_header_key`);
* the key side: a nested JSON key taken apart, flattened, cast, masked and renamed
  (`extract_field_key`, `flatten_key`, `cast_key`, `mask_field_key`, `replace_field_key`) while a
  string value is hoisted into a column (`hoist_field`).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SinkRunner, write_env
from tests.support.db import drop_table, fetch_rows, primary_key, table_columns, table_exists
from tests.support.kafka import committed_offsets, create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

UTC = dt.UTC


def _ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


def _run(sink_runner: SinkRunner, env: Path, bootstrap: str, group: str, topic: str, count: int) -> None:
    """Start `sink run`, wait until it committed `count` records of `topic`, stop it with SIGTERM."""
    sink = sink_runner.start(env)
    try:
        wait_for(
            lambda: (committed_offsets(bootstrap, group, topic, [0]).get(0) or 0) >= count,
            60,
            interval=0.3,
            message="the sink did not commit every record",
        )
    finally:
        sink.process.send_signal(signal.SIGTERM)
    assert sink.wait(20) == 0, sink.stderr[-3000:]


def _order(
    id_: str, *, status: str, region: str | None, card: str | None, placed: str, shipped: int, gift: str
) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": id_,
        "qty": "3",
        "price": 12,
        "gift": gift,
        "status": status,
        "placedAt": placed,
        "shippedAt": shipped,
        "customer": {"firstName": f"n{id_}", "cardNumber": card, "address": {"zipCode": f"z{id_}"}},
    }
    if region is not None:
        order["region"] = region
    return {"key": f"k{id_}", "value": json.dumps({"order": order, "envelope": "x"})}


def test_value_reshaping_chain(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = table = f"{unique_name}_orders"
    drop_table(pg_url, table)
    create_topic(bootstrap_servers, topic)
    shipped = 1709634030  # 2024-03-05T10:20:30Z in seconds
    records = [
        _order(
            "1", status="open", region="eu", card="4111", placed="2024-03-05 10:20:30", shipped=shipped, gift="true"
        ),
        {"key": "k1", "value": None},  # a tombstone: dropped by the first filter
        _order("2", status="cancelled", region="eu", card="4222", placed="2024-03-06 00:00:00", shipped=0, gift="no"),
        _order("3", status="open", region="apac", card="4333", placed="2024-03-07 00:00:00", shipped=0, gift="no"),
        _order("4", status="open", region=None, card="4444", placed="2024-03-08 00:00:00", shipped=0, gift="no"),
        _order("5", status="shipped", region="us", card=None, placed="2024-12-31 23:59:59", shipped=86400, gift="x"),
    ]
    produce(bootstrap_servers, topic, records)

    env = write_env(
        tmp_path / "orders.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        value_format="json",
        insert_mode="upsert",
        pk_mode="record_key",
        auto_create="true",
        transforms="tombs,order,flat,types,placed,shipped,card,cancelled,foreign,names,key,keyid,keyname",
        transforms__tombs__type="filter",
        transforms__tombs__predicate="tombstone",
        transforms__order__type="extract_field",
        transforms__order__field="order",
        transforms__flat__type="flatten",
        transforms__flat__delimiter="_",
        transforms__types__type="cast",
        transforms__types__spec="id:int64,qty:int16,price:float64,gift:boolean",
        transforms__placed__type="timestamp_converter",
        transforms__placed__field="placedAt",
        transforms__placed__target_type="Timestamp",
        transforms__placed__format="'yyyy-MM-dd HH:mm:ss'",
        transforms__shipped__type="timestamp_converter",
        transforms__shipped__field="shippedAt",
        transforms__shipped__target_type="string",
        transforms__shipped__format="yyyy/MM/dd",
        transforms__shipped__unix_precision="seconds",
        transforms__card__type="mask_field",
        transforms__card__fields="customer_cardNumber",
        transforms__card__replacement="****",
        transforms__cancelled__type="filter",
        transforms__cancelled__predicate="cancelled",
        transforms__foreign__type="filter",
        transforms__foreign__predicate="home",
        transforms__foreign__negate="true",
        transforms__names__type="column_name_case",
        transforms__names__case="snake_case",
        transforms__key__type="value_to_key",
        transforms__key__fields="id",
        transforms__keyid__type="extract_field_key",
        transforms__keyid__field="id",
        transforms__keyname__type="hoist_field_key",
        transforms__keyname__field="order_id",
        predicates="tombstone,cancelled,home",
        predicates__tombstone__type="record_is_tombstone",
        predicates__cancelled__type="field_value_matches",
        predicates__cancelled__field="status",
        predicates__cancelled__pattern="cancel.*",
        predicates__home__type="field_value_matches",
        predicates__home__field="region",
        predicates__home__pattern="eu|us",
    )
    _run(sink_runner, env, bootstrap_servers, unique_name, topic, len(records))

    try:
        assert primary_key(pg_url, table) == ["order_id"]
        # Schemaless: cast changes the values, the column types follow them (int16 -> a whole number)
        assert {n: str(c["type"]) for n, c in table_columns(pg_url, table).items()} == {
            "order_id": "BIGINT",
            "id": "BIGINT",
            "qty": "BIGINT",
            "price": "DOUBLE PRECISION",
            "gift": "BOOLEAN",
            "status": "TEXT",
            "placed_at": "TIMESTAMP",
            "shipped_at": "TEXT",
            "customer_first_name": "TEXT",
            "customer_card_number": "TEXT",
            "customer_address_zip_code": "TEXT",
            "region": "TEXT",
        }
        rows = fetch_rows(pg_url, table, order_by="order_id")
        assert rows == [
            {
                "id": 1,
                "qty": 3,
                "price": 12.0,
                "gift": True,
                "status": "open",
                "placed_at": dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=UTC),
                "shipped_at": "2024/03/05",
                "customer_first_name": "n1",
                "customer_card_number": "****",
                "customer_address_zip_code": "z1",
                "region": "eu",
                "order_id": 1,
            },
            {
                "id": 5,
                "qty": 3,
                "price": 12.0,
                "gift": False,
                "status": "shipped",
                "placed_at": dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
                "shipped_at": "1970/01/02",
                "customer_first_name": "n5",
                "customer_card_number": None,
                "customer_address_zip_code": "z5",
                "region": "us",
                "order_id": 5,
            },
        ]
    finally:
        drop_table(pg_url, table)


def test_routing_and_header_chain(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = f"{unique_name}_events"
    click, march, april = f"{topic}_click", f"{topic}_view_202403", f"{topic}_view_202404"
    for name in (click, march, april, f"{topic}_view"):
        drop_table(pg_url, name)
    create_topic(bootstrap_servers, topic)

    def event(event_id: int, kind: str, agent: str, ts: int) -> dict[str, Any]:
        value = {"event_id": event_id, "kind": kind, "agent": agent, "x": event_id * 10}
        return {"key": None, "value": json.dumps(value), "timestamp": ts}

    records = [
        event(1, "click", "firefox", _ms(2024, 3, 5, 10)),
        event(2, "view", "crawlerbot", _ms(2024, 3, 5, 11)),  # a bot: flagged, then dropped
        event(3, "view", "chrome", _ms(2024, 3, 31, 23)),
        event(4, "view", "chrome", _ms(2024, 4, 1, 0)),
        event(5, "click", "safari", _ms(2024, 4, 2)),
        event(6, "click", "googlebot", _ms(2024, 4, 2)),  # a bot
    ]
    produce(bootstrap_servers, topic, records)

    env = write_env(
        tmp_path / "events.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        value_format="json",
        insert_mode="upsert",
        pk_mode="record_header",
        pk_fields="event_id,origin,agent",
        auto_create="true",
        transforms="flag,hdrs,origin,bots,route,monthly",
        transforms__flag__type="insert_header",
        transforms__flag__header="bot",
        transforms__flag__value_literal="yes",
        transforms__flag__predicate="botagent",
        transforms__hdrs__type="header_from",
        transforms__hdrs__fields="event_id,agent",
        transforms__hdrs__headers="event_id,agent",
        transforms__hdrs__operation="move",
        transforms__origin__type="insert_header",
        transforms__origin__header="origin",
        transforms__origin__value_literal="web",
        transforms__bots__type="filter",
        transforms__bots__predicate="flagged",
        transforms__route__type="field_router",
        transforms__route__field="kind",
        transforms__route__topic_format="'${topic}_${field}'",
        transforms__monthly__type="timestamp_router",
        transforms__monthly__topic_format="'${topic}_${timestamp}'",
        transforms__monthly__timestamp_format="yyyyMM",
        transforms__monthly__predicate="views",
        predicates="botagent,flagged,views",
        predicates__botagent__type="field_value_matches",
        predicates__botagent__field="agent",
        predicates__botagent__pattern=".*bot",
        predicates__flagged__type="has_header_key",
        predicates__flagged__name="bot",
        predicates__views__type="topic_name_matches",
        predicates__views__pattern=".*_view",
    )
    _run(sink_runner, env, bootstrap_servers, unique_name, topic, len(records))

    def row(event_id: int, kind: str, agent: str) -> dict[str, Any]:
        return {"kind": kind, "x": event_id * 10, "event_id": str(event_id), "origin": "web", "agent": agent}

    try:
        assert not table_exists(pg_url, topic) and not table_exists(pg_url, f"{topic}_view")
        assert primary_key(pg_url, click) == ["event_id", "origin", "agent"]
        assert fetch_rows(pg_url, click, order_by="event_id") == [row(1, "click", "firefox"), row(5, "click", "safari")]
        assert fetch_rows(pg_url, march, order_by="event_id") == [row(3, "view", "chrome")]
        assert fetch_rows(pg_url, april, order_by="event_id") == [row(4, "view", "chrome")]
    finally:
        for name in (click, march, april, f"{topic}_view", topic):
            drop_table(pg_url, name)


def test_key_side_chain(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = table = f"{unique_name}_notes"
    drop_table(pg_url, table)
    create_topic(bootstrap_servers, topic)

    def note(shop: str, no: str, pin: str, text: str) -> dict[str, Any]:
        key = {"k": {"shop": {"id": shop}, "no": no, "pin": pin}, "ignored": True}
        return {"key": json.dumps(key), "value": text}

    records = [
        note("5", "7", "1234", "first"),
        note("5", "8", "9999", "second"),
        note("6", "7", "0000", "third"),
        note("5", "7", "4321", "first, edited"),  # the same key once the pin is masked: an upsert
    ]
    produce(bootstrap_servers, topic, records)

    env = write_env(
        tmp_path / "notes.env",
        bootstrap_servers,
        pg_url,
        topic,
        unique_name,
        key_format="json",
        value_format="string",
        insert_mode="upsert",
        pk_mode="record_key",
        auto_create="true",
        transforms="kx,kflat,kcast,kmask,krename,body",
        transforms__kx__type="extract_field_key",
        transforms__kx__field="k",
        transforms__kflat__type="flatten_key",
        transforms__kflat__delimiter="__",
        transforms__kcast__type="cast_key",
        transforms__kcast__spec="shop__id:int32,no:int64",
        transforms__kmask__type="mask_field_key",
        transforms__kmask__fields="pin",
        transforms__kmask__replacement="****",
        transforms__krename__type="replace_field_key",
        transforms__krename__renames="no:order_no",
        transforms__body__type="hoist_field",
        transforms__body__field="note",
    )
    _run(sink_runner, env, bootstrap_servers, unique_name, topic, len(records))

    try:
        assert primary_key(pg_url, table) == ["shop__id", "order_no", "pin"]
        assert {n: str(c["type"]) for n, c in table_columns(pg_url, table).items()} == {
            "shop__id": "BIGINT",
            "order_no": "BIGINT",
            "pin": "VARCHAR(255)",
            "note": "TEXT",
        }
        assert fetch_rows(pg_url, table, order_by=["shop__id", "order_no"]) == [
            {"note": "first, edited", "shop__id": 5, "order_no": 7, "pin": "****"},
            {"note": "second", "shop__id": 5, "order_no": 8, "pin": "****"},
            {"note": "third", "shop__id": 6, "order_no": 7, "pin": "****"},
        ]
    finally:
        drop_table(pg_url, table)
