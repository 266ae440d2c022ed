"""Command line and composition root: the only module that wires the stages to the adapters.

sink run   [--env-file F ...]   consume, write, commit until SIGTERM/SIGINT
sink check [--env-file F ...]   validate the configuration, reach broker, registry and database
sink quickstart                 embedded broker + SQLite, sample orders in, rows out, a summary
sink reset-offsets [--env-file F ...] (--topic T[:P,P] | --all-topics) --to-earliest|... [--execute]
                                move the sink's consumer group (kafka-consumer-groups' words; dry run by default)
sink dlq inspect [--env-file F ...] [--json] [--limit N]     the dead-letter topic as a table, counts per reason
sink dlq redrive [--env-file F ...] [--topic T] [--error-class C] [--from-offset N --to-offset M] [--execute]
                                send dead-lettered records back to their source topic (dry run by default)
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from .batch import Batcher
from .config import Settings, load_settings
from .errors import ConfigError, FatalError, SinkError
from .formats import make_decoder
from .health import Health, WatchedSource
from .identifiers import IdentifierRules
from .logs import setup_logging
from .outcomes import OutcomeRouter, RoutingRules
from .pipeline import Preparer, Writer, WriteRules
from .ports import SchemaSource, Source
from .progress import LogReporter, Reporter, TerminalReporter
from .transforms import MappingRules, RowMapper
from .worker import LoopRules, Worker

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger("sink")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "quickstart":
        from .quickstart import quickstart

        return quickstart()
    try:
        settings = load_settings(args.env_file or ())
    except ConfigError as exc:
        print(f"sink: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    setup_logging(settings.log_level, settings.log_format)
    try:
        checked = _preflight(settings, args.command)
    except ConfigError as exc:
        print(f"sink: configuration error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.command == "check":
        return check(settings)
    if args.command == "reset-offsets":
        return reset_offsets(settings, args)
    if args.command == "dlq":
        return dead_letters(settings, args)
    return run(settings, checked)


@dataclass(frozen=True, slots=True)
class Checked:
    """What the start-up checks of `sink run` built, for the worker to use instead of building it
    again: the registry client (None when no format uses one) and the engine, its first
    connection kept in the pool."""

    registry: SchemaSource | None
    engine: Engine


def _preflight(settings: Settings, command: str) -> Checked | None:
    """Configuration problems the settings alone cannot show, found before anything starts; for
    `sink run`, also the dead-letter and report topics, created when missing before the group is joined."""
    from .checks import connect_database, prepare_topics, validate_clients

    registry = validate_clients(settings)
    if command != "run":  # `sink check` reports the database on its own line
        return None
    engine = connect_database(settings)
    try:
        prepare_topics(settings)
    except BaseException:
        engine.dispose()  # the connection kept for the worker: no worker now
        raise
    return Checked(registry, engine)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sink", description="Kafka topics into SQL tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "consume and write until stopped"),
        ("check", "validate and reach every service"),
        ("reset-offsets", "move the sink's consumer group offsets (dry run unless --execute)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--env-file",
            action="append",
            metavar="FILE",
            help="env file with SINK_* settings; repeatable, later wins",
        )
        if name == "reset-offsets":
            from .reset import add_arguments

            add_arguments(command)
    commands.add_parser("quickstart", help="run the sink end to end on an embedded broker and SQLite")
    _dlq_parser(commands)
    return parser


def _dlq_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .dlq_commands import add_arguments

    dlq = commands.add_parser("dlq", help="read the dead-letter topic, send its records back")
    actions = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, text in (
        ("inspect", "the dead-letter topic as a table (or --json), with counts per reason"),
        ("redrive", "send dead-lettered records back to their source topic (dry run unless --execute)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--env-file", action="append", metavar="FILE", help="env file with SINK_* settings; repeatable, later wins"
        )
        add_arguments(action, redrive=name == "redrive")


# ------------------------------------------------------------------------------ run


def build_worker(
    settings: Settings, health: Health | None = None, report: Reporter | None = None, checked: Checked | None = None
) -> tuple[Worker, list[object]]:
    """Wire a worker from settings; also return what must be closed afterwards. With `health`, the
    source reports heartbeats, assignments and pauses to it (for /livez and /readyz). With
    `checked`, the clients the start-up checks built are used rather than built again."""
    from .adapters.db import SqlStore, create_engine
    from .adapters.kafka import KafkaPublisher, KafkaSource, consumer_config
    from .adapters.tracing import make_tracer

    if checked is None:  # what the start-up checks would have built
        checked = Checked(_registry(settings), create_engine(settings.database_url.get_secret_value()))
    store = SqlStore(checked.engine, report_operations=bool(settings.reporter_result_topic_name))
    # OpenTelemetry: None unless OTEL_TRACES_EXPORTER names an exporter (ConfigError: a package missing)
    tracer = make_tracer(settings.name, store.engine.dialect.name, settings.insert_mode)
    registry = checked.registry
    dialect = store.dialect  # the target database's rules for names and table width
    rules = rules_from(
        settings,
        dialect.identifiers,
        dialect.max_columns,
        isinstance(report, TerminalReporter),
        loose_string_keys=dialect.loose_string_keys,
    )
    depth = settings.record_max_depth
    preparer = Preparer(
        make_decoder(settings.key_format, registry, depth),
        make_decoder(settings.value_format, registry, depth),
        RowMapper(rules.mapping, dialect.identifiers),
    )
    writer = Writer(store, rules.write)
    routing = rules.routing
    publisher = None
    if routing.dlq_topic or routing.result_topic or routing.error_topic:
        publisher = KafkaPublisher(settings.bootstrap_servers, settings.producer_config())
    source: Source = KafkaSource(
        consumer_config(settings.bootstrap_servers, settings.effective_group_id, settings.consumer_config()),
        settings.topics,
        settings.topics_regex,
    )
    if health is not None:
        source = WatchedSource(source, health)
    ledger = None
    if settings.delivery_guarantee == "exactly_once":  # positions kept in the target database
        from .adapters.db import SqlOffsets
        from .offsets import Ledger

        ledger = Ledger(SqlOffsets(store, settings.effective_group_id, settings.offsets_table_name))
    worker = Worker(
        source,
        preparer,
        writer,
        Batcher(settings.batch_size, settings.batch_max_wait_ms, time.monotonic, settings.buffer_max_bytes),
        OutcomeRouter(routing, publisher),
        rules.loop,
        time.monotonic,
        health,
        ledger=ledger,
        report=report,
        tracer=tracer,
    )
    closeables: list[object] = [c for c in (publisher, store, tracer) if c is not None]  # the tracer flushes
    return worker, closeables


def _registry(settings: Settings) -> SchemaSource | None:
    if not settings.uses_registry or not settings.schema_registry_url:
        return None
    from .adapters.registry import RegistrySchemaSource

    return RegistrySchemaSource(settings.schema_registry_url, settings.registry_config())


@dataclass(frozen=True, slots=True)
class Rules:
    """Every rule object a worker is built from."""

    mapping: MappingRules
    write: WriteRules
    routing: RoutingRules
    loop: LoopRules


def rules_from(
    s: Settings,
    identifiers: IdentifierRules | None = None,
    database_max_columns: int | None = None,
    progress_every_second: bool = False,
    loose_string_keys: bool = False,
) -> Rules:
    """The settings as the core's rule objects, each built by keyword, in one place. `identifiers`,
    `database_max_columns` and `loose_string_keys` are the target database's (names, table width,
    how it compares key strings)."""
    identifiers = identifiers or IdentifierRules()
    stats_interval_s = s.log_stats_interval_ms / 1000
    return Rules(
        mapping=MappingRules(
            table_name_format=s.table_name_format,
            pk_mode=s.pk_mode,
            pk_fields=s.pk_fields,
            fields_include=s.fields_include,
            fields_exclude=s.fields_exclude,
            delete_enabled=s.delete_enabled,
            cdc_format=s.cdc_format,
            transforms=s.transforms,
            cdc_add_fields=s.cdc_add_fields,
            cdc_add_fields_prefix=s.cdc_add_fields_prefix,
            cdc_soft_delete=s.cdc_delete_mode == "soft",
            cdc_unavailable_value=s.cdc_unavailable_value_placeholder,
            version_field=s.upsert_version_field,
            value_column_name=s.value_column_name,
            key_column_name=s.key_column_name,
            truncate_enabled=s.truncate_enabled,
        ),
        write=WriteRules(
            insert_mode=s.insert_mode,
            auto_create=s.auto_create,
            auto_evolve=s.auto_evolve,
            stop_at_rejection=s.errors_tolerance == "none",
            identifiers=identifiers,
            max_columns=min(filter(None, (s.table_max_columns, database_max_columns)), default=None),
            version_field=s.upsert_version_field,
            loose_string_keys=loose_string_keys,
        ),
        routing=RoutingRules(
            connector_name=s.name,
            tolerance=s.errors_tolerance,
            dlq_topic=s.errors_deadletterqueue_topic_name,
            dlq_context_headers=s.errors_deadletterqueue_context_headers_enable,
            max_ratio=s.errors_deadletterqueue_max_ratio,
            ratio_window=s.errors_deadletterqueue_ratio_window,
            max_consecutive=s.errors_deadletterqueue_max_consecutive,
            log_errors=s.errors_log_enable,
            log_messages=s.errors_log_include_messages,
            result_topic=s.reporter_result_topic_name,
            error_topic=s.reporter_error_topic_name,
        ),
        loop=LoopRules(
            max_poll_records=min(s.batch_size, 5000),
            stats_interval_s=min(stats_interval_s, 1.0) if progress_every_second else stats_interval_s,
            retry_timeout_s=None if s.errors_retry_timeout_ms < 0 else s.errors_retry_timeout_ms / 1000,
            retry_delay_max_s=s.errors_retry_delay_max_ms / 1000,
            shutdown_timeout_s=s.shutdown_timeout_ms / 1000,
        ),
    )


def run(settings: Settings, checked: Checked | None = None) -> int:
    log.info(
        "starting sink %r: group %s, topics %s, database %s",
        settings.name,
        settings.effective_group_id,
        ",".join(settings.topics) or settings.topics_regex,
        settings.safe_database_url(),
    )
    health = Health(
        time.monotonic, settings.health_heartbeat_timeout_ms / 1000, settings.health_retry_unready_ms / 1000
    )
    try:
        http = _serve_http(settings, health)
        worker, closeables = build_worker(settings, health, _reporter(), checked)
    except SinkError as exc:
        if checked is not None:  # no store took the engine over: close its connection
            checked.engine.dispose()
        if isinstance(exc, ConfigError):
            print(f"sink: configuration error: {exc}", file=sys.stderr)
            return exc.exit_code
        log.error("cannot start: %s", exc)
        return exc.exit_code if isinstance(exc, FatalError) else 1

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: flushing, committing and leaving the group", signal.Signals(signum).name)
        health.stopping()
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _quiet_garbage_collector()
    code = worker.run()
    for closeable in [*closeables, *([http] if http else [])]:
        closeable.close()
    log.info("stopped with exit code %d", code)
    return code


def _reporter() -> Reporter:
    """In a terminal, one progress line updated every second and a summary table at the end;
    otherwise (a container, a pipe) the same numbers as log lines at SINK_LOG_STATS_INTERVAL_MS."""
    if sys.stderr.isatty():
        return TerminalReporter(sys.stderr, time.monotonic())
    return LogReporter()


def _serve_http(settings: Settings, health: Health):  # type: ignore[no-untyped-def]
    """/metrics, /livez, /readyz on SINK_HTTP_PORT (None when unset or 0)."""
    if not settings.http_port:
        return None
    from .adapters.http import serve

    return serve(settings.http_host, settings.http_port, health, settings.name, settings=settings)


def _quiet_garbage_collector() -> None:
    """The loop allocates small, short-lived, acyclic objects at a high rate (a few per record):
    collect the older generations less often (cycles are still collected). The worker freezes
    what start-up made (modules, SQLAlchemy, clients: most of the heap) out of the collector's
    view and collects the young generation less often while it runs (worker._runtime_tuned).
    No full collection before: it would take 50-90 ms on the way to the group join and find
    about 60 objects (8 KB) to free."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)


# ------------------------------------------------------------------------------ check


def check(settings: Settings) -> int:
    from .checks import run_checks

    return run_checks(settings)


# ------------------------------------------------------------------------------ reset-offsets


def reset_offsets(settings: Settings, args: argparse.Namespace) -> int:
    from .adapters.db import SqlOffsets, SqlStore, create_engine
    from .adapters.offsets_admin import OffsetsAdmin
    from .reset import PositionsPort, run_command

    def connect() -> OffsetsAdmin:
        return OffsetsAdmin(settings.bootstrap_servers, settings.consumer_config())

    stores: list[SqlStore] = []

    def table(group: str) -> PositionsPort:
        """Exactly-once: the group's rows in the offsets table of the target database."""
        store = SqlStore(create_engine(settings.database_url.get_secret_value()))
        stores.append(store)
        return SqlOffsets(store, group, settings.offsets_table_name, create=False)

    try:
        return run_command(
            args,
            settings.effective_group_id,
            settings.topics,
            settings.topics_regex,
            connect,
            exactly_once=settings.delivery_guarantee == "exactly_once",
            table=table,
        )
    finally:
        for store in stores:
            store.close()


# ------------------------------------------------------------------------------ dlq inspect | redrive


def dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """`sink dlq inspect | redrive`: 0 done (or dry run), 2 refused (one line), 1 the broker failed
    or the run was interrupted (after finishing the batch in flight)."""
    from . import dlq_commands

    topic = settings.errors_deadletterqueue_topic_name
    if not topic:
        print(
            "sink: configuration error: SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME: not set; "
            "`sink dlq` reads the dead-letter topic it names",
            file=sys.stderr,
        )
        return 2
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    closeables: list[object] = []
    try:
        chosen = dlq_commands.selection(args)
        from .adapters.dlq import DeadLetterReader, Republisher

        redrive = args.dlq_command == "redrive"
        suffix = ".redrive" if redrive else ".inspect"  # the inspect group never commits: it leaves no trace
        group = (args.group if redrive else None) or settings.effective_group_id + suffix
        reader = DeadLetterReader(settings.bootstrap_servers, group, settings.consumer_config(), args.idle_ms / 1000)
        closeables.append(reader)
        if not redrive:
            return dlq_commands.inspect(topic, reader, chosen, args.limit, args.json, print, lambda: bool(stopping))
        publisher = None
        if args.execute:
            publisher = Republisher(settings.bootstrap_servers, settings.producer_config())
            closeables.append(publisher)
        return dlq_commands.redrive(
            topic, group, reader, publisher, chosen, args.limit, print, lambda: bool(stopping), args.batch_size
        )
    except SinkError as exc:
        print(f"sink: dlq {args.dlq_command}: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, FatalError) else 1
    finally:
        for closeable in reversed(closeables):
            closeable.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
