"""Configuration: env files and environment, pass-through properties, one-line errors, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sink.config import Settings, load_settings
from sink.errors import ConfigError

PASSWORD = "hunter2-Secret"
BASE = {
    "SINK_BOOTSTRAP_SERVERS": "kafka:9092",
    "SINK_TOPICS": "orders",
    "SINK_DATABASE_URL": f"postgresql+psycopg://sink:{PASSWORD}@db:5432/shop",
}


def _env_file(tmp_path: Path, name: str, lines: dict[str, str]) -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def _error(environ: dict[str, str], files: tuple[Path, ...] = ()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(files, environ=environ)
    message = str(caught.value)
    assert "\n" not in message, f"not one line: {message!r}"
    assert caught.value.exit_code == 2
    return message


# ------------------------------------------------------------------------------ sources


def test_later_env_file_wins(tmp_path: Path) -> None:
    first = _env_file(tmp_path, "a.env", {**BASE, "SINK_BATCH_SIZE": "10", "SINK_NAME": "first"})
    second = _env_file(tmp_path, "b.env", {"SINK_BATCH_SIZE": "20"})
    settings = load_settings([first, second], environ={})
    assert settings.batch_size == 20
    assert settings.name == "first", "a value only the first file sets is kept"
    assert load_settings([second, first], environ={}).batch_size == 10


def test_real_environment_wins_over_files(tmp_path: Path) -> None:
    first = _env_file(tmp_path, "a.env", {**BASE, "SINK_BATCH_SIZE": "10"})
    second = _env_file(tmp_path, "b.env", {"SINK_BATCH_SIZE": "20", "SINK_INSERT_MODE": "insert"})
    settings = load_settings([first, second], environ={"SINK_BATCH_SIZE": "30", "SINK_LOG_LEVEL": "debug"})
    assert settings.batch_size == 30
    assert settings.log_level == "DEBUG"
    assert settings.insert_mode == "insert"


def test_env_file_keeps_topic_placeholder_literal(tmp_path: Path) -> None:
    path = _env_file(tmp_path, "a.env", {**BASE, "SINK_TABLE_NAME_FORMAT": "kafka_${topic}_v1"})
    assert load_settings([path], environ={"topic": "oops"}).table_name_format == "kafka_${topic}_v1"


def test_environment_alone_and_defaults() -> None:
    settings = load_settings([], environ=BASE)
    assert settings.topics == ("orders",)
    assert settings.effective_group_id == "sink-sink"
    assert (settings.key_format, settings.value_format) == ("string", "json")
    assert (settings.insert_mode, settings.pk_mode, settings.errors_tolerance) == ("insert", "none", "none")
    assert settings.consumer_config() == {}


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load_settings([], environ={**BASE, "PATH": "/bin", "SINK_TEST_PG_URL": "x", "HOME": "/root"})
    assert settings.bootstrap_servers == "kafka:9092"


def test_comma_lists_and_group_id() -> None:
    settings = load_settings(
        [],
        environ={
            **BASE,
            "SINK_TOPICS": " a, b ,c,",
            "SINK_NAME": "orders-pg",
            "SINK_PK_MODE": "record_value",
            "SINK_PK_FIELDS": "id, region",
            "SINK_FIELDS_EXCLUDE": "secret",
        },
    )
    assert settings.topics == ("a", "b", "c")
    assert settings.pk_fields == ("id", "region")
    assert settings.fields_exclude == ("secret",)
    assert settings.effective_group_id == "sink-orders-pg"
    assert load_settings([], environ={**BASE, "SINK_GROUP_ID": "g1"}).effective_group_id == "g1"


def test_consumer_passthrough_becomes_librdkafka_property(tmp_path: Path) -> None:
    files = [_env_file(tmp_path, "a.env", {**BASE, "SINK_CONSUMER__FETCH_MIN_BYTES": "1"})]
    settings = load_settings(
        files,
        environ={"SINK_CONSUMER__SESSION_TIMEOUT_MS": "6000", "SINK_PRODUCER__LINGER_MS": "20"},
    )
    assert settings.consumer_config() == {"session.timeout.ms": "6000", "fetch.min.bytes": "1"}
    assert settings.producer_config() == {"linger.ms": "20"}


def test_registry_passthrough() -> None:
    settings = load_settings(
        [],
        environ={
            **BASE,
            "SINK_VALUE_FORMAT": "avro",
            "SINK_SCHEMA_REGISTRY_URL": "http://registry:8081",
            "SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": f"user:{PASSWORD}",
        },
    )
    assert settings.uses_registry
    assert settings.registry_config() == {"basic.auth.user.info": f"user:{PASSWORD}"}


def test_missing_env_file_names_the_option(tmp_path: Path) -> None:
    message = _error(BASE, (tmp_path / "nope.env",))
    assert message.startswith("--env-file:") and "nope.env" in message


def test_unknown_variable_in_env_file_is_refused(tmp_path: Path) -> None:
    path = _env_file(tmp_path, "a.env", {**BASE, "SINK_INSERT_MOD": "upsert"})
    message = _error({}, (path,))
    assert message.startswith("SINK_INSERT_MOD:")


# ------------------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("extra", "variable", "hint"),
    [
        ({"SINK_BATCH_SIZE": "0"}, "SINK_BATCH_SIZE", "greater than or equal to 1"),
        ({"SINK_BATCH_SIZE": "many"}, "SINK_BATCH_SIZE", "'many'"),
        ({"SINK_BATCH_MAX_WAIT_MS": "-5"}, "SINK_BATCH_MAX_WAIT_MS", "-5"),
        ({"SINK_INSERT_MODE": "merge"}, "SINK_INSERT_MODE", "'upsert'"),
        ({"SINK_PK_MODE": "primary"}, "SINK_PK_MODE", "'record_key'"),
        ({"SINK_VALUE_FORMAT": "xml"}, "SINK_VALUE_FORMAT", "'connect_json'"),
        ({"SINK_KEY_FORMAT": "yaml"}, "SINK_KEY_FORMAT", "'string'"),
        ({"SINK_ERRORS_TOLERANCE": "some"}, "SINK_ERRORS_TOLERANCE", "'all'"),
        ({"SINK_DELETE_ENABLED": "maybe"}, "SINK_DELETE_ENABLED", "boolean"),
        ({"SINK_AUTO_CREATE": "sometimes"}, "SINK_AUTO_CREATE", "boolean"),
        ({"SINK_SHUTDOWN_TIMEOUT_MS": "5"}, "SINK_SHUTDOWN_TIMEOUT_MS", "100"),
        ({"SINK_LOG_LEVEL": "chatty"}, "SINK_LOG_LEVEL", "'INFO'"),
        ({"SINK_LOG_FORMAT": "xml"}, "SINK_LOG_FORMAT", "'json'"),
        ({"SINK_NAME": "my sink"}, "SINK_NAME", "my sink"),
        ({"SINK_DELIVERY_GUARANTEE": "maybe"}, "SINK_DELIVERY_GUARANTEE", "at_least_once"),
        ({"SINK_DELIVERY_GUARANTEE": "exactly_twice"}, "SINK_DELIVERY_GUARANTEE", "exactly_once"),
        ({"SINK_ERRORS_DEADLETTERQUEUE_MAX_RATIO": "2"}, "SINK_ERRORS_DEADLETTERQUEUE_MAX_RATIO", "1"),
        ({"SINK_TOPICS": "", "SINK_TOPICS_REGEX": "orders(.*"}, "SINK_TOPICS_REGEX", "regular expression"),
        ({"SINK_DATABASE_URL": "not a url"}, "SINK_DATABASE_URL", "postgresql+psycopg://"),
        ({"SINK_DATABASE_URL": f"oracle://u:{PASSWORD}@h/db"}, "SINK_DATABASE_URL", "'oracle'"),
        ({"SINK_CONSUMER": "oops"}, "SINK_CONSUMER", "SINK_CONSUMER__<PROPERTY>"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(extra: dict[str, str], variable: str, hint: str) -> None:
    message = _error({**BASE, **extra})
    assert message.startswith(f"{variable}: "), message
    assert hint in message
    assert PASSWORD not in message


@pytest.mark.parametrize("missing", ["SINK_BOOTSTRAP_SERVERS", "SINK_DATABASE_URL"])
def test_missing_required_variable(missing: str) -> None:
    environ = {k: v for k, v in BASE.items() if k != missing}
    assert _error(environ) == f"{missing}: required, not set"


@pytest.mark.parametrize(
    ("extra", "variable", "hint"),
    [
        ({"SINK_TOPICS": ""}, "SINK_TOPICS", "SINK_TOPICS_REGEX"),
        ({"SINK_TOPICS_REGEX": "orders.*"}, "SINK_TOPICS", "exactly one"),
        ({"SINK_DELETE_ENABLED": "true"}, "SINK_DELETE_ENABLED", "SINK_PK_MODE=record_key"),
        (
            {"SINK_DELETE_ENABLED": "true", "SINK_PK_MODE": "record_value", "SINK_PK_FIELDS": "id"},
            "SINK_DELETE_ENABLED",
            "record_value",
        ),
        ({"SINK_INSERT_MODE": "upsert"}, "SINK_INSERT_MODE", "SINK_PK_MODE"),
        ({"SINK_INSERT_MODE": "update"}, "SINK_INSERT_MODE", "SINK_PK_MODE"),
        ({"SINK_PK_MODE": "record_value"}, "SINK_PK_FIELDS", "record_value"),
        ({"SINK_PK_MODE": "record_header"}, "SINK_PK_FIELDS", "record_header"),
        ({"SINK_PK_MODE": "kafka", "SINK_PK_FIELDS": "t,p"}, "SINK_PK_FIELDS", "three"),
        ({"SINK_VALUE_FORMAT": "avro"}, "SINK_SCHEMA_REGISTRY_URL", "avro"),
        ({"SINK_KEY_FORMAT": "protobuf"}, "SINK_SCHEMA_REGISTRY_URL", "protobuf"),
        ({"SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME": "orders"}, "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME", "for ever"),
        (
            {"SINK_TOPICS": "", "SINK_TOPICS_REGEX": "^ord.*", "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME": "orders-dlq"},
            "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME",
            "SINK_TOPICS_REGEX",
        ),
        ({"SINK_REPORTER_RESULT_TOPIC_NAME": "orders"}, "SINK_REPORTER_RESULT_TOPIC_NAME", "SINK_TOPICS"),
        (
            {"SINK_TOPICS": "", "SINK_TOPICS_REGEX": "orders", "SINK_REPORTER_ERROR_TOPIC_NAME": "orders.errors"},
            "SINK_REPORTER_ERROR_TOPIC_NAME",
            "SINK_TOPICS_REGEX",
        ),
    ],
)
def test_contradiction_is_one_line_naming_the_variable(extra: dict[str, str], variable: str, hint: str) -> None:
    message = _error({**BASE, **extra})
    assert message.startswith(f"{variable}: "), message
    assert hint in message


def test_output_topics_outside_the_subscription_are_fine() -> None:
    """The prefix anchor of a regex subscription (librdkafka's `^`) is all: `orders` does not take `dlq.orders`."""
    settings = load_settings(
        (),
        environ={
            **BASE,
            "SINK_TOPICS": "",
            "SINK_TOPICS_REGEX": "^orders.*",
            "SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME": "dlq.orders",
            "SINK_REPORTER_RESULT_TOPIC_NAME": "results",
        },
    )
    assert settings.errors_deadletterqueue_topic_name == "dlq.orders"


def test_several_problems_still_give_one_line() -> None:
    message = _error({**BASE, "SINK_TOPICS": "", "SINK_INSERT_MODE": "upsert", "SINK_PK_MODE": "record_value"})
    assert message.startswith("SINK_")


# ------------------------------------------------------------------------------ credentials


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://sink:{PASSWORD}@db:notaport/shop",
        f"postgresql+psycopg://sink:p@ss:{PASSWORD}@db/shop",  # an unescaped '@' in the password
        f"mysql+pymysql://sink:{PASSWORD}@db:99x/shop",
    ],
)
def test_bad_database_url_never_echoes_the_password(url: str) -> None:
    message = _error({**BASE, "SINK_DATABASE_URL": url})
    assert message.startswith("SINK_DATABASE_URL: ")
    assert PASSWORD not in message
    assert PASSWORD[:6] not in message


def test_credentials_are_not_in_repr_or_str_of_settings() -> None:
    settings = load_settings(
        [],
        environ={
            **BASE,
            "SINK_CONSUMER__SASL_PASSWORD": PASSWORD,
            "SINK_PRODUCER__SASL_PASSWORD": PASSWORD,
            "SINK_VALUE_FORMAT": "avro",
            "SINK_SCHEMA_REGISTRY_URL": "http://registry:8081",
            "SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": f"user:{PASSWORD}",
        },
    )
    for text in (repr(settings), str(settings), str(settings.model_dump()), settings.safe_database_url()):
        assert PASSWORD not in text
    assert settings.safe_database_url() == "postgresql+psycopg://sink:***@db:5432/shop"
    assert settings.database_url.get_secret_value() == BASE["SINK_DATABASE_URL"]
    assert settings.consumer_config()["sasl.password"] == PASSWORD


@pytest.mark.parametrize("url", ["registry:8081", "ftp://registry", f"http://user:{PASSWORD}@", "http://"])
def test_bad_schema_registry_url_is_one_line_and_never_echoed(url: str) -> None:
    message = _error({**BASE, "SINK_VALUE_FORMAT": "avro", "SINK_SCHEMA_REGISTRY_URL": url})
    assert message.startswith("SINK_SCHEMA_REGISTRY_URL: ")
    assert PASSWORD not in message


def test_schema_registry_url_with_credentials_stays_out_of_repr() -> None:
    url = f"http://user:{PASSWORD}@registry:8081,https://registry-2:8081"
    settings = load_settings([], environ={**BASE, "SINK_VALUE_FORMAT": "avro", "SINK_SCHEMA_REGISTRY_URL": url})
    assert settings.schema_registry_url == url
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)


def test_credentials_not_in_error_of_another_variable(tmp_path: Path) -> None:
    path = _env_file(tmp_path, "a.env", {**BASE, "SINK_CONSUMER__SASL_PASSWORD": PASSWORD})
    message = _error({"SINK_BATCH_SIZE": "zero"}, (path,))
    assert message.startswith("SINK_BATCH_SIZE: ")
    assert PASSWORD not in message


def test_settings_are_frozen() -> None:
    settings = load_settings([], environ=BASE)
    with pytest.raises(ValidationError, match="frozen"):
        settings.batch_size = 5  # type: ignore[misc]
    assert isinstance(settings, Settings)
