"""Every private name of confluent-kafka the sink relies on, in one place.

confluent-kafka's Schema Registry client is public API; a few things the sink needs are not:

    TransportError      the HTTP library's transport failure (the client uses httpx2, or httpx on
                        older releases; `common._httpx_compat` picks which)
    init_pool(pool)     adds the well-known Protobuf files (google/protobuf/*, google/type/*,
                        confluent/*) a registry schema may import without a reference
    is_builtin(name)    whether an import is one of those (never fetched from the registry)
    CLIENT_PROPERTIES   the configuration properties `SchemaRegistryClient` accepts, so an unknown
                        one is named before the client is built (its own error is only text)
    KEY_SCHEMA_ID_HEADER / VALUE_SCHEMA_ID_HEADER
                        the record headers newer serializers carry the schema id/GUID in

`tests/unit/test_confluent_shim.py` checks each of them against the installed confluent-kafka and
fails naming the symbol when an upgrade removes or changes one. Nothing else in the sink imports a
private confluent-kafka name (the test checks that too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka.schema_registry import _KEY_SCHEMA_ID, _VALUE_SCHEMA_ID

try:
    from confluent_kafka.schema_registry.common._httpx_compat import httpx as _httpx
except ImportError:  # pragma: no cover - confluent-kafka < 2.14 used httpx directly
    import httpx as _httpx  # type: ignore[no-redef,import-not-found,unused-ignore]

# symbol -> where it lives; the shim test imports each one and says which is gone
PRIVATE = {
    "httpx": "confluent_kafka.schema_registry.common._httpx_compat",
    "_init_pool": "confluent_kafka.schema_registry.common.protobuf",
    "_is_builtin": "confluent_kafka.schema_registry.common.protobuf",
    "_KEY_SCHEMA_ID": "confluent_kafka.schema_registry",
    "_VALUE_SCHEMA_ID": "confluent_kafka.schema_registry",
}

TransportError: type[Exception] = _httpx.TransportError
KEY_SCHEMA_ID_HEADER: str = _KEY_SCHEMA_ID
VALUE_SCHEMA_ID_HEADER: str = _VALUE_SCHEMA_ID

# The properties SchemaRegistryClient's constructor takes (confluent-kafka 2.16); it refuses any
# other with a ValueError whose only description is its text.
CLIENT_PROPERTIES = frozenset(
    {
        "url",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "basic.auth.user.info",
        "bearer.auth.credentials.source",
        "bearer.auth.token",
        "bearer.auth.logical.cluster",
        "bearer.auth.identity.pool.id",
        "bearer.auth.issuer.endpoint.url",
        "bearer.auth.issuer.endpoint.query",
        "bearer.auth.client.id",
        "bearer.auth.client.secret",
        "bearer.auth.scope",
        "bearer.auth.custom.provider.function",
        "bearer.auth.custom.provider.config",
        "cache.capacity",
        "cache.latest.ttl.sec",
        "max.retries",
        "retries.wait.ms",
        "retries.max.wait.ms",
        "timeout",
        "proxy",
    }
)


def _protobuf_helpers() -> tuple[Callable[[Any], None], Callable[[str], bool]]:
    from confluent_kafka.schema_registry.common.protobuf import _init_pool, _is_builtin

    return _init_pool, _is_builtin


def init_pool(pool: Any) -> None:
    """Add the well-known files (google/protobuf, google/type, confluent) to a DescriptorPool."""
    _protobuf_helpers()[0](pool)


def is_builtin(name: str) -> bool:
    """Whether a Protobuf import is a well-known file `init_pool` adds (never a registry reference)."""
    return _protobuf_helpers()[1](name)
