"""Secret settings from files: SINK_<NAME>_FILE and the secrets directory (SINK_SECRETS_DIR)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.config import FILE_SECRETS, load_settings
from sink.errors import ConfigError

SECRET = "Fil3-S3cret-pw"
URL = f"postgresql+psycopg://sink:{SECRET}@db:5432/shop"
BASE = {"SINK_BOOTSTRAP_SERVERS": "kafka:9092", "SINK_TOPICS": "orders", "SINK_SECRETS_DIR": ""}


def _error(environ: dict[str, str], files: tuple[Path, ...] = ()) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(files, environ=environ)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 2
    assert SECRET not in message
    return message


def test_database_url_from_a_file_without_its_line_break(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(URL + "\n")
    settings = load_settings([], environ={**BASE, "SINK_DATABASE_URL_FILE": str(tmp_path / "url")})
    assert settings.database_url.get_secret_value() == URL
    assert SECRET not in repr(settings)


def test_registry_url_and_bootstrap_servers_from_files(tmp_path: Path) -> None:
    (tmp_path / "reg").write_text("http://user:pw@registry:8081\r\n")
    (tmp_path / "boot").write_text("kafka-1:9092,kafka-2:9092")
    environ = {
        **BASE,
        "SINK_DATABASE_URL": "sqlite:///x.db",
        "SINK_VALUE_FORMAT": "avro",
        "SINK_SCHEMA_REGISTRY_URL_FILE": str(tmp_path / "reg"),
        "SINK_BOOTSTRAP_SERVERS_FILE": str(tmp_path / "boot"),
    }
    del environ["SINK_BOOTSTRAP_SERVERS"]
    settings = load_settings([], environ=environ)
    assert settings.schema_registry_url == "http://user:pw@registry:8081"
    assert settings.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert set(FILE_SECRETS) == {"database_url", "schema_registry_url", "bootstrap_servers"}


def test_a_file_variable_is_accepted_in_an_env_file(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(URL)
    env = tmp_path / "a.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in BASE.items()) + f"SINK_DATABASE_URL_FILE={tmp_path / 'url'}\n")
    assert load_settings([env], environ={}).database_url.get_secret_value() == URL


def test_value_and_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(URL)
    message = _error({**BASE, "SINK_DATABASE_URL": URL, "SINK_DATABASE_URL_FILE": str(tmp_path / "url")})
    assert message == "SINK_DATABASE_URL_FILE: set either SINK_DATABASE_URL or SINK_DATABASE_URL_FILE, not both"


def test_missing_empty_and_binary_files_name_the_variable_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert _error({**BASE, "SINK_DATABASE_URL_FILE": str(missing)}) == (
        f"SINK_DATABASE_URL_FILE: cannot read {missing} (No such file or directory)"
    )
    (tmp_path / "empty").write_text("\n")
    assert _error({**BASE, "SINK_DATABASE_URL_FILE": str(tmp_path / "empty")}).endswith("empty is empty")
    (tmp_path / "bin").write_bytes(SECRET.encode() + b"\xff\xfe")
    assert _error({**BASE, "SINK_DATABASE_URL_FILE": str(tmp_path / "bin")}).endswith("bin is not UTF-8 text")
    assert _error({**BASE, "SINK_DATABASE_URL_FILE": str(tmp_path)}).startswith("SINK_DATABASE_URL_FILE: cannot read")


def test_a_bad_url_from_a_file_is_never_echoed(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(f"postgresql+psycopg://sink:{SECRET}@db:notaport/shop")
    message = _error({**BASE, "SINK_DATABASE_URL_FILE": str(tmp_path / "url")})
    assert message.startswith("SINK_DATABASE_URL: not a database URL")


def test_secrets_directory_fills_unset_secrets_and_passthrough_properties(tmp_path: Path) -> None:
    (tmp_path / "SINK_DATABASE_URL").write_text(URL + "\n")
    (tmp_path / "SINK_CONSUMER__SASL_PASSWORD").write_text(SECRET + "\n")
    (tmp_path / "sink_producer__sasl_password").write_text(SECRET)
    (tmp_path / "SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO").write_text(f"u:{SECRET}")
    (tmp_path / "postgres_password").write_text("someone else's")  # not ours: ignored
    (tmp_path / "..data").mkdir()  # Kubernetes' volume layout
    settings = load_settings([], environ={**BASE, "SINK_SECRETS_DIR": str(tmp_path)})
    assert settings.database_url.get_secret_value() == URL
    assert settings.consumer_config() == {"sasl.password": SECRET}
    assert settings.producer_config() == {"sasl.password": SECRET}
    assert settings.registry_config() == {"basic.auth.user.info": f"u:{SECRET}"}
    assert settings.secrets_dir == tmp_path
    assert SECRET not in repr(settings)


def test_the_environment_and_file_variables_win_over_the_directory(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "SINK_DATABASE_URL").write_text("sqlite:///from-directory.db")
    (secrets / "SINK_CONSUMER__SASL_PASSWORD").write_text("from-directory")
    environ = {**BASE, "SINK_SECRETS_DIR": str(secrets), "SINK_CONSUMER__SASL_PASSWORD": "from-env"}
    settings = load_settings([], environ={**environ, "SINK_DATABASE_URL": "sqlite:///from-env.db"})
    assert settings.database_url.get_secret_value() == "sqlite:///from-env.db"
    assert settings.consumer_config() == {"sasl.password": "from-env"}
    (tmp_path / "url").write_text("sqlite:///from-file.db")
    settings = load_settings([], environ={**environ, "SINK_DATABASE_URL_FILE": str(tmp_path / "url")})
    assert settings.database_url.get_secret_value() == "sqlite:///from-file.db"


def test_a_setting_that_is_not_a_secret_is_refused_in_the_directory(tmp_path: Path) -> None:
    (tmp_path / "SINK_BATCH_SIZE").write_text("10")
    message = _error({**BASE, "SINK_DATABASE_URL": URL, "SINK_SECRETS_DIR": str(tmp_path)})
    assert message.startswith(f"SINK_BATCH_SIZE: not a secret setting, in secrets directory {tmp_path}")


def test_a_missing_secrets_directory_is_refused_and_empty_turns_it_off(tmp_path: Path) -> None:
    message = _error({**BASE, "SINK_DATABASE_URL": URL, "SINK_SECRETS_DIR": str(tmp_path / "nope")})
    assert message == f"SINK_SECRETS_DIR: {tmp_path / 'nope'} is not a directory"
    assert load_settings([], environ={**BASE, "SINK_DATABASE_URL": URL}).secrets_dir is None


def test_passthrough_file_suffix_stays_a_librdkafka_property(tmp_path: Path) -> None:
    """librdkafka's own `*.file` properties are paths it reads itself: never replaced by contents."""
    environ = {**BASE, "SINK_DATABASE_URL": URL, "SINK_CONSUMER__SASL_OAUTHBEARER_ASSERTION_PRIVATE_KEY_FILE": "/k.pem"}
    settings = load_settings([], environ=environ)
    assert settings.consumer_config() == {"sasl.oauthbearer.assertion.private.key.file": "/k.pem"}


def test_http_port_unset_empty_or_zero_is_off_and_bad_values_name_the_variable() -> None:
    environ = {**BASE, "SINK_DATABASE_URL": URL}
    assert load_settings([], environ=environ).http_port is None
    assert load_settings([], environ={**environ, "SINK_HTTP_PORT": ""}).http_port is None
    assert load_settings([], environ={**environ, "SINK_HTTP_PORT": "0"}).http_port == 0
    assert load_settings([], environ={**environ, "SINK_HTTP_PORT": "8080"}).http_port == 8080
    for bad in ("http", "65536", "-1"):
        assert _error({**environ, "SINK_HTTP_PORT": bad}).startswith("SINK_HTTP_PORT: ")
