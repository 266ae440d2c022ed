"""The sink's HTTP endpoints (`SINK_HTTP_PORT`): `/metrics`, `/livez`, `/readyz`, the status page.

A stdlib `ThreadingHTTPServer` on a daemon thread; `/metrics` is prometheus-client's exposition of
a registry of our own (process and platform collectors, gauges read from `Health`, and the sink's
counters read from the worker at scrape time by `SinkCollector`: the hot path pays nothing);
`/livez` and `/readyz` answer 200 or 503 with a short JSON body saying why. `/` is the status
page (static files in `static/`, no build step, nothing from a CDN), which polls `/status.json`.
Every metric is listed with its Kafka Connect equivalent in docs/metrics.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .. import status
from ..errors import ConfigError
from ..health import Health, Verdict
from ..metrics import History, Stats

Family = TypeVar("Family", CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily)
log = logging.getLogger("sink.http")

GAUGES = {
    "up": "1 while the sink process runs.",
    "live": "1 while /livez answers 200 (the worker loop's heartbeat is recent).",
    "ready": "1 while /readyz answers 200 (partitions assigned, not retrying past the threshold).",
    "partitions_assigned": "Partitions this member holds.",
    "heartbeat_age_seconds": "Seconds since the worker loop's last heartbeat (since start-up before the first).",
    "retrying": "1 while an outage is being retried (consumption paused).",
    "retry_seconds": "Seconds the current retry has lasted (0 when not retrying).",
}


class HealthCollector(Collector):
    """`sink_<gauge>{sink="<SINK_NAME>"}` from the Health object, computed at each scrape."""

    def __init__(self, health: Health, sink_name: str) -> None:
        self.health = health
        self.sink_name = sink_name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = self.health.gauges()
        for name, text in GAUGES.items():
            family = GaugeMetricFamily(f"sink_{name}", text, labels=["sink"])
            family.add_metric([self.sink_name], values[name])
            yield family


HELP = {  # the sink's own metrics (docs/metrics.md gives each one's Kafka Connect equivalent)
    "sink_records_read": "Records polled from Kafka.",
    "sink_records_written": "Records settled by a committed write, by operation (the insert mode, or delete).",
    "sink_batches": "Batches written (committed).",
    "sink_records_dead_lettered": "Records the dead-letter topic acknowledged.",
    "sink_records_failed": "Failed records only logged (errors.tolerance=all and no dead-letter topic).",
    "sink_offset_commits": "Offset commits that succeeded.",
    "sink_retries": "Retries begun: consumption paused for an outage (a long write does not count).",
    "sink_retry_time_seconds": "Seconds spent in retries that ended.",
    "sink_rebalances": "Rebalances that assigned partitions to this member.",
    "sink_partitions_revoked": "Rebalances that took partitions from this member.",
    "sink_committed_offset": "Last committed offset (the next to read) per partition held.",
    "sink_consumer_lag": "Records behind the end of the log over the partitions held.",
    "sink_partition_lag": "Records behind the end of the log per partition held.",
    "sink_records_skipped": "Records that needed no write.",
    "sink_records_stale": "Records not written: the table or the batch held a newer version (upsert version field).",
    "sink_records_reported": "Delivery reports the result and error topics acknowledged.",
    "sink_table_records_written": "Records each table took (refused rows are failures, not counted here).",
    "sink_batch_records": "Records per batch written, per table.",
    "sink_batch_write_seconds": "Seconds to write a batch, per table.",
    "sink_record_errors": "Failed records by topic, stage and error class; action dead_letter or log.",
}


class SinkCollector(Collector):
    """The worker's numbers, read at scrape time (`status.read`): counters from `worker.counters`,
    per-table batches and failures by reason from `worker.stats` once the hooks feed it, retries,
    rebalances and committed offsets from `Health`, lag from the consumer. A number the sink does
    not have (no worker yet, hooks not wired, lag unknown) is absent, never 0 by guess."""

    def __init__(self, health: Health, sink_name: str) -> None:
        self.health = health
        self.sink_name = sink_name

    def collect(self) -> Iterator[Metric]:
        reading = status.read(self.health)
        health = self.health
        yield self._one(CounterMetricFamily, "sink_retries", health.retries)
        yield self._one(CounterMetricFamily, "sink_retry_time_seconds", health.retry_seconds_total)
        yield self._one(CounterMetricFamily, "sink_rebalances", health.assignments)
        yield self._one(CounterMetricFamily, "sink_partitions_revoked", health.revocations)
        yield self._per_partition("sink_committed_offset", reading.committed)
        if reading.lag is not None:
            yield self._one(GaugeMetricFamily, "sink_consumer_lag", reading.lag)
        if reading.lag_by_partition is not None:
            yield self._per_partition("sink_partition_lag", reading.lag_by_partition)
        if reading.counters is not None:
            yield from self._counters(reading.counters, reading.insert_mode)
        if reading.stats is not None:
            yield from self._stats(reading.stats)
        if reading.stale is not None:
            yield self._one(CounterMetricFamily, "sink_records_stale", reading.stale)

    def _one(self, kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, value: float) -> Metric:
        family = kind(name, HELP[name], labels=["sink"])
        family.add_metric([self.sink_name], value)
        return family

    def _family(self, kind: type[Family], name: str, *labels: str) -> Family:
        return kind(name, HELP[name], labels=["sink", *labels])

    def _per_partition(self, name: str, values: Mapping[Any, int]) -> Metric:
        family = self._family(GaugeMetricFamily, name, "topic", "partition")
        for (topic, partition), value in sorted(values.items()):
            family.add_metric([self.sink_name, topic, str(partition)], value)
        return family

    def _counters(self, c: Mapping[str, int], insert_mode: str | None) -> Iterator[Metric]:
        yield self._one(CounterMetricFamily, "sink_records_read", c["records_in"])
        written = self._family(CounterMetricFamily, "sink_records_written", "operation")
        written.add_metric([self.sink_name, insert_mode or "write"], c["rows_written"])
        written.add_metric([self.sink_name, "delete"], c["rows_deleted"])
        yield written
        yield self._one(CounterMetricFamily, "sink_batches", c["batches"])
        yield self._one(CounterMetricFamily, "sink_records_dead_lettered", c["dead_lettered"])
        yield self._one(CounterMetricFamily, "sink_records_failed", c["failed"])
        yield self._one(CounterMetricFamily, "sink_offset_commits", c["commits"])

    def _stats(self, stats: Stats) -> Iterator[Metric]:
        yield self._one(CounterMetricFamily, "sink_records_skipped", stats.skipped_records)
        yield self._one(CounterMetricFamily, "sink_records_reported", stats.reported_records)
        tables = stats.table_view()
        rows = self._family(CounterMetricFamily, "sink_table_records_written", "table")
        sizes = self._family(HistogramMetricFamily, "sink_batch_records", "table")
        seconds = self._family(HistogramMetricFamily, "sink_batch_write_seconds", "table")
        for table in sorted(tables):
            labels = [self.sink_name, table]
            rows.add_metric(labels, tables[table].rows)
            size, took = stats.batch_rows.get(table), stats.batch_seconds.get(table)
            if size is not None:
                sizes.add_metric(labels, size.cumulative(), size.sum)
            if took is not None:
                seconds.add_metric(labels, took.cumulative(), took.sum)
        yield from (rows, sizes, seconds)
        errors = self._family(CounterMetricFamily, "sink_record_errors", "topic", "stage", "error_class", "action")
        for (topic, stage, error_class, dead), n in sorted(stats.failure_counts().items()):
            errors.add_metric([self.sink_name, topic, stage, error_class, "dead_letter" if dead else "log"], n)
        yield errors


def metrics_registry(health: Health, sink_name: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(HealthCollector(health, sink_name))
    registry.register(SinkCollector(health, sink_name))
    return registry


COUNTED = ("records_in", "rows_written", "rows_deleted", "dead_lettered", "failed")  # the throughput chart's lines


class StatusPage:
    """`/status.json`: the status document, with a throughput history sampled every `interval`
    seconds by a daemon thread (reading counters: nothing on the worker's side)."""

    def __init__(
        self,
        health: Health,
        sink_name: str,
        config: Callable[[], Mapping[str, Any]] | None = None,
        interval: float = 2.0,
    ) -> None:
        self.health = health
        self.sink_name = sink_name
        self.config = config
        self.history = History(interval=interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_every, args=(interval,), name="sink-status", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        counters = status.read(self.health).counters
        if counters is not None:
            self.history.sample(time.time(), {name: counters[name] for name in COUNTED})

    def _sample_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sample()
            except Exception:  # never let the page's sampler take anything down
                log.debug("status sample failed", exc_info=True)

    def document(self) -> dict[str, Any]:
        reading = status.read(self.health)
        if self.config is not None:
            config = self.config()
        elif self.health.watched is not None:
            config = status.rules_summary(self.health.watched)
        else:
            config = {}
        return status.document(self.health, reading, self.sink_name, self.history, config, time.time())

    def close(self) -> None:
        self._stop.set()


STATIC = {  # path -> (file in sink/adapters/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=utf-8"),
    "/static/status.css": ("status.css", "text/css; charset=utf-8"),
}


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class HttpServer:
    """Serve until `close()`; the thread is a daemon, so a forgotten server never holds the exit."""

    def __init__(
        self, host: str, port: int, health: Health, registry: CollectorRegistry, page: StatusPage | None = None
    ) -> None:
        self._page = page
        handler = type("Handler", (_Handler,), {"health": health, "registry": registry, "page": page})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"SINK_HTTP_PORT: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose a free port, or 0 / unset for no HTTP server"
            ) from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="sink-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._page is not None:
            self._page.close()
        self._server.shutdown()
        self._server.server_close()


def serve(
    host: str,
    port: int | None,
    health: Health,
    sink_name: str,
    settings: Any = None,
    worker: Any = None,
) -> HttpServer | None:
    """Start the endpoints on host:port; None when the port is unset or 0 (no server). With
    `settings`, the status page shows them (secrets masked); otherwise the worker's rules. The
    worker is the one attached to `health` (by `worker=`, `Health.attach` or the WatchedSource)."""
    if not port:
        return None
    if worker is not None:
        health.attach(worker)
    config = None if settings is None else (lambda: status.settings_summary(settings))
    page = StatusPage(health, sink_name, config)
    server = HttpServer(host, port, health, metrics_registry(health, sink_name), page)
    log.info("serving the status page, /status.json, /metrics, /livez and /readyz on %s:%d", host, server.port)
    return server


NOT_FOUND = b"not found: try /, /status.json, /metrics, /livez or /readyz\n"


class _Handler(BaseHTTPRequestHandler):
    health: Health
    registry: CollectorRegistry
    page: StatusPage | None
    server_version = "kafka-sql-sink"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, content_type, encoder(self.registry))
        elif path == "/livez":
            self._verdict(self.health.liveness())
        elif path == "/readyz":
            self._verdict(self.health.readiness())
        elif path == "/status.json" and self.page is not None:
            body = json.dumps(self.page.document(), default=str, allow_nan=False).encode()
            self._send(200, "application/json", body)
        elif path in STATIC and self.page is not None:
            name, content_type = STATIC[path]
            self._send(200, content_type, _static(name))
        else:
            self._send(404, "text/plain; charset=utf-8", NOT_FOUND)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _verdict(self, verdict: Verdict) -> None:
        body = json.dumps(verdict.as_json()).encode() + b"\n"
        self._send(200 if verdict.ok else 503, "application/json", body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: keep them out of the log
        log.debug("%s %s", self.address_string(), format % args)
