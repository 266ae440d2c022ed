"""The registry adapter's configuration: pass-through properties to confluent-kafka's client, checked
without a registry (the adapter over HTTP is in tests/integration/test_registry_http.py)."""

from __future__ import annotations

import pytest

from sink.adapters.registry import RegistrySchemaSource, client_config, safe_url
from sink.errors import ConfigError


def test_client_config_from_pass_through_properties() -> None:
    conf = client_config(
        "https://sr:8081",
        {
            "basic.auth.user.info": "u:p",
            "basic.auth.credentials.source": "USER_INFO",
            "max.retries": "2",
            "timeout": "2.5",
            "ssl.ca.location": "/ca.pem",
        },
    )
    assert conf == {
        "url": "https://sr:8081",
        "max.retries": 2,
        "timeout": 2.5,
        "basic.auth.user.info": "u:p",
        "ssl.ca.location": "/ca.pem",
    }
    assert client_config("http://sr")["max.retries"] == 0 and client_config("http://sr")["timeout"] > 0
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__BASIC_AUTH_CREDENTIALS_SOURCE"):
        client_config("http://sr", {"basic.auth.credentials.source": "SASL_INHERIT"})
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO: required"):
        client_config("http://sr", {"basic.auth.credentials.source": "USER_INFO"})
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__MAX_RETRIES: must be a number"):
        client_config("http://sr", {"max.retries": "many"})
    with pytest.raises(ConfigError, match="SINK_SCHEMA_REGISTRY__NO_SUCH: not a property"):
        RegistrySchemaSource("http://sr", {"no.such": "x"})
    assert safe_url("https://u:pw@sr:8081/path,http://b") == "https://sr:8081/path,http://b"


def test_settings_pass_through_reaches_the_client() -> None:
    from sink.config import load_settings

    settings = load_settings(
        environ={
            "SINK_BOOTSTRAP_SERVERS": "kafka:9092",
            "SINK_TOPICS": "orders",
            "SINK_DATABASE_URL": "sqlite:///x.db",
            "SINK_VALUE_FORMAT": "avro",
            "SINK_SCHEMA_REGISTRY_URL": "https://sr:8081",
            "SINK_SCHEMA_REGISTRY__BASIC_AUTH_CREDENTIALS_SOURCE": "USER_INFO",
            "SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": "alice:s3cret",
            "SINK_SCHEMA_REGISTRY__MAX_RETRIES": "1",
        }
    )
    source = RegistrySchemaSource(settings.schema_registry_url, settings.registry_config())
    rest = source.client._rest_client
    assert (rest.auth, rest.max_retries, rest.timeout) == (("alice", "s3cret"), 1, 10.0)
