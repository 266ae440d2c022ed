"""OpenTelemetry tracing: a span per written batch, linked to the producers' spans.

Off unless `OTEL_TRACES_EXPORTER` names an exporter (`console`, `otlp`, ...; `none` or unset: off)
and `OTEL_SDK_DISABLED` is not `true`. Unlike the SDK's own default (`otlp`), an unset variable
means off: the sink then imports nothing from OpenTelemetry and pays nothing per record.

When on, everything else follows the SDK's environment configuration: the exporters are found by
the SDK's own helpers (entry points `opentelemetry_traces_exporter`, `OTEL_EXPORTER_OTLP_PROTOCOL`
picks gRPC or HTTP for `otlp`), `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the service
(default: the sink's `SINK_NAME`), the sampler (`OTEL_TRACES_SAMPLER`), span limits
(`OTEL_SPAN_*`) and the batch processor (`OTEL_BSP_*`) read their own variables, and each exporter
its own (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...).

Each batch write is one span `sink.write_batch` (kind CONSUMER) whose links are the span contexts
of the W3C `traceparent` headers (with `tracestate`) of the batch's records, distinct values only,
at most `MAX_LINKS`; the worker calls `BatchTracer.batch(batch)` around `Writer.write` (a retried
write is a span per attempt, the failed ones with status ERROR).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Fenced, RecordError, SinkError
from ..model import Batch, RawRecord, Settled, Status

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Link, Span, Tracer

MAX_LINKS = 128  # the SDK's default OTEL_SPAN_LINK_COUNT_LIMIT as well
SPAN_NAME = "sink.write_batch"
INSTALL_HINT = "pip install 'kafka-sql-sink[otel]'"


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces. Reads the two switches only; the SDK reads
    the rest (it is not imported when this says no)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = [name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    return any(name and name != "none" for name in names)


def make_tracer(sink_name: str, db_system: str, insert_mode: str) -> BatchTracer | None:
    """A BatchTracer when the OTEL_* variables turn tracing on, else None. ConfigError (exit 2,
    one line) when the packages it needs are not installed or an exporter is unknown."""
    if not tracing_enabled():
        return None
    try:
        from opentelemetry.sdk._configuration import _get_exporter_names, _import_exporters
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={os.environ.get('OTEL_TRACES_EXPORTER')}: tracing needs the OpenTelemetry "
            f"SDK ({exc.name} is missing): {INSTALL_HINT}"
        ) from None
    try:
        names = [name for name in _get_exporter_names("traces") if name.lower() != "none"]
        exporters, _, _ = _import_exporters(names, [], [])
    except RuntimeError as exc:  # no entry point for a name (the exporter's package is missing)
        raise ConfigError(_missing_exporter(exc)) from None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: sink_name}))
    provider = TracerProvider(resource=resource)  # sampler and span limits from OTEL_* as the SDK reads them
    for exporter in exporters.values():
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    return BatchTracer(provider, db_system, insert_mode)


def _missing_exporter(exc: RuntimeError) -> str:
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if "otlp" in wanted.lower():
        return (
            f"OTEL_TRACES_EXPORTER={wanted}: the OTLP exporter is not installed: "
            "pip install opentelemetry-exporter-otlp"
        )
    return f"OTEL_TRACES_EXPORTER={wanted}: {exc} (the sink knows console and otlp; {INSTALL_HINT})"


class BatchTracer:
    """What the worker calls per batch (`sink.worker.Worker(tracer=...)`); `close()` flushes and
    shuts the provider down when `sink run` stops."""

    def __init__(self, provider: TracerProvider, db_system: str, insert_mode: str) -> None:
        from opentelemetry.trace import SpanKind

        self.provider = provider
        self._tracer: Tracer = provider.get_tracer("kafka-sql-sink")
        self._kind = SpanKind.CONSUMER
        self._constant: dict[str, Any] = {
            "db.system": db_system,  # the older semantic conventions' name and the current one
            "db.system.name": db_system,
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "sink.insert_mode": insert_mode,
        }

    @contextmanager
    def batch(self, batch: Batch) -> Iterator[BatchSpan]:
        links, dropped, invalid = links_of(row.raw for row in batch.rows)
        attributes = {**self._constant, **batch_attributes(batch)}
        attributes["sink.links"] = len(links)
        attributes["sink.links.max"] = MAX_LINKS
        attributes["sink.links.dropped"] = dropped
        attributes["sink.links.invalid"] = invalid
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            kind=self._kind,
            links=links,
            attributes=attributes,
            record_exception=False,  # an exception's text may quote record values
            set_status_on_exception=False,
        ) as span:
            counts = BatchSpan(span)
            try:
                yield counts
            except Fenced:  # the partitions moved to another worker: not a failure of the write
                span.set_attribute("sink.fenced", True)
                counts.close()
                raise
            except SinkError as exc:  # an outage, a refusal, a stop: the write failed
                counts.close()
                _failed(span, exc)
                raise
            except BaseException as exc:
                # The writer thread hands a batch back to the loop after a part with a failed
                # record (the rest is another span): the failed records are then the reason.
                if not counts.close():
                    _failed(span, exc)
                raise
            counts.close()

    def close(self) -> None:
        self.provider.shutdown()  # flushes the batch processors first


def _failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status as SpanStatus
    from opentelemetry.trace import StatusCode

    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(SpanStatus(StatusCode.ERROR, _reason(exc)))


def _reason(exc: BaseException) -> str:
    """Value-free: a record error's own words, the sink's message for its other errors."""
    if isinstance(exc, RecordError):
        return exc.safe_reason
    if isinstance(exc, SinkError):
        return str(exc)
    return type(exc).__qualname__


class BatchSpan:
    """The open span of one batch. `committed(on_commit)` wraps the write's callback to count what
    each committed transaction settled (written / deleted / failed); the counts are set on the span
    when it ends, and failed records make its status ERROR."""

    __slots__ = ("deleted", "failed", "span", "written")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.written = self.deleted = self.failed = 0

    def committed(self, on_commit: Callable[[Settled], None]) -> Callable[[Settled], None]:
        def counted(part: Settled) -> None:
            for outcome in part:
                status = outcome.status
                if status is Status.WRITTEN:
                    self.written += 1
                elif status is Status.DELETED:
                    self.deleted += 1
                elif status is Status.FAILED:
                    self.failed += 1
            on_commit(part)

        return counted

    def close(self) -> bool:
        """Set the counts on the span; failed records make it an ERROR (then True)."""
        from opentelemetry.trace import Status as SpanStatus
        from opentelemetry.trace import StatusCode

        self.span.set_attributes(
            {
                "sink.records.written": self.written,
                "sink.records.deleted": self.deleted,
                "sink.records.failed": self.failed,
            }
        )
        if self.failed:
            self.span.set_status(SpanStatus(StatusCode.ERROR, f"{self.failed} record(s) of the batch failed"))
        return self.failed > 0


def batch_attributes(batch: Batch) -> dict[str, Any]:
    """Table, row count, topics, partitions and each partition's offset range (`topic/partition@first-last`)."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for row in batch.rows:
        topic, partition, offset = row.raw.coord
        span = ranges.get((topic, partition))
        if span is None:
            ranges[(topic, partition)] = [offset, offset]
        elif offset < span[0]:
            span[0] = offset
        elif offset > span[1]:
            span[1] = offset
    topics = sorted({topic for topic, _ in ranges})
    attributes: dict[str, Any] = {
        "sink.table": batch.table,
        "db.collection.name": batch.table,
        "sink.rows": len(batch.rows),
        "messaging.batch.message_count": len(batch.rows),
        "sink.topics": topics,
        "sink.partitions": [f"{t}/{p}" for t, p in sorted(ranges)],
        "sink.offsets": [f"{t}/{p}@{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items())],
    }
    if len(topics) == 1:
        attributes["messaging.destination.name"] = topics[0]
    return attributes


def links_of(records: Iterable[RawRecord], cap: int = MAX_LINKS) -> tuple[list[Link], int, int]:
    """The links to the span contexts in the records' `traceparent` headers (W3C trace context,
    parsed by OpenTelemetry's own propagator, with the record's `tracestate`): distinct header
    values once each, at most `cap`. Returns (links, dropped: distinct values past the cap, not
    parsed; invalid: distinct values that are not a valid traceparent)."""
    from opentelemetry.trace import Link, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    links: list[Link] = []
    seen: set[bytes] = set()
    dropped = invalid = 0
    for record in records:
        if not record.headers:
            continue
        parent = state = None
        for name, value in record.headers:
            lowered = name.lower()
            if lowered == "traceparent":
                parent = value
            elif lowered == "tracestate":
                state = value
        if parent is None or parent in seen:
            continue
        seen.add(parent)
        if len(links) >= cap:
            dropped += 1
            continue
        carrier = {"traceparent": parent.decode("latin-1")}
        if state is not None:
            carrier["tracestate"] = state.decode("latin-1")
        context = get_current_span(propagator.extract(carrier)).get_span_context()
        if context.is_valid:
            links.append(Link(context))
        else:
            invalid += 1
    return links, dropped, invalid
