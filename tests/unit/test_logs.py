"""Log hygiene: librdkafka's repeated lines are held back (the sink's own lines never), JSON lines
carry the coordinates as fields, and no formatted line carries a credential."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from sink.errors import DecodeError, RecordRejected
from sink.logs import (
    ClientLog,
    JsonFormatter,
    MaskingFormatter,
    RepeatFilter,
    fields,
    formatter,
    librdkafka_logger,
    setup_logging,
)
from sink.model import Coord, Outcome, RawRecord, Stage, Status

SECRET = "Hunter2-planted"
RAW = RawRecord(Coord("orders", 3, 1207), b"key-bytes", b'{"email": "alice@example.com"}')


def record(message: str, created: float, name: str = "sink.librdkafka") -> logging.LogRecord:
    entry = logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)
    entry.created = created
    return entry


def make(
    msg: str, *args: object, name: str = "sink.errors", exc_info: object = None, **extra: object
) -> logging.LogRecord:
    entry = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args or None, exc_info)  # type: ignore[arg-type]
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ------------------------------------------------------------------------------ repeats


def test_a_line_repeated_within_the_interval_is_held_back_and_counted() -> None:
    gate = RepeatFilter(interval=30)
    assert gate.filter(record("Connect to 127.0.0.1:9092 failed (after 3ms)", 100.0))
    assert not gate.filter(record("Connect to 127.0.0.1:9092 failed (after 7ms)", 101.0))
    assert not gate.filter(record("Connect to 127.0.0.1:9092 failed (after 9ms)", 102.0))
    later = record("Connect to 127.0.0.1:9092 failed (after 4ms)", 131.0)
    assert gate.filter(later)
    assert "repeated 2 more times" in later.getMessage()
    again = record("Connect to 127.0.0.1:9092 failed (after 5ms)", 131.5)
    assert not gate.filter(again), "the summary opens a new interval"


def test_a_line_that_comes_back_after_the_interval_without_repeats_says_nothing_extra() -> None:
    gate = RepeatFilter(interval=30)
    assert gate.filter(record("broker down", 100.0))
    back = record("broker down", 200.0)
    assert gate.filter(back)
    assert back.getMessage() == "broker down"


def test_the_first_line_passes_whatever_its_timestamp() -> None:
    assert RepeatFilter(interval=30).filter(record("up", 0.0))  # a clock at 0 (tests, odd containers)


def test_different_lines_and_different_loggers_pass() -> None:
    gate = RepeatFilter(interval=30)
    assert gate.filter(record("broker down", 100.0))
    assert gate.filter(record("group rebalanced", 100.5))
    assert gate.filter(record("broker down", 100.6, name="sink.librdkafka.check"))


def test_a_handler_filter_gates_only_the_named_loggers_and_their_children() -> None:
    gate = RepeatFilter(interval=30, loggers=("sink.librdkafka", "sink.kafka.client"))
    for name in ("sink.librdkafka", "sink.librdkafka.check", "sink.kafka.client"):
        assert gate.filter(record("same", 100.0, name))
        assert not gate.filter(record("same", 100.1, name)), name
    for name in ("sink.worker", "sink.librdkafkaX", "sink.kafka"):
        assert all(gate.filter(record("same", 100.0 + i / 10, name)) for i in range(5)), name


def test_repeats_from_many_threads_are_counted_exactly() -> None:
    gate = RepeatFilter(interval=1000)
    passed: list[bool] = []

    def say() -> None:
        for _ in range(500):
            passed.append(gate.filter(record("Connect failed", 100.0)))

    threads = [threading.Thread(target=say) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert passed.count(True) == 1
    summary = record("Connect failed", 2000.0)
    assert gate.filter(summary)
    assert "repeated 1999 more times" in summary.getMessage()


def test_setup_logging_holds_back_librdkafka_repeats_but_never_the_sinks_own_lines(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    setup_logging("INFO", "text")
    for _ in range(50):
        librdkafka_logger().error("%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Connect to 127.0.0.1:1 failed")
        librdkafka_logger("check").error("%s [%s] %s", "FAIL", "rdkafka#producer-2", "Connect to 127.0.0.1:1 failed")
        logging.getLogger("sink.worker").info("records in=%d", 7)
    lines = out.getvalue().splitlines()
    assert sum("sink.librdkafka:" in line for line in lines) == 1
    assert sum("sink.librdkafka.check:" in line for line in lines) == 1
    assert sum("sink.worker:" in line for line in lines) == 50
    assert logging.getLogger("sink.worker").filters == []


def test_the_registry_clients_request_lines_stay_out_of_the_log(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry client logs every request, URL and all, at INFO through the HTTP library it
    uses (httpx2 and httpcore2 when installed, else httpx and httpcore): held at WARNING."""
    from sink.adapters.confluent_shim import TransportError

    library = TransportError.__module__.split(".")[0]
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    setup_logging("INFO", "text")
    logging.getLogger(library).info("HTTP Request: GET http://registry:8081/schemas/ids/1")
    logging.getLogger(library.replace("httpx", "httpcore") + ".connection").info("connect_tcp.started")
    logging.getLogger(library).warning("a warning passes")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "a warning passes" in lines[0]


# ------------------------------------------------------------------------------ fields


def test_fields_from_a_raw_record_a_table_and_an_error() -> None:
    error = RecordRejected("rejected by the database", sqlstate="23514")
    assert fields(RAW, table="orders_t", error=error) == {
        "topic": "orders",
        "partition": 3,
        "offset": 1207,
        "table": "orders_t",
        "error_class": "RecordRejected",
        "stage": "TASK_PUT",
    }


def test_fields_from_a_coord_an_outcome_an_error_alone_and_a_class_name() -> None:
    assert fields(Coord("t", 0, 5)) == {"topic": "t", "partition": 0, "offset": 5}
    outcome = Outcome(RAW, Status.DEAD_LETTERED, table="orders_t")
    assert fields(outcome)["table"] == "orders_t" and fields(outcome)["offset"] == 1207
    decode = DecodeError("not JSON", coord=Coord("t", 1, 9), stage=Stage.KEY_CONVERTER)
    assert fields(error=decode) == {
        "topic": "t",
        "partition": 1,
        "offset": 9,
        "error_class": "DecodeError",
        "stage": "KEY_CONVERTER",
    }
    assert fields(error=DecodeError) == {"error_class": "DecodeError"}
    assert fields(error="BrokerUnavailable") == {"error_class": "BrokerUnavailable"}
    assert fields() == {}


def test_fields_never_carry_the_records_key_or_value() -> None:
    text = json.dumps(fields(RAW, error=DecodeError("bad")))
    assert "alice@example.com" not in text and "key-bytes" not in text


# ------------------------------------------------------------------------------ the JSON formatter


def parse(entry: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(entry)
    assert "\n" not in line
    return json.loads(line)


def test_json_line_has_time_level_logger_message() -> None:
    entry = make("record %s failed at %s: %s", RAW.coord, "VALUE_CONVERTER", "not JSON")
    entry.created, entry.msecs = 1_700_000_000.25, 250.0
    doc = parse(entry)
    assert doc["time"] == "2023-11-14T22:13:20.250Z"
    assert doc["level"] == "WARNING" and doc["logger"] == "sink.errors"
    assert doc["message"] == "record orders/3@1207 failed at VALUE_CONVERTER: not JSON"


def test_json_fields_passed_with_extra_are_fields_with_their_types() -> None:
    error = DecodeError("not JSON")
    doc = parse(make("record %s failed: %s", RAW.coord, "not JSON", **fields(RAW, table="orders", error=error)))
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("orders", 3, 1207)
    assert doc["table"] == "orders" and doc["error_class"] == "DecodeError" and doc["stage"] == "VALUE_CONVERTER"


def test_json_fields_come_from_the_arguments_when_the_call_passes_no_extra() -> None:
    doc = parse(make("record %s failed at %s: %s", RAW.coord, "TASK_PUT", "rejected"))
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("orders", 3, 1207)
    assert "error_class" not in doc and "table" not in doc
    doc = parse(make("stopping: %s", RecordRejected("rejected", coord=Coord("t", 2, 8))))
    assert doc["error_class"] == "RecordRejected"
    doc = parse(make("outage, retrying: %s", ConnectionError("down")))
    assert doc["error_class"] == "ConnectionError" and "topic" not in doc


def test_json_extra_wins_over_what_the_arguments_say() -> None:
    doc = parse(make("at %s", Coord("a", 0, 1), **fields(Coord("b", 4, 2))))
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("b", 4, 2)


def test_json_exception_error_class_and_traceback_as_one_line() -> None:
    try:
        raise RuntimeError(f"cannot connect to postgresql://user:{SECRET}@db/x")
    except RuntimeError:
        entry = make("unexpected error", exc_info=sys.exc_info())
    line = JsonFormatter().format(entry)
    assert "\n" not in line and SECRET not in line
    doc = json.loads(line)
    assert doc["error_class"] == "RuntimeError"
    assert "Traceback" in doc["exception"] and "user:***@db" in doc["exception"]


def test_json_masks_secrets_in_message_and_fields() -> None:
    entry = make("CONF %s", f"sasl.password = {SECRET}", table=f"postgresql://u:{SECRET}@h/db")
    line = JsonFormatter().format(entry)
    assert SECRET not in line
    assert json.loads(line)["message"] == "CONF sasl.password = ***"


def test_json_never_adds_the_records_key_or_value() -> None:
    line = JsonFormatter().format(make("record %s failed", RAW.coord, **fields(RAW, error=DecodeError("bad"))))
    assert "alice@example.com" not in line and "key-bytes" not in line
    doc = json.loads(line)
    del doc["error_class"], doc["stage"]
    assert set(doc) == {"time", "level", "logger", "message", "topic", "partition", "offset"}


def test_text_lines_stay_as_they_were_for_people_and_are_masked() -> None:
    entry = make("record %s failed: password=%s", RAW.coord, SECRET, **fields(RAW, table="orders"))
    line = MaskingFormatter("%(levelname)s %(name)s: %(message)s").format(entry)
    assert line == "WARNING sink.errors: record orders/3@1207 failed: password=***"
    assert isinstance(formatter("text"), MaskingFormatter) and isinstance(formatter("json"), JsonFormatter)


# ------------------------------------------------------------------------------ a command's client log


def test_client_log_demotes_librdkafka_lines_and_keeps_the_first_problem(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    setup_logging("INFO", "text")
    heard = ClientLog("check")
    line = "[thrd:sasl_plaintext://127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to 127.0.0.1:1 failed"
    heard.log(logging.DEBUG, "%s [%s] %s", "CONF", "rdkafka#producer-1", f"sasl.password = {SECRET}")
    heard.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", f"[thrd:app]: sasl.password={SECRET}")
    assert heard.problem == "sasl.password=***"
    heard.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", line)
    heard.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "1/1 brokers are down")
    assert heard.problem == "127.0.0.1:1/bootstrap: Connect to 127.0.0.1:1 failed"
    assert out.getvalue() == "", "at INFO a command's librdkafka lines are not shown"
    logging.getLogger().setLevel(logging.DEBUG)
    heard.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "SASL authentication error")
    assert "DEBUG   sink.librdkafka.check: FAIL [rdkafka#producer-1] SASL authentication error" in out.getvalue()
    assert heard.problem.endswith("Connect to 127.0.0.1:1 failed")
