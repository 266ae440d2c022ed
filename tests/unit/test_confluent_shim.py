"""The private names of confluent-kafka behind `sink.adapters.confluent_shim`: each one still exists
in the installed confluent-kafka and still does what the sink relies on. A confluent-kafka upgrade
that removes or changes one fails here, naming the symbol, instead of somewhere in decoding."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from google.protobuf import descriptor_pool

from sink import formats
from sink.adapters import confluent_shim

SINK = Path(__file__).resolve().parents[2] / "sink"


@pytest.mark.parametrize("symbol", sorted(confluent_shim.PRIVATE))
def test_every_private_symbol_still_exists(symbol: str) -> None:
    module_name = confluent_shim.PRIVATE[symbol]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pytest.fail(f"confluent-kafka upgrade: module {module_name} (home of {symbol}) is gone: {exc}")
    assert hasattr(module, symbol), f"confluent-kafka upgrade: {module_name}.{symbol} is gone"


def test_init_pool_adds_the_well_known_files() -> None:
    pool = descriptor_pool.DescriptorPool()
    try:
        confluent_shim.init_pool(pool)
    except Exception as exc:  # a changed signature or behaviour
        pytest.fail(f"confluent-kafka upgrade: _init_pool(pool) fails: {type(exc).__name__}: {exc}")
    for name in ("google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto", "google/type/date.proto"):
        try:
            pool.FindFileByName(name)
        except KeyError:
            pytest.fail(f"confluent-kafka upgrade: _init_pool no longer adds {name}")
    assert pool.FindMessageTypeByName("google.type.TimeOfDay").full_name == "google.type.TimeOfDay"


def test_is_builtin_tells_well_known_imports_from_references() -> None:
    try:
        confluent_shim.is_builtin("x.proto")
    except Exception as exc:
        pytest.fail(f"confluent-kafka upgrade: _is_builtin(name) fails: {type(exc).__name__}: {exc}")
    assert confluent_shim.is_builtin("google/protobuf/timestamp.proto"), "_is_builtin: google/protobuf"
    assert confluent_shim.is_builtin("google/type/date.proto"), "_is_builtin: google/type"
    assert confluent_shim.is_builtin("confluent/meta.proto"), "_is_builtin: confluent/"
    assert not confluent_shim.is_builtin("common.proto"), "_is_builtin: a registry reference is not built in"
    assert not confluent_shim.is_builtin("shop/google/x.proto")


def test_schema_id_header_names_match_the_core() -> None:
    """The core (which may not import confluent-kafka) spells the header names itself."""
    assert confluent_shim.KEY_SCHEMA_ID_HEADER == formats.KEY_SCHEMA_ID_HEADER, "_KEY_SCHEMA_ID changed"
    assert confluent_shim.VALUE_SCHEMA_ID_HEADER == formats.VALUE_SCHEMA_ID_HEADER, "_VALUE_SCHEMA_ID changed"


def test_transport_error_is_the_clients_http_library() -> None:
    """The client's HTTP failures are `TransportError`s of the library its module uses."""
    client_module = importlib.import_module(SchemaRegistryClient.__module__)
    http = client_module.httpx
    assert confluent_shim.TransportError is http.TransportError, (
        f"confluent-kafka upgrade: the client's HTTP library is {http.__name__}, the shim catches "
        f"{confluent_shim.TransportError.__module__}.TransportError"
    )
    assert issubclass(http.ConnectError, confluent_shim.TransportError)
    assert issubclass(http.TimeoutException, confluent_shim.TransportError)


def test_client_properties_are_the_clients() -> None:
    source = "".join(
        inspect.getsource(importlib.import_module(name))
        for name in (
            SchemaRegistryClient.__module__,
            "confluent_kafka.schema_registry.common.schema_registry_client",
            "confluent_kafka.schema_registry.common._oauthbearer",
        )
    )
    missing = sorted(p for p in confluent_shim.CLIENT_PROPERTIES if f"'{p}'" not in source and f'"{p}"' not in source)
    assert not missing, f"confluent-kafka upgrade: the client no longer reads {missing}"
    with pytest.raises(ValueError):  # an unknown property is still refused (not silently ignored)
        SchemaRegistryClient({"url": "http://sr", "no.such.property": "x"})
    client = SchemaRegistryClient({"url": "http://sr", "timeout": 1.0, "max.retries": 0, "cache.capacity": 10})
    assert client is not None


def test_no_other_module_imports_a_private_confluent_name() -> None:
    offenders = []
    for path in SINK.rglob("*.py"):
        if path.name == "confluent_shim.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("confluent_kafka"):
                module = node.module or ""
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private or any(part.startswith("_") for part in module.split(".")):
                    offenders.append(f"{path.relative_to(SINK.parent)}: from {module} import {private or '...'}")
    assert not offenders, offenders


def test_registry_configuration_problems_are_named_without_the_clients_message_text() -> None:
    from sink.adapters.registry import RegistrySchemaSource, client_config
    from sink.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^SINK_SCHEMA_REGISTRY__A_B, SINK_SCHEMA_REGISTRY__NO_SUCH: not a property"):
        client_config("http://sr", {"no.such": "x", "a.b": "y", "timeout": "3"})
    with pytest.raises(ConfigError, match=r"^SINK_SCHEMA_REGISTRY_URL: 'ftp://sr' is not an http\(s\):// URL"):
        client_config("http://ok,ftp://sr")
    assert RegistrySchemaSource("http://sr", {"cache.capacity": "10"}).url == "http://sr"
    # a known property the client still refuses (it needs bearer.auth.credentials.source): the
    # variables given are named, whatever the client's text says
    with pytest.raises(ConfigError, match=r"^SINK_SCHEMA_REGISTRY__BEARER_AUTH_LOGICAL_CLUSTER: the schema registry"):
        RegistrySchemaSource("http://sr", {"bearer.auth.logical.cluster": "lsrc-1"})
