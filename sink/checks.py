"""`sink check`: validate the configuration and reach every service, one line per check; and
the start-up checks `sink run` makes before it joins the group (a ConfigError each, exit code 2)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import ConfigError, SinkError
from .logs import ClientLog, mask_secrets

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .adapters.topics import AdminFactory, TopicAdmin, TopicRefused
    from .ports import SchemaSource

log = logging.getLogger("sink.checks")

BROKER_TIMEOUT_S = 10.0
DLQ_PARTITIONS = 1  # as Connect creates a dead-letter topic (DeadLetterQueueReporter.DLQ_NUM_DESIRED_PARTITIONS)
DLQ_TOPIC = "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME"
DLQ_REPLICATION = "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR"
RESULT_TOPIC = "SINK_REPORTER_RESULT_TOPIC_NAME"
RESULT_REPLICATION = "SINK_REPORTER_RESULT_TOPIC_REPLICATION_FACTOR"
ERROR_TOPIC = "SINK_REPORTER_ERROR_TOPIC_NAME"
ERROR_REPLICATION = "SINK_REPORTER_ERROR_TOPIC_REPLICATION_FACTOR"

# MySQL/MariaDB errnos of a connection the server refused for good: wrong database, user or password.
MYSQL_REFUSED = {
    1044: "ER_DBACCESS_DENIED_ERROR",
    1045: "ER_ACCESS_DENIED_ERROR",
    1049: "ER_BAD_DB_ERROR",
    1698: "ER_ACCESS_DENIED_NO_PASSWORD_ERROR",
}
# libpq keeps no SQLSTATE for a refused connection (psycopg's error has none), only the server's
# FATAL line: these are the server's own words for 3D000 / 28000 / 28P01. A localized server
# message is not recognised and the sink falls back to retrying it as an outage.
PG_REFUSED = (
    ("3D000 invalid_catalog_name", re.compile(r'FATAL:\s+(database ".*" does not exist)')),
    ("28000 invalid_authorization_specification", re.compile(r'FATAL:\s+(role ".*" does not exist)')),
    ("28000 invalid_authorization_specification", re.compile(r"FATAL:\s+(no pg_hba\.conf entry.*)")),
    ("28P01 invalid_password", re.compile(r"FATAL:\s+(password authentication failed.*)")),
)


def validate_clients(s: Settings) -> SchemaSource | None:
    """Build every client's configuration without reaching any service: a librdkafka property typo,
    a value it refuses, a regex it cannot compile, a bad registry property is a ConfigError now.
    Returns the registry client it built (None when no format uses one): `sink run` uses it rather
    than build a second (about 0.1 s: the HTTP client loads the CA certificates)."""
    from .adapters.kafka import validate_consumer_config, validate_producer_config

    validate_consumer_config(s.consumer_config(), s.topics, s.topics_regex)
    validate_producer_config(s.producer_config())
    if s.uses_registry and s.schema_registry_url:
        from .adapters.registry import RegistrySchemaSource

        return RegistrySchemaSource(s.schema_registry_url, s.registry_config())
    return None


def connect_database(s: Settings) -> Engine:
    """Connect once. A database, role or password the server refuses is a ConfigError (an outage
    retried forever otherwise); a server that does not answer stays an outage the worker waits out.
    Returns the engine with that connection kept in its pool, for the worker: its first batch then
    finds the connection open and the dialect's first-connect queries done."""
    import sqlalchemy as sa

    from .adapters.db import create_engine

    engine = create_engine(s.database_url.get_secret_value())
    try:
        with engine.connect():
            return engine
    except sa.exc.DBAPIError as error:
        problem = _refusal(error.orig)
    except sa.exc.SQLAlchemyError:
        return engine
    if problem:
        engine.dispose()
        raise ConfigError(f"SINK_DATABASE_URL: the database refused the connection: {problem}")
    return engine


@dataclass(frozen=True, slots=True)
class OwnTopic:
    """A topic the sink writes to, created at start when it is missing: what it is (for messages),
    its name, partitions and replication factor, and the settings that name them."""

    what: str
    name: str
    partitions: int
    factor: int
    name_setting: str
    factor_setting: str


def own_topics(s: Settings) -> list[OwnTopic]:
    """The dead-letter, result and error topics configured, each once (one topic may be named twice:
    it is made as the first names it)."""
    candidates = [
        (s.errors_deadletterqueue_topic_name, "dead-letter topic", DLQ_PARTITIONS,
         s.errors_deadletterqueue_topic_replication_factor, DLQ_TOPIC, DLQ_REPLICATION),
        (s.reporter_result_topic_name, "result topic", s.reporter_result_topic_partitions,
         s.reporter_result_topic_replication_factor, RESULT_TOPIC, RESULT_REPLICATION),
        (s.reporter_error_topic_name, "error topic", s.reporter_error_topic_partitions,
         s.reporter_error_topic_replication_factor, ERROR_TOPIC, ERROR_REPLICATION),
    ]  # fmt: skip
    topics: dict[str, OwnTopic] = {}
    for name, what, partitions, factor, name_setting, factor_setting in candidates:
        if name and name not in topics:
            topics[name] = OwnTopic(what, name, partitions, factor, name_setting, factor_setting)
    return list(topics.values())


def prepare_topics(s: Settings, client_factory: AdminFactory | None = None) -> None:
    """Create the dead-letter, result and error topics that are missing, before `sink run` joins the
    group, as Kafka Connect's sink tasks create their dead-letter topic (1 partition,
    SINK_ERRORS_DEADLETTERQUEUE_TOPIC_REPLICATION_FACTOR replicas) and Confluent's reporter its
    topics (SINK_REPORTER_{RESULT,ERROR}_TOPIC_PARTITIONS and _REPLICATION_FACTOR); an existing topic
    is left as it is. A creation the broker refuses (more replicas than brokers, an ACL, a policy, an
    invalid name) is a ConfigError naming the setting to change; a broker that does not answer
    leaves the topic unchecked (a warning) and the sink starts, as it waits out a broker outage."""
    topics = own_topics(s)
    if not topics:
        return
    from .adapters.topics import TopicAdmin

    admin = TopicAdmin(s.bootstrap_servers, s.producer_config(), client_factory)
    try:
        for topic in topics:
            _prepare_topic(admin, topic)
    finally:
        admin.close()


def _prepare_topic(admin: TopicAdmin, topic: OwnTopic) -> None:
    from .adapters.topics import TopicRefused

    try:
        ensured = admin.ensure(topic.name, topic.partitions, topic.factor)
    except TopicRefused as refused:
        raise ConfigError(_creation_refused(topic, refused)) from None
    if ensured.outcome == "created":
        log.info(
            "created %s %r: %s, replication factor %s",
            topic.what,
            topic.name,
            _partitions(topic.partitions),
            _shown(topic.factor),
        )
    elif ensured.outcome == "unchecked":
        log.warning(
            "could not check whether %s %r exists (%s); starting without creating it "
            "(the broker creates it when the sink first writes to it only with auto.create.topics.enable)",
            topic.what,
            topic.name,
            mask_secrets(ensured.why),
        )


def _creation_refused(topic: OwnTopic, refused: TopicRefused) -> str:
    said = f"{refused.name}: {refused.reason}"
    if refused.replication:
        factor = topic.factor
        asked = "the broker's default replication factor (-1)" if factor == -1 else f"replication factor {factor}"
        if refused.brokers:
            advice = f"the cluster has {refused.brokers} broker(s): set it to {min(refused.brokers, 3)}"
        else:
            advice = "set it to at most the number of brokers"
        return (
            f"{topic.factor_setting}: the broker refused to create {topic.what} {topic.name!r} with {asked} "
            f"({said}); {advice}, or create the topic yourself"
        )
    if refused.not_authorized:
        advice = f"create it yourself ({_partitions(topic.partitions)}) or allow the sink's principal to create it"
    elif refused.invalid_name:
        advice = "give a valid topic name (letters, digits, '.', '_', '-'; at most 249 characters)"
    else:
        advice = f"create it yourself ({_partitions(topic.partitions)}) as the cluster allows"
    return (
        f"{topic.name_setting}: the broker refused to {refused.action} {topic.what} {topic.name!r} ({said}); {advice}"
    )


def _partitions(count: int) -> str:
    return f"{count} partition" + ("s" if count != 1 else "")


def _refusal(orig: Any) -> str | None:
    args = getattr(orig, "args", ())
    if type(orig).__module__.startswith("pymysql") and args and args[0] in MYSQL_REFUSED:
        return f"{args[1] if len(args) > 1 else ''} (MySQL error {args[0]} {MYSQL_REFUSED[args[0]]})"
    pgconn = getattr(orig, "pgconn", None)
    said = (getattr(pgconn, "error_message", b"") or b"").decode("utf-8", "replace")
    for code, pattern in PG_REFUSED:
        found = pattern.search(said)
        if found:
            return f"{found.group(1).strip()} (SQLSTATE {code})"
    return None


def run_checks(settings: Settings, out: Callable[[str], None] = print) -> int:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("configuration", lambda: _configuration(settings)),
        ("broker", lambda: _broker(settings)),
        ("database", lambda: _database(settings)),
    ]
    if settings.uses_registry:
        checks.append(("schema registry", lambda: _registry(settings)))
    failed = 0
    for name, probe in checks:
        try:
            out(mask_secrets(f"ok    {name}: {probe()}"))
        except (SinkError, OSError, RuntimeError, ValueError) as exc:
            failed += 1
            out(mask_secrets(f"FAIL  {name}: {exc}"))  # one line per check, whatever a library said
    return 1 if failed else 0


def _configuration(s: Settings) -> str:
    topics = ",".join(s.topics) or f"regex {s.topics_regex}"
    return (
        f"sink {s.name!r}, group {s.effective_group_id}, topics {topics}, key {s.key_format}, "
        f"value {s.value_format}, {s.insert_mode} with pk {s.pk_mode}"
    )


def _broker(s: Settings) -> str:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    config = {"bootstrap.servers": s.bootstrap_servers, **s.consumer_config()}
    for key in list(config):
        if key.startswith(("session.", "auto.", "enable.", "max.poll", "group.", "fetch.", "isolation.")):
            config.pop(key)
    heard = ClientLog("check")  # librdkafka's lines at DEBUG; its first complaint for the FAIL line
    client_config: dict[str, Any] = {**config, "logger": heard}  # the stubs know only scalar values
    admin = AdminClient(client_config)
    try:
        metadata, failure = admin.list_topics(timeout=BROKER_TIMEOUT_S), None
    except KafkaException as exc:
        metadata, failure = None, exc.args[0].str()
    admin.poll(0)  # an admin client hands its log lines over only when polled
    if metadata is None:
        said = f" ({heard.problem})" if heard.problem else ""
        raise SinkError(f"{s.bootstrap_servers} did not answer within {BROKER_TIMEOUT_S:g} s: {failure}{said}")
    wanted = set(s.topics)
    missing = sorted(wanted - set(metadata.topics))
    found = f"{len(metadata.brokers)} broker(s) at {s.bootstrap_servers}, {len(metadata.topics)} topics"
    found += f"; not there yet: {', '.join(missing)}" if missing else ""
    return found + _own_topics_note(s, metadata.topics, len(metadata.brokers))


def _own_topics_note(s: Settings, topics: Any, brokers: int) -> str:
    """What `sink run` will do about the dead-letter and report topics that are missing; a SinkError
    when the broker would refuse one (more replicas than the cluster has brokers)."""
    notes = []
    for topic in own_topics(s):
        if topic.name in topics:
            continue
        if topic.factor > brokers > 0:
            raise SinkError(
                f"{topic.what} {topic.name!r} is missing and `sink run` would create it with replication factor "
                f"{topic.factor}, more than the cluster's {brokers} broker(s): set {topic.factor_setting} to "
                f"{min(brokers, 3)}, or create the topic yourself"
            )
        creates = f"sink run creates it: {_partitions(topic.partitions)}, replication factor {_shown(topic.factor)}"
        notes.append(f"; {topic.what} {topic.name} not there yet ({creates})")
    return "".join(notes)


def _shown(factor: int) -> str:
    """A replication factor as the start-up lines name it (-1: the broker's own)."""
    return "the broker's default" if factor == -1 else str(factor)


def _database(s: Settings) -> str:
    from .adapters.db import SqlStore, create_engine

    store = SqlStore(create_engine(s.database_url.get_secret_value()))
    try:
        version = store.ping()
    finally:
        store.close()
    return f"{s.safe_database_url()} ({store.dialect.name} {version})"


def _registry(s: Settings) -> str:
    from .adapters.registry import RegistrySchemaSource

    assert s.schema_registry_url
    return RegistrySchemaSource(s.schema_registry_url, s.registry_config()).describe()
