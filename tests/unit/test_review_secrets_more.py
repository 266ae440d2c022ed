"""Review: configuration errors about a credential-bearing setting never quote its value.

config/README.md: every `SINK_SCHEMA_REGISTRY__*` value is a secret, never quoted by an error; a
URL whose password holds an unencoded `/`, `?`, `#` (registry) or `@` (database) is refused with
one line that quotes no piece of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sink.adapters.registry import client_config
from sink.config import load_settings
from sink.errors import ConfigError

SECRET = "RvwSecret-3391k"
PART1, PART2 = "RvwPartOne4471", "RvwPartTwo9902"


def _refusal(call: object) -> str:
    with pytest.raises(ConfigError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value)


@pytest.mark.parametrize("prop", ["timeout", "max.retries", "retries.wait.ms", "retries.max.wait.ms", "cache.capacity"])
def test_a_registry_property_that_is_not_a_number_is_refused_without_its_value(prop: str) -> None:
    message = _refusal(lambda: client_config("http://registry:8081", {prop: SECRET}))
    assert message.startswith("SINK_SCHEMA_REGISTRY__"), message
    assert SECRET not in message, message


def test_a_credentials_source_holding_the_user_info_is_refused_without_it() -> None:
    # A plausible slip: the user:password put in ..._CREDENTIALS_SOURCE instead of ..._USER_INFO.
    message = _refusal(
        lambda: client_config("http://registry:8081", {"basic.auth.credentials.source": f"reg-user:{SECRET}"})
    )
    assert message.startswith("SINK_SCHEMA_REGISTRY__BASIC_AUTH_CREDENTIALS_SOURCE:"), message
    assert SECRET.upper() not in message.upper(), message


def _settings(tmp_path: Path, **values: str) -> dict[str, str]:
    return {
        "SINK_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SINK_TOPICS": "t",
        "SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "SINK_SECRETS_DIR": "",
        **values,
    }


@pytest.mark.parametrize("special", ["/", "?", "#"])
@pytest.mark.parametrize("first", [PART1, "4471"])  # a numeric first half reads as a port
def test_a_registry_url_with_an_unencoded_special_in_the_password_is_refused(
    special: str, first: str, tmp_path: Path
) -> None:
    url = f"http://reg-user:{first}{special}{PART2}@registry:8081"
    environ = _settings(tmp_path, SINK_VALUE_FORMAT="avro", SINK_SCHEMA_REGISTRY_URL=url)
    message = _refusal(lambda: load_settings(environ=environ))
    assert message.startswith("SINK_SCHEMA_REGISTRY_URL:"), message
    for piece in (first, PART2):
        assert piece not in message, message


def test_registry_urls_with_encoded_passwords_still_load(tmp_path: Path) -> None:
    url = "http://reg-user:a%2Fb%3Fc%23d%40e@registry:8081,https://registry2:8443/prefix"
    environ = _settings(tmp_path, SINK_VALUE_FORMAT="avro", SINK_SCHEMA_REGISTRY_URL=url)
    assert load_settings(environ=environ).schema_registry_url == url


def test_a_database_url_with_an_unencoded_at_sign_in_the_password_is_refused(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres:{PART1}@{PART2}@127.0.0.1:5432/test"
    message = _refusal(lambda: load_settings(environ=_settings(tmp_path, SINK_DATABASE_URL=url)))
    assert message.startswith("SINK_DATABASE_URL:"), message
    for piece in (PART1, PART2):
        assert piece not in message, message


def test_a_database_url_with_an_encoded_at_sign_still_loads(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres:{PART1}%40{PART2}@127.0.0.1:5432/test"
    settings = load_settings(environ=_settings(tmp_path, SINK_DATABASE_URL=url))
    assert PART1 not in settings.safe_database_url() and PART2 not in settings.safe_database_url()


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("partition.assignment.strategy", f"range,{SECRET}"),  # librdkafka quotes one element of the list
        ("partition.assignment.strategy", f"{SECRET},range"),
        ("plugin.library.paths", f"{SECRET};other"),  # ... or one path of the list
    ],
)
def test_a_refused_list_property_is_refused_without_any_element_of_its_value(prop: str, value: str) -> None:
    from sink.adapters.kafka import validate_consumer_config, validate_producer_config

    for validate in (
        lambda: validate_consumer_config({prop: value}, ("t",), None),
        lambda: validate_producer_config({prop: value}),
    ):
        try:
            validate()
        except ConfigError as refused:
            message = str(refused)
            assert message.startswith(("SINK_CONSUMER__", "SINK_PRODUCER__")), message
            assert SECRET not in message, message
        # a property of one client only is accepted (ignored) by the other


@pytest.mark.parametrize("special", ["\uff03", "\uff0f", "\uff20", "\u2100"])  # fullwidth # / @, account-of
def test_a_registry_url_whose_password_urlsplit_refuses_is_refused_without_quoting_it(
    special: str, tmp_path: Path
) -> None:
    # urlsplit raises "netloc '<user:password@host>' contains invalid characters under NFKC
    # normalization" for a character that normalizes to one of / ? # @ :
    url = f"http://reg-user:{PART1}{special}{PART2}@registry:8081"
    environ = _settings(tmp_path, SINK_VALUE_FORMAT="avro", SINK_SCHEMA_REGISTRY_URL=url)
    message = _refusal(lambda: load_settings(environ=environ))
    assert message.startswith("SINK_SCHEMA_REGISTRY_URL:"), message
    for piece in (PART1, PART2):
        assert piece not in message, message
