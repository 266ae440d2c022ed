"""OpenTelemetry tracing (sink/adapters/tracing.py): when it is on, the links parsed from the records'
`traceparent` headers (valid, invalid, missing, repeated, the cap), the span of a batch (attributes,
outcome counts, status), the worker's spans with in-memory fakes, and the configuration (OTEL_*,
the missing packages); when it is off, nothing from OpenTelemetry is imported.

The spans go to the SDK's in-memory exporter: no socket is opened."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sink.adapters.tracing import MAX_LINKS, SPAN_NAME, BatchTracer, links_of, make_tracer, tracing_enabled
from sink.batch import Batcher
from sink.errors import ConfigError, DatabaseUnavailable, Fenced, RecordRejected
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.model import Batch, Column, ColumnType, Coord, Kind, Op, Outcome, RawRecord, Row, Status, TableSpec
from sink.outcomes import OutcomeRouter, RoutingRules
from sink.pipeline import Preparer, Writer, WriteRules
from sink.plan import Plan
from sink.transforms import MappingRules, RowMapper
from sink.worker import LoopRules, Worker
from tests.support import fakes
from tests.support.fakes import Clock, FakeSource, FakeStore

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_A = "00f067aa0ba902b7"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
SPAN_B = "b7ad6b7169203331"


def traceparent(trace_id: str, span_id: str, flags: str = "01") -> bytes:
    return f"00-{trace_id}-{span_id}-{flags}".encode()


def record(offset: int, *headers: tuple[str, bytes | None], partition: int = 0, topic: str = "orders") -> RawRecord:
    value = json.dumps({"id": offset, "qty": 1}).encode()
    return RawRecord(Coord(topic, partition, offset), f"k{offset}".encode(), value, tuple(headers))


def linked(links: list[Any]) -> list[tuple[str, str]]:
    return [(format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) for link in links]


# ------------------------------------------------------------------------------ links from headers


def test_a_valid_traceparent_is_a_link_to_the_producers_span_with_its_tracestate() -> None:
    links, dropped, invalid = links_of(
        [record(0, ("traceparent", traceparent(TRACE_A, SPAN_A)), ("tracestate", b"vendor=abc"))]
    )
    assert linked(links) == [(TRACE_A, SPAN_A)]
    assert (dropped, invalid) == (0, 0)
    context = links[0].context
    assert context.is_remote and context.trace_flags.sampled
    assert context.trace_state.get("vendor") == "abc"


def test_records_without_the_header_give_no_link_and_others_still_do() -> None:
    records = [
        record(0),  # no headers at all
        record(1, ("other", b"x"), ("tracestate", b"vendor=abc")),  # a tracestate alone is nothing
        record(2, ("traceparent", None)),  # a null header value
        record(3, ("Traceparent", traceparent(TRACE_B, SPAN_B, "00"))),  # any case, not sampled: still a link
    ]
    links, dropped, invalid = links_of(records)
    assert linked(links) == [(TRACE_B, SPAN_B)]
    assert not links[0].context.trace_flags.sampled
    assert (dropped, invalid) == (0, 0)


@pytest.mark.parametrize(
    "value",
    [
        b"garbage",
        b"",
        f"00-{'0' * 32}-{SPAN_A}-01".encode(),  # all-zero trace id
        f"00-{TRACE_A}-{'0' * 16}-01".encode(),  # all-zero span id
        f"ff-{TRACE_A}-{SPAN_A}-01".encode(),  # the forbidden version
        f"00-{TRACE_A[:-1]}-{SPAN_A}-01".encode(),  # a trace id one digit short
        b"\xff\xfe\x00",  # not text
    ],
)
def test_an_invalid_traceparent_is_counted_not_linked(value: bytes) -> None:
    links, dropped, invalid = links_of([record(0, ("traceparent", value)), record(1, ("traceparent", value))])
    assert links == []
    assert (dropped, invalid) == (0, 1)  # distinct values are judged once


def test_records_of_one_producer_span_share_one_link_in_record_order() -> None:
    a, b = traceparent(TRACE_A, SPAN_A), traceparent(TRACE_B, SPAN_B)
    records = [record(i, ("traceparent", value)) for i, value in enumerate([a, a, b, a, b])]
    links, dropped, invalid = links_of(records)
    assert linked(links) == [(TRACE_A, SPAN_A), (TRACE_B, SPAN_B)]
    assert (dropped, invalid) == (0, 0)


def test_links_stop_at_the_cap_and_the_rest_is_counted_as_dropped() -> None:
    spans = [f"{i + 1:016x}" for i in range(MAX_LINKS + 72)]
    records = [record(i, ("traceparent", traceparent(TRACE_A, span))) for i, span in enumerate(spans)]
    records.append(record(999, ("traceparent", traceparent(TRACE_A, spans[0]))))  # a repeat is no drop
    links, dropped, invalid = links_of(records)
    assert MAX_LINKS == 128
    assert len(links) == MAX_LINKS
    assert linked(links) == [(TRACE_A, span) for span in spans[:MAX_LINKS]]  # the first ones, in order
    assert (dropped, invalid) == (72, 0)
    few, dropped, _ = links_of(records[:5], cap=2)
    assert len(few) == 2 and dropped == 3


# ------------------------------------------------------------------------------ a batch's span


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[BatchTracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = BatchTracer(provider, "postgresql", "upsert")
    yield tracer
    tracer.close()


SPEC = TableSpec(
    "orders", (Column("id", ColumnType(Kind.INT64), nullable=False), Column("qty", ColumnType(Kind.INT64))), ("id",)
)


def batch_of(records: list[RawRecord], table: str = "orders") -> Batch:
    rows = tuple(
        Row(r, table, Op.UPSERT, {"id": r.coord.offset}, {"id": r.coord.offset, "qty": 1}, SPEC) for r in records
    )
    return Batch(table, SPEC, rows)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


def test_a_written_batch_is_one_span_with_its_coordinates_counts_and_links(
    tracer: BatchTracer, exporter: InMemorySpanExporter
) -> None:
    records = [
        record(10, ("traceparent", traceparent(TRACE_A, SPAN_A)), partition=1),
        record(11, partition=1),
        record(12, ("traceparent", traceparent(TRACE_B, SPAN_B)), partition=1),
        record(3, partition=0),
    ]
    batch = batch_of(records)
    parts: list[list[Outcome]] = []
    with tracer.batch(batch) as span:
        on_commit = span.committed(parts.append)
        on_commit([Outcome(r, Status.WRITTEN, "orders", "upsert") for r in records[:3]])
        on_commit([Outcome(records[3], Status.DELETED, "orders", "delete")])
    assert [len(part) for part in parts] == [3, 1], "the worker's callback still hears every part"

    span = only_span(exporter)
    assert span.name == SPAN_NAME == "sink.write_batch"
    assert span.kind is SpanKind.CONSUMER
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "sink.insert_mode": "upsert",
        "sink.table": "orders",
        "db.collection.name": "orders",
        "sink.rows": 4,
        "messaging.batch.message_count": 4,
        "sink.topics": ("orders",),
        "messaging.destination.name": "orders",
        "sink.partitions": ("orders/0", "orders/1"),
        "sink.offsets": ("orders/0@3-3", "orders/1@10-12"),
        "sink.links": 2,
        "sink.links.max": MAX_LINKS,
        "sink.links.dropped": 0,
        "sink.links.invalid": 0,
        "sink.records.written": 3,
        "sink.records.deleted": 1,
        "sink.records.failed": 0,
    }
    assert linked(list(span.links)) == [(TRACE_A, SPAN_A), (TRACE_B, SPAN_B)]
    assert span.parent is None, "a batch's span starts its own trace; the records' spans are links"


def test_a_batch_from_two_topics_names_both_and_no_single_destination(
    tracer: BatchTracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.batch(batch_of([record(0, topic="b"), record(5, topic="a"), record(4, topic="a")])):
        pass
    attributes = dict(only_span(exporter).attributes or {})
    assert attributes["sink.topics"] == ("a", "b")
    assert attributes["sink.offsets"] == ("a/0@4-5", "b/0@0-0")
    assert "messaging.destination.name" not in attributes


def test_failed_records_make_the_span_an_error_with_their_count(
    tracer: BatchTracer, exporter: InMemorySpanExporter
) -> None:
    records = [record(0), record(1), record(2)]
    with tracer.batch(batch_of(records)) as span:
        span.committed(lambda part: None)(
            [
                Outcome(records[0], Status.WRITTEN, "orders", "upsert"),
                Outcome(records[1], Status.FAILED, "orders", "upsert", error=RecordRejected("check violated")),
                Outcome(records[2], Status.WRITTEN, "orders", "upsert"),
            ]
        )
    finished = only_span(exporter)
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "1 record(s) of the batch failed"
    attributes = finished.attributes or {}
    assert (attributes["sink.records.written"], attributes["sink.records.failed"]) == (2, 1)


def test_a_write_that_raises_ends_its_span_with_error_and_a_value_free_reason(
    tracer: BatchTracer, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(RecordRejected), tracer.batch(batch_of([record(0)])):
        raise RecordRejected("duplicate key: (card)=(4111-1111)", sqlstate="23505", constraint="orders_pkey")
    with pytest.raises(DatabaseUnavailable), tracer.batch(batch_of([record(1)])):
        raise DatabaseUnavailable("connection refused")
    rejected, outage = exporter.get_finished_spans()
    assert rejected.status.status_code is StatusCode.ERROR
    assert rejected.status.description == "rejected by the database (SQLSTATE 23505); constraint orders_pkey"
    assert (rejected.attributes or {})["error.type"] == "RecordRejected"
    assert "4111" not in rejected.to_json(), "the database's message quotes the value: never in the span"
    assert outage.status.status_code is StatusCode.ERROR
    assert outage.status.description == "connection refused"
    assert (outage.attributes or {})["sink.records.written"] == 0


def test_a_fenced_write_is_not_an_error(tracer: BatchTracer, exporter: InMemorySpanExporter) -> None:
    with pytest.raises(Fenced), tracer.batch(batch_of([record(0)])):
        raise Fenced(frozenset({("orders", 0)}))
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert (span.attributes or {})["sink.fenced"] is True


# ------------------------------------------------------------------------------ the worker's spans


class FakeTx(fakes.FakeTx):
    """Upserts; a negative qty violates a check constraint."""

    def apply(self, spec: TableSpec, plan: Plan, mode: str) -> dict[int, str]:
        table = self.store.rows.setdefault(spec.name, {})
        for write in plan.writes:
            for row in write.rows:
                values = dict(row)
                if values.get("qty", 0) < 0:
                    raise RecordRejected('new row violates check constraint "qty_nonneg"', sqlstate="23514")
                table[fakes.row_key(spec, values)] = values
        return {}


def run_worker(tracer: BatchTracer | None, *polls: list[RawRecord], background: bool = True) -> FakeStore:
    clock = Clock()
    store = FakeStore(FakeTx)
    source = FakeSource(clock)
    worker = Worker(
        source,
        Preparer(StringDecoder(), JsonDecoder(), RowMapper(MappingRules(pk_mode="record_value", pk_fields=("id",)))),
        Writer(store, WriteRules("upsert", auto_create=True, auto_evolve=True, stop_at_rejection=False)),
        Batcher(3, 60_000, clock),
        OutcomeRouter(RoutingRules(tolerance="all"), None),
        LoopRules(poll_timeout_s=0.1, stats_interval_s=3600, write_in_background=background),
        clock,
        tracer=tracer,
    )
    source.script.extend(polls)
    source.when_done = worker.stop
    assert worker.run() == 0
    return store


def qty(offset: int, value: int, *headers: tuple[str, bytes | None]) -> RawRecord:
    return RawRecord(Coord("orders", 0, offset), None, json.dumps({"id": offset, "qty": value}).encode(), headers)


@pytest.mark.parametrize("background", [True, False])
def test_the_worker_makes_one_span_per_written_batch(
    tracer: BatchTracer, exporter: InMemorySpanExporter, background: bool
) -> None:
    a, b = ("traceparent", traceparent(TRACE_A, SPAN_A)), ("traceparent", traceparent(TRACE_B, SPAN_B))
    store = run_worker(
        tracer,
        [qty(0, 1, a), qty(1, 1, a), qty(2, -1, b)],  # a batch of 3, one rejected row
        [qty(3, 1, b), qty(4, 1)],  # the last, closed at the stop
        background=background,
    )
    assert store.values() == [0, 1, 3, 4]
    spans = sorted(exporter.get_finished_spans(), key=lambda s: (s.attributes or {})["sink.offsets"])
    assert len(spans) == 2, "one span per written batch"
    first, last = spans
    assert {k: v for k, v in (first.attributes or {}).items() if k.startswith("sink.")} == {
        "sink.insert_mode": "upsert",
        "sink.table": "orders",
        "sink.rows": 3,
        "sink.topics": ("orders",),
        "sink.partitions": ("orders/0",),
        "sink.offsets": ("orders/0@0-2",),
        "sink.links": 2,
        "sink.links.max": MAX_LINKS,
        "sink.links.dropped": 0,
        "sink.links.invalid": 0,
        "sink.records.written": 2,
        "sink.records.deleted": 0,
        "sink.records.failed": 1,
    }
    # On the writer thread the part with the failed record is handed back to the loop: the span
    # still says why it failed, as in the foreground, never the hand-back's own name.
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "1 record(s) of the batch failed"
    assert "error.type" not in (first.attributes or {})
    assert linked(list(first.links)) == [(TRACE_A, SPAN_A), (TRACE_B, SPAN_B)]
    assert (last.attributes or {})["sink.offsets"] == ("orders/0@3-4",)
    assert (last.attributes or {})["sink.records.written"] == 2
    assert linked(list(last.links)) == [(TRACE_B, SPAN_B)]
    assert last.status.status_code is StatusCode.UNSET


def test_without_a_tracer_the_worker_writes_the_same() -> None:
    assert run_worker(None, [qty(0, 1), qty(1, 1), qty(2, 1)], [qty(3, 1)]).values() == [0, 1, 2, 3]


# ------------------------------------------------------------------------------ configuration


OTEL_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": ""}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": " None "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, False),  # an endpoint alone is not a choice
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_tracing_is_on_only_when_an_exporter_is_named(environ: dict[str, str], on: bool) -> None:
    assert tracing_enabled(environ) is on


def test_off_make_tracer_is_none(otel_env: pytest.MonkeyPatch) -> None:
    assert make_tracer("orders-sink", "postgresql", "insert") is None
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    assert make_tracer("orders-sink", "postgresql", "insert") is None


def test_off_nothing_from_opentelemetry_is_imported() -> None:
    """The sink runs without the otel extra: building a worker's pieces imports none of it."""
    code = (
        "import os, sys\n"
        "for name in [n for n in os.environ if n.startswith('OTEL_')]: del os.environ[name]\n"
        "import sink.cli, sink.worker\n"
        "from sink.adapters.tracing import make_tracer\n"
        "assert make_tracer('s', 'sqlite', 'insert') is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "print(','.join(loaded) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


def test_on_the_service_is_the_sink_unless_otel_service_name_says_otherwise(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    tracer = make_tracer("orders-sink", "postgresql", "insert")
    assert tracer is not None
    try:
        assert tracer.provider.resource.attributes["service.name"] == "orders-sink"
    finally:
        tracer.close()
    otel_env.setenv("OTEL_SERVICE_NAME", "billing")
    tracer = make_tracer("orders-sink", "postgresql", "insert")
    assert tracer is not None
    try:
        assert tracer.provider.resource.attributes["service.name"] == "billing"
    finally:
        tracer.close()


@pytest.mark.skipif(
    any(ep.name.startswith("otlp") for ep in entry_points(group="opentelemetry_traces_exporter")),
    reason="the OTLP exporter is installed here",
)
def test_otlp_without_its_package_is_a_configuration_error_naming_it(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(ConfigError) as error:
        make_tracer("orders-sink", "postgresql", "insert")
    assert error.value.exit_code == 2
    assert "pip install opentelemetry-exporter-otlp" in str(error.value)
    assert "\n" not in str(error.value)


def test_an_unknown_exporter_is_a_configuration_error(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")
    with pytest.raises(ConfigError, match=r"OTEL_TRACES_EXPORTER=carrier-pigeon: .*carrier-pigeon"):
        make_tracer("orders-sink", "postgresql", "insert")


def test_without_the_sdk_the_error_says_what_to_install(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    otel_env.setitem(sys.modules, "opentelemetry.sdk._configuration", None)  # import fails as if absent
    with pytest.raises(ConfigError) as error:
        make_tracer("orders-sink", "postgresql", "insert")
    assert "pip install 'kafka-sql-sink[otel]'" in str(error.value)
    assert error.value.exit_code == 2
