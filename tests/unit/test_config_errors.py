"""Issue 12, sections 3 and 7 at unit level: secrets never echoed, librdkafka settings validated at
start-up, configuration problems caught by the settings, value-free dead-letter headers and
reports, log hygiene (masking, quiet HTTP loggers, psycopg's "error ignored" lines, throttling)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sink import deadletter, report
from sink.adapters.kafka import validate_consumer_config, validate_producer_config
from sink.config import load_settings
from sink.errors import ConfigError, MappingError, RecordRejected
from sink.formats.json_plain import JsonDecoder
from sink.formats.string import StringDecoder
from sink.logs import mask_secrets, setup_logging
from sink.model import Coord, Outcome, RawRecord, Stage, Status
from sink.outcomes import OutcomeRouter, RoutingRules
from sink.pipeline import Preparer
from sink.ports import MessageTooLarge
from sink.transforms import MappingRules, RowMapper

SECRET = "hunter2-Secret"
EMAIL = "alice@example.com"
BASE = {
    "SINK_BOOTSTRAP_SERVERS": "kafka:9092",
    "SINK_TOPICS": "orders",
    "SINK_DATABASE_URL": "postgresql+psycopg://sink@db:5432/shop",
}


def _error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings([], environ={**BASE, **environ})
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    return message


# ------------------------------------------------------------------------------ secrets in settings


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://sink@db/shop?password={SECRET}",
        f"postgresql+psycopg://sink@db/shop?sslmode=require&sslpassword={SECRET}",
        f"postgresql+psycopg://sink:{SECRET}@db/shop?password={SECRET}",
        f"mysql+pymysql://sink@db/shop?passwd={SECRET}",
        f"postgresql+psycopg://sink@db/shop?oauth_client_secret={SECRET}",
    ],
)
def test_safe_database_url_masks_every_password_form(url: str) -> None:
    settings = load_settings([], environ={**BASE, "SINK_DATABASE_URL": url})
    shown = settings.safe_database_url()
    assert SECRET not in shown
    assert "***" in shown and shown.split("://")[0] == url.split("://")[0]


def test_safe_database_url_keeps_harmless_query_parameters() -> None:
    settings = load_settings([], environ={**BASE, "SINK_DATABASE_URL": "postgresql+psycopg://s@db/x?sslmode=require"})
    assert settings.safe_database_url() == "postgresql+psycopg://s@db/x?sslmode=require"


@pytest.mark.parametrize("group", ["SINK_CONSUMER", "SINK_PRODUCER", "SINK_SCHEMA_REGISTRY"])
def test_a_mistyped_nested_setting_never_echoes_its_value(group: str) -> None:
    message = _error({group: SECRET})
    assert message.startswith(f"{group}: ") and f"{group}__<PROPERTY>" in message
    assert SECRET not in message


def test_a_mistyped_nested_setting_next_to_its_properties_is_still_one_line() -> None:
    message = _error({"SINK_CONSUMER": SECRET, "SINK_CONSUMER__SASL_USERNAME": "u"})
    assert message.startswith("SINK_CONSUMER: ") and SECRET not in message


# ------------------------------------------------------------------------------ settings problems


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_table_name_format_is_a_configuration_error(value: str) -> None:
    assert _error({"SINK_TABLE_NAME_FORMAT": value}).startswith("SINK_TABLE_NAME_FORMAT: must not be empty")


@pytest.mark.parametrize("driver", ["postgresql+psycopg2", "postgresql+asyncpg", "mysql+mysqldb"])
def test_a_missing_database_driver_is_a_configuration_error(driver: str) -> None:
    message = _error({"SINK_DATABASE_URL": f"{driver}://sink:{SECRET}@db/shop"})
    assert message.startswith("SINK_DATABASE_URL: database driver ") and "not installed" in message
    assert SECRET not in message


def test_a_missing_sqlite_directory_is_a_configuration_error(tmp_path: Path) -> None:
    message = _error({"SINK_DATABASE_URL": f"sqlite:///{tmp_path}/nowhere/sink.db"})
    assert message.startswith("SINK_DATABASE_URL: SQLite directory ") and "nowhere" in message
    load_settings([], environ={**BASE, "SINK_DATABASE_URL": f"sqlite:///{tmp_path}/sink.db"})  # the file may be new


# ------------------------------------------------------------------------------ librdkafka settings


def _kafka_error(check: Callable[[], None]) -> str:
    with pytest.raises(ConfigError) as caught:
        check()
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    return message


def test_a_librdkafka_property_typo_names_the_variable() -> None:
    message = _kafka_error(lambda: validate_consumer_config({"sasl.passwrod": SECRET}, ("orders",), None))
    assert message.startswith("SINK_CONSUMER__SASL_PASSWROD: ") and SECRET not in message


def test_a_bad_librdkafka_value_names_the_variable_without_the_value() -> None:
    message = _kafka_error(lambda: validate_consumer_config({"session.timeout.ms": "soon"}, ("orders",), None))
    assert message.startswith("SINK_CONSUMER__SESSION_TIMEOUT_MS: ") and "soon" not in message
    message = _kafka_error(lambda: validate_producer_config({"security.protocol": SECRET}))
    assert message.startswith("SINK_PRODUCER__SECURITY_PROTOCOL: ") and SECRET not in message


def test_the_culprit_is_found_among_good_properties() -> None:
    props = {"client.id": "a", "compression.codec": "zstd", "linger.ms": "later"}
    assert _kafka_error(lambda: validate_producer_config(props)).startswith("SINK_PRODUCER__LINGER_MS: ")


def test_a_regex_python_accepts_and_librdkafka_refuses_is_a_configuration_error() -> None:
    message = _kafka_error(lambda: validate_consumer_config({}, (), "(?P<n>orders)"))
    assert message.startswith("SINK_TOPICS_REGEX: ")


def test_good_librdkafka_settings_pass() -> None:
    validate_consumer_config({"session.timeout.ms": "6000", "sasl.password": SECRET}, (), "orders.*")
    validate_producer_config({"message.max.bytes": "2000", "compression.codec": "lz4"})


# ------------------------------------------------------------------------------ mapping


def test_several_pk_fields_for_a_primitive_key_is_a_record_error() -> None:
    mapper = RowMapper(MappingRules(pk_mode="record_key", pk_fields=("a", "b")))
    preparer = Preparer(StringDecoder(), JsonDecoder(), mapper)
    with pytest.raises(MappingError) as caught:  # the worker routes it as that record's error
        preparer.prepare(RawRecord(Coord("orders", 0, 3), b"k-1", b'{"v": 1}', (), None))
    assert "SINK_PK_FIELDS" in str(caught.value) and "k-1" not in caught.value.safe_reason


# ------------------------------------------------------------------------------ DLQ headers and reports

RAW = RawRecord(Coord("orders", 1, 42), b"key-1", json.dumps({"id": EMAIL}).encode(), (("h", b"v"),), 1_700_000_000)
REJECTED = RecordRejected(
    f'invalid input syntax for type bigint: "{EMAIL}"',
    sqlstate="22P02",
    code="SQLSTATE 22P02 invalid_text_representation",
    column="id",
)


def _raised(error: RecordRejected) -> RecordRejected:
    try:
        raise error
    except RecordRejected as caught:
        return caught


@pytest.mark.parametrize("include", [False, True])
def test_dead_letter_headers_quote_the_database_only_when_values_are_on(include: bool) -> None:
    env = deadletter.envelope(RAW, _raised(REJECTED), connector="c", with_context=True, include_messages=include)
    headers = {k.removeprefix(deadletter.PREFIX): (v or b"").decode() for k, v in env.headers}
    assert (EMAIL in headers["exception.message"]) is include
    assert (EMAIL in headers["exception.stacktrace"]) is include
    assert "22P02" in headers["exception.message"] and "test_config_errors.py" in headers["exception.stacktrace"]
    assert headers["exception.stacktrace"].endswith(headers["exception.message"])


@pytest.mark.parametrize("include", [False, True])
def test_reports_quote_the_database_only_when_values_are_on(include: bool) -> None:
    outcome = Outcome(RAW, Status.FAILED, "orders", None, None, Stage.TASK_PUT, REJECTED)
    doc = json.loads(report.body(outcome, include))
    assert (EMAIL in doc["error_message"]) is include
    assert "22P02" in doc["error_message"]


class _TooLargePublisher:
    """Refuses records over `limit` bytes as a real producer does (MessageTooLarge to on_done)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[dict[str, object]] = []

    def publish(self, topic, key, value, headers, timestamp, on_done) -> None:  # type: ignore[no-untyped-def]
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v or b"") for k, v in headers)
        if size > self.limit:
            on_done(MessageTooLarge("Broker: Message size too large"))
            return
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": list(headers)})
        on_done(None)

    def flush(self) -> None:
        pass


def test_a_record_too_large_for_the_dead_letter_topic_goes_there_truncated() -> None:
    publisher = _TooLargePublisher(limit=4000)
    router = OutcomeRouter(RoutingRules(tolerance="all", dlq_topic="dlq"), publisher)
    big = RawRecord(Coord("orders", 0, 7), b"k" * 10, b"x" * 10_000, (("h", b"v" * 20),), None)
    router.tracker.track(big.coord)
    router.settled([Outcome(big, Status.FAILED, None, None, None, Stage.VALUE_CONVERTER, MappingError("bad"))])
    router.flush()
    assert router.counters.dead_lettered == 1 and router.tracker.committable() == {("orders", 0): 8}
    [sent] = publisher.sent
    assert sent["key"] is None and sent["value"] is None
    headers = {k: v for k, v in sent["headers"]}  # type: ignore[union-attr]
    assert json.loads(headers[deadletter.TRUNCATED]) == {"key": 10, "value": 10_000, "headers": 21}
    assert headers[deadletter.PREFIX + "topic"] == b"orders" and headers[deadletter.PREFIX + "offset"] == b"7"


# ------------------------------------------------------------------------------ logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("DEBUG", "text")
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_registry_request_lines_and_sql_parameters_stay_out_of_debug_logs(captured: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET http://user:%s@registry:8081/schemas/ids/1", SECRET)
    logging.getLogger("sqlalchemy.engine.Engine").info("[generated] ('%s',)", EMAIL)
    logging.getLogger("sink.test").debug("still here")
    text = captured.getvalue()
    assert SECRET not in text and EMAIL not in text and "still here" in text


def test_every_form_of_psycopgs_error_ignored_line_is_dropped(captured: io.StringIO) -> None:
    psycopg = logging.getLogger("psycopg")
    psycopg.warning("error ignored terminating %r: %s", "<psycopg.Pipeline>", f'invalid input syntax: "{EMAIL}"')
    psycopg.warning("error ignored in rollback on %s: %s", "<conn>", EMAIL)
    psycopg.warning("other psycopg news")
    text = captured.getvalue()
    assert EMAIL not in text and "other psycopg news" in text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_credentials_in_any_line_or_traceback_are_masked(fmt: str, captured: io.StringIO) -> None:
    setup_logging("DEBUG", fmt)
    logging.getLogger().handlers[0].setStream(captured)  # type: ignore[attr-defined]
    log = logging.getLogger("sink.test")
    log.warning("reaching postgresql://sink:%s@db/shop?sslpassword=%s", SECRET, SECRET)
    try:
        raise RuntimeError(f"GET https://u:{SECRET}@registry/ failed; sasl.password={SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = captured.getvalue()
    assert SECRET not in text and text.count("***") >= 4


def test_mask_secrets_leaves_ordinary_text_alone() -> None:
    line = "records in=3 written=2 passed=1 http://registry:8081/subjects password authentication failed"
    assert mask_secrets(line) == line


def test_repeated_client_errors_are_throttled(captured: io.StringIO) -> None:
    client = logging.getLogger("sink.kafka.client")
    for _ in range(10):
        client.warning("dead-letter/report producer: 127.0.0.1:1/bootstrap: Connect failed: Connection refused")
    assert captured.getvalue().count("Connection refused") == 1
