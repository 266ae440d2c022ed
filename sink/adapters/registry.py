"""The Schema Registry adapter: the `SchemaSource` port over confluent-kafka's `SchemaRegistryClient`.

The client does the HTTP work (basic auth, bearer auth, TLS, several URLs, its own cache of schemas
by id); this module configures it from `SINK_SCHEMA_REGISTRY__*` and classifies its failures at the
edge, by status and error code:

    connection refused, timeout, TLS failure, HTTP 408/429/5xx  -> RegistryUnavailable (retried)
    HTTP 404 with error code 40403 (40401/40402 for references)  -> LookupError (the format's DecodeError)
    HTTP 401/403, another 404, a bad property                   -> ConfigError (an operator is needed)

Protobuf schemas are asked for in their serialized form (a base64 FileDescriptorProto) and turned
into a descriptor here, with confluent-kafka's helpers, so the core needs nothing but `google.protobuf`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import OAuthTokenError, SchemaRegistryError

from ..errors import ConfigError, RegistryUnavailable

try:  # the HTTP library the client uses (httpx2, or httpx on older releases)
    from confluent_kafka.schema_registry.common._httpx_compat import httpx
except ImportError:  # pragma: no cover - confluent-kafka < 2.14
    import httpx  # type: ignore[no-redef]

T = TypeVar("T")

# Fail fast: the worker pauses and retries with its own back-off, so the client must not sit in
# its retry loop (default 3 retries, up to 20 s apart) nor wait forever (httpx without a timeout).
DEFAULTS: dict[str, Any] = {"max.retries": 0, "timeout": 10.0}
NUMERIC = {"max.retries", "retries.wait.ms", "retries.max.wait.ms", "cache.capacity", "cache.latest.ttl.sec"}
UNAVAILABLE_STATUS = {408, 429}
NOT_FOUND_CODES = {40401, 40402, 40403}  # subject, version, schema not found


def client_config(url: str, props: Mapping[str, str] | None = None) -> dict[str, Any]:
    """SchemaRegistryClient configuration from the URL and the `SINK_SCHEMA_REGISTRY__*` properties."""
    conf: dict[str, Any] = {"url": url, **DEFAULTS}
    for key, value in (props or {}).items():
        if key in NUMERIC or key == "timeout":
            try:
                conf[key] = float(value) if key in ("timeout", "cache.latest.ttl.sec") else int(value)
            except ValueError:
                raise ConfigError(f"{_variable(key)}: must be a number (got {value!r})") from None
        elif key == "ssl.ca.location" and str(value).lower() == "false":
            conf[key] = False  # do not verify the registry's certificate
        else:
            conf[key] = value
    source = str(conf.pop("basic.auth.credentials.source", "") or "").upper()
    has_url_userinfo = bool(urlsplit(url.split(",")[0].strip()).username)
    if source == "USER_INFO" and "basic.auth.user.info" not in conf:
        raise ConfigError(f"{_variable('basic.auth.user.info')}: required with basic.auth.credentials.source=USER_INFO")
    if source == "URL" and not has_url_userinfo:
        raise ConfigError("SINK_SCHEMA_REGISTRY_URL: basic.auth.credentials.source=URL needs user:password@ in the URL")
    if source not in ("", "USER_INFO", "URL"):
        raise ConfigError(
            f"{_variable('basic.auth.credentials.source')}: USER_INFO or URL (got {source!r}); "
            "SASL_INHERIT is not supported, give basic.auth.user.info instead"
        )
    return conf


def _variable(prop: str) -> str:
    return "SINK_SCHEMA_REGISTRY__" + prop.upper().replace(".", "_")


def safe_url(url: str) -> str:
    """The registry URL(s) without credentials, for logs and errors."""
    parts = []
    for one in url.split(","):
        split = urlsplit(one.strip())
        netloc = split.hostname or ""
        if split.port:
            netloc += f":{split.port}"
        parts.append(urlunsplit(split._replace(netloc=netloc)))
    return ",".join(parts)


class SchemaNotFound(LookupError):
    pass


class RegistrySchemaSource:
    """Writer schemas by id from a Confluent-compatible Schema Registry."""

    def __init__(self, url: str, props: Mapping[str, str] | None = None) -> None:
        self.url = safe_url(url)
        try:
            self.client = SchemaRegistryClient(client_config(url, props))
        except (ValueError, TypeError) as exc:
            raise ConfigError(_config_problem(str(exc))) from None
        self._files: dict[int, Any] = {}

    # -------------------------------------------------------------- the SchemaSource port

    def schema(self, schema_id: int) -> tuple[str, str, list[dict]]:
        found = self._call(lambda: self.client.get_schema(schema_id), f"schema id {schema_id}")
        return found.schema_type or "AVRO", found.schema_str or "", _references(found.references)

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict]]:
        found = self._call(
            lambda: self.client.get_version(subject, version), f"subject {subject!r} version {version}"
        ).schema
        return found.schema_type or "AVRO", found.schema_str or "", _references(found.references)

    def protobuf_file(self, schema_id: int) -> Any:
        cached = self._files.get(schema_id)
        if cached is None:
            cached = self._files[schema_id] = self._protobuf_file(schema_id)
        return cached

    def describe(self) -> str:
        """For `sink check`: reach the registry and say what it holds."""
        subjects = self._call(self.client.get_subjects, "the subject list")
        return f"{self.url} answers, {len(subjects)} subject(s)"

    # -------------------------------------------------------------- internals

    def _protobuf_file(self, schema_id: int) -> Any:
        from confluent_kafka.schema_registry.protobuf import _init_pool, _resolve_named_schema, _str_to_proto
        from google.protobuf.descriptor_pool import DescriptorPool

        schema = self._call(lambda: self.client.get_schema(schema_id, fmt="serialized"), f"schema id {schema_id}")
        if (schema.schema_type or "AVRO") != "PROTOBUF":
            raise ValueError(f"schema id {schema_id} is a {schema.schema_type or 'AVRO'} schema, not PROTOBUF")
        pool = DescriptorPool()
        _init_pool(pool)
        self._call(lambda: _resolve_named_schema(schema, self.client, pool), f"the references of schema id {schema_id}")
        name = f"schema-{schema_id}.proto"
        try:
            pool.Add(_str_to_proto(name, schema.schema_str or ""))
            return pool.FindFileByName(name)
        except Exception as exc:  # binascii.Error, SerializationError, TypeError from the pool
            raise ValueError(
                f"schema id {schema_id} is not a serialized FileDescriptorProto (the registry must answer "
                f"format=serialized with base64; it may have returned .proto source): {type(exc).__name__}: {exc}"
            ) from None

    def _call(self, request: Callable[[], T], what: str) -> T:
        try:
            return request()
        except SchemaRegistryError as exc:
            raise self._classify(exc, what) from None
        except (httpx.TransportError, OAuthTokenError) as exc:
            raise RegistryUnavailable(
                f"schema registry {self.url} did not answer for {what}: {type(exc).__name__}: {exc}"
            ) from None

    def _classify(self, exc: SchemaRegistryError, what: str) -> Exception:
        status, code = exc.http_status_code, exc.error_code
        said = f"HTTP {status}, error code {code}: {exc.error_message}"
        if status == 404 and code in NOT_FOUND_CODES:
            return SchemaNotFound(f"{what} not found in the schema registry ({said})")
        if status >= 500 or status in UNAVAILABLE_STATUS:
            return RegistryUnavailable(f"schema registry {self.url} failed for {what} ({said})")
        if status in (401, 403):
            return ConfigError(
                f"SINK_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO: schema registry {self.url} refused the "
                f"credentials ({said})"
            )
        return ConfigError(
            f"SINK_SCHEMA_REGISTRY_URL: {self.url} answered {said} for {what}; is it a Schema Registry URL?"
        )


def _references(references: Any) -> list[dict]:
    return [{"name": r.name, "subject": r.subject, "version": r.version} for r in references or ()]


def _config_problem(message: str) -> str:
    """The client's complaint as one `SINK_...: why` line (its messages name properties, not values)."""
    unknown = message.partition("Unrecognized properties: ")[2]
    if unknown:
        names = ", ".join(_variable(name.strip()) for name in unknown.split(","))
        return f"{names}: not a property of the schema registry client"
    if "url" in message.lower() and "basic.auth" not in message:
        return f"SINK_SCHEMA_REGISTRY_URL: {message if '@' not in message else 'not a valid URL'}"
    return f"SINK_SCHEMA_REGISTRY__*: {message}"
