"""The sink's metrics and status document from plain data: `Stats`, `History`, `SinkCollector`
(read at scrape time: absent numbers are absent, never a guessed 0), the status JSON, and the
configuration summary with secrets masked."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sink import status
from sink.adapters.http import StatusPage, metrics_registry
from sink.config import load_settings
from sink.health import Health, WatchedSource
from sink.metrics import BATCH_ROWS_BUCKETS, Counters, Histogram, History, Stats
from sink.outcomes import RoutingRules
from sink.pipeline import WriteRules

SECRET = "UnitPw-7781z"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scrape(health: Health, name: str = "orders") -> dict[str, float]:
    text = generate_latest(metrics_registry(health, name)).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "sink")
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def worker(stats: Stats | None = None, **counters: int) -> Any:
    return SimpleNamespace(
        counters=Counters(**counters),
        stats=stats,
        writer=SimpleNamespace(rules=WriteRules(insert_mode="upsert")),
        router=SimpleNamespace(rules=RoutingRules(connector_name="orders", dlq_topic="orders-dlq")),
    )


def test_histogram_buckets_are_cumulative_and_end_with_inf() -> None:
    h = Histogram((1, 10, 100))
    for value in (0.5, 1, 5, 10, 50, 1000):
        h.observe(value)
    assert h.cumulative() == [("1", 2), ("10", 4), ("100", 5), ("+Inf", 6)]
    assert h.count == 6 and h.sum == pytest.approx(1066.5)


def test_stats_per_table_and_failures_by_reason() -> None:
    stats = Stats()
    stats.observe_batch("orders", 500, 0.02)
    stats.observe_batch("orders", 250, 0.01)
    stats.observe_batch("users", 3, 0.003)
    for offset in range(30):
        stats.observe_failure("t", 1, offset, "VALUE_CONVERTER", "DecodeError", "not JSON", True, 5.0)
    stats.observe_failure("t", 0, 7, "TASK_PUT", "RecordRejected", "null in NOT NULL column", False, 6.0)
    tables = stats.table_view()
    assert (tables["orders"].rows, tables["orders"].batches) == (750, 2)
    assert tables["orders"].seconds == pytest.approx(0.03)
    assert stats.batch_rows["orders"].cumulative()[BATCH_ROWS_BUCKETS.index(250)] == ("250", 1)
    assert stats.failure_counts() == {
        ("t", "VALUE_CONVERTER", "DecodeError", True): 30,
        ("t", "TASK_PUT", "RecordRejected", False): 1,
    }
    latest = stats.latest_failures()
    assert len(latest) == 20 and latest[-1].offset == 7 and latest[0].offset == 11  # the last 20 kept


def test_history_gives_rates_per_second_and_skips_samples_too_close() -> None:
    history = History(interval=2.0, span=6.0)
    for t, n in ((0.0, 0), (0.5, 999), (2.0, 100), (4.0, 500), (6.0, 500), (8.0, 900)):
        history.sample(t, {"records_in": n})
    rates = history.rates()
    assert [(p["t"], p["records_in"]) for p in rates] == [(4.0, 200.0), (6.0, 0.0), (8.0, 200.0)]


def test_before_a_worker_only_health_metrics_and_nothing_guessed() -> None:
    m = scrape(Health(Clock(), 60, 30))
    assert m["sink_up{}"] == 1.0 and m["sink_retries_total{}"] == 0
    for absent in ("sink_records_read_total{}", "sink_consumer_lag{}", "sink_records_skipped_total{}"):
        assert absent not in m


def test_counters_without_the_stats_hooks_give_the_totals_only() -> None:
    health = Health(Clock(), 60, 30)
    health.attach(worker(records_in=12, rows_written=9, rows_deleted=1, dead_lettered=2, batches=3, commits=4))
    m = scrape(health)
    assert m["sink_records_read_total{}"] == 12
    assert m["sink_records_written_total{operation=upsert}"] == 9
    assert m["sink_records_written_total{operation=delete}"] == 1
    assert m["sink_records_dead_lettered_total{}"] == 2
    assert m["sink_batches_total{}"] == 3 and m["sink_offset_commits_total{}"] == 4
    hooked = ("sink_table_", "sink_batch_", "sink_record_errors", "sink_records_skipped")
    assert not any(k.startswith(hooked) for k in m)


def test_records_older_than_the_tables_version_are_counted_from_the_writer() -> None:
    health = Health(Clock(), 60, 30)
    writer = SimpleNamespace(stale_records=5)
    health.attach(SimpleNamespace(counters=Counters(), stats=None, writer=writer, router=None))
    assert scrape(health)["sink_records_stale_total{}"] == 5


def test_stats_hooks_give_tables_histograms_and_errors_by_reason() -> None:
    stats = Stats()
    stats.observe_batch("orders", 40, 0.004)
    stats.observe_failure("t", 0, 3, "VALUE_CONVERTER", "DecodeError", "not JSON", True, 1.0)
    stats.skipped(2)
    health = Health(Clock(), 60, 30)
    health.attach(worker(stats, records_in=43, rows_written=40, dead_lettered=1))
    m = scrape(health)
    assert m["sink_table_records_written_total{table=orders}"] == 40
    assert m["sink_batch_records_bucket{le=50,table=orders}"] == 1
    assert m["sink_batch_records_bucket{le=10,table=orders}"] == 0
    assert m["sink_batch_write_seconds_count{table=orders}"] == 1
    assert m["sink_batch_write_seconds_sum{table=orders}"] == pytest.approx(0.004)
    assert m["sink_records_skipped_total{}"] == 2
    key = "sink_record_errors_total{action=dead_letter,error_class=DecodeError,stage=VALUE_CONVERTER,topic=t}"
    assert m[key] == 1


class FakeSource:
    def __init__(self) -> None:
        self.committed: list[dict[Any, int]] = []
        self.lags = iter([5, 3, 0])

    def subscribe(self, on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def poll(self, max_records: int, timeout: float) -> list[Any]:
        return []

    def commit(self, offsets: dict[Any, int]) -> bool:
        self.committed.append(offsets)
        return True

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def lag(self) -> int:
        return next(self.lags)


class Loop:
    """Stands for the worker: its bound methods are the rebalance callbacks."""

    def __init__(self, health: Health) -> None:
        self.health = health
        self.counters = Counters()

    def on_assign(self, partitions: list[Any]) -> None:
        self.health.assigned(partitions)  # the worker tells Health too: one rebalance, counted once

    def on_revoke(self, partitions: list[Any]) -> None:
        self.health.revoked(partitions)


def test_watched_source_attaches_the_worker_counts_rebalances_commits_and_asks_lag_per_second() -> None:
    clock = Clock()
    health = Health(clock, 60, 30)
    inner = FakeSource()
    source = WatchedSource(inner, health)
    loop = Loop(health)
    source.subscribe(loop.on_assign, loop.on_revoke)
    assert health.watched is loop
    inner.on_assign([("t", 0), ("t", 1)])
    source.commit({("t", 0): 10, ("t", 1): 4})
    source.poll(1, 0)
    clock.now += 0.5
    source.poll(1, 0)  # within the second: the lag is not asked again
    assert health.lag == 5 and health.lag_by_partition is None  # the fake cannot tell per partition
    clock.now += 1
    source.poll(1, 0)
    assert health.lag == 3
    health.retrying(why="DatabaseUnavailable")  # what Worker._retrying reports (a pause alone is no retry)
    clock.now += 7
    health.recovered()
    inner.on_revoke([("t", 1)])
    inner.on_assign([("t", 1)])
    m = scrape(health)
    assert m["sink_rebalances_total{}"] == 2 and m["sink_partitions_revoked_total{}"] == 1
    assert m["sink_retries_total{}"] == 1 and m["sink_retry_time_seconds_total{}"] == 7
    assert m["sink_committed_offset{partition=0,topic=t}"] == 10
    assert "sink_committed_offset{partition=1,topic=t}" not in m  # revoked: no longer this member's to tell
    assert m["sink_consumer_lag{}"] == 3
    assert inner.committed == [{("t", 0): 10, ("t", 1): 4}]


def test_status_document_is_json_with_partitions_tables_failures_and_throughput() -> None:
    clock = Clock()
    health = Health(clock, 60, 30)
    stats = Stats()
    stats.observe_batch("orders", 10, 0.5)
    stats.observe_failure("t", 0, 3, "VALUE_CONVERTER", "DecodeError", "not JSON", True, 1.0)
    w = worker(stats, records_in=11, rows_written=10, dead_lettered=1)
    health.attach(w)
    health.assigned([("t", 0)])
    health.committed({("t", 0): 11})
    page = StatusPage(health, "orders", interval=2.0)
    try:
        page.sample()
        at, values = page.history._samples[-1]
        page.history._samples[-1] = (at - 10, values)  # as if taken 10 s ago
        w.counters.records_in = 31
        page.sample()
        doc = json.loads(json.dumps(page.document(), allow_nan=False))
    finally:
        page.close()
    assert doc["counters"]["records_in"] == 31
    assert doc["partitions"] == [{"topic": "t", "partition": 0, "assigned": True, "committed": 11, "lag": None}]
    assert doc["tables"] == [{"table": "orders", "rows": 10, "batches": 1, "seconds": 0.5, "mean_batch_seconds": 0.5}]
    assert doc["failures"]["by_reason"][0]["records"] == 1
    assert doc["failures"]["latest"][0]["reason"] == "not JSON"
    assert len(doc["throughput"]) == 1 and doc["throughput"][0]["records_in"] == pytest.approx(2, rel=0.01)
    assert doc["config"]["write.insert_mode"] == "upsert"  # without settings: the worker's rules
    assert doc["config"]["errors.dlq_topic"] == "orders-dlq"


def test_settings_summary_masks_every_secret(tmp_path: Any) -> None:
    settings = load_settings(
        environ={
            "SINK_BOOTSTRAP_SERVERS": "b:9092",
            "SINK_TOPICS": "orders",
            "SINK_DATABASE_URL": f"postgresql+psycopg://app:{SECRET}@db/x?sslpassword={SECRET}",
            "SINK_SCHEMA_REGISTRY_URL": f"http://reg:{SECRET}@registry:8081",
            "SINK_CONSUMER__SASL_JAAS_CONFIG": f'org.apache.kafka... password="{SECRET}";',
            "SINK_CONSUMER__SECURITY_PROTOCOL": "SASL_SSL",
        }
    )
    summary = status.settings_summary(settings)
    text = json.dumps(summary, default=str)
    assert SECRET not in text
    assert summary["database_url"] == settings.safe_database_url()
    assert summary["schema_registry_url"] == "http://reg:***@registry:8081"
    assert len(summary["consumer"]) == 2 and set(summary["consumer"].values()) == {"***"}
    assert summary["topics"] == ["orders"] and summary["bootstrap_servers"] == "b:9092"
