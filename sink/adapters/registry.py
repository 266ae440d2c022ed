"""The Schema Registry adapter: the `SchemaSource` port over confluent-kafka's `SchemaRegistryClient`.

The client does the HTTP work (basic auth, bearer auth, TLS, several URLs, its own cache of schemas
by id and by GUID); this module configures it from `SINK_SCHEMA_REGISTRY__*` and classifies its
failures at the edge, by HTTP status and error code, never by message text:

    connection refused, timeout, TLS failure, HTTP 408/429/5xx  -> RegistryUnavailable (retried)
    HTTP 404 with error code 40401/40402/40403 (subject,        -> SchemaNotFound, a LookupError
      version, schema not found; also for a reference)             (the format's DecodeError)
    HTTP 401/403, another 404, a bad property                   -> ConfigError (an operator is needed)

Schemas are asked for by id (`GET /schemas/ids/{id}`, wire-format magic byte 0) or by GUID
(`GET /schemas/guids/{guid}`, magic byte 1); references by subject and version
(`GET /subjects/{subject}/versions/{version}`). Protobuf schemas are asked for in their serialized
form (a base64 FileDescriptorProto) and turned into a descriptor here, imports first, so the core
needs nothing but `google.protobuf`. The few private names of confluent-kafka this needs live in
`confluent_shim`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import OAuthTokenError, SchemaRegistryError

from ..errors import ConfigError, RegistryUnavailable, SchemaNotFound
from . import confluent_shim

SchemaRef = int | str  # a schema id (magic byte 0) or a schema GUID (magic byte 1, as text)

T = TypeVar("T")

# Fail fast: the worker pauses and retries with its own back-off, so the client must not sit in
# its retry loop (default 3 retries, up to 20 s apart) nor wait forever (httpx without a timeout).
DEFAULTS: dict[str, Any] = {"max.retries": 0, "timeout": 10.0}
NUMERIC = {"max.retries", "retries.wait.ms", "retries.max.wait.ms", "cache.capacity", "cache.latest.ttl.sec"}
UNAVAILABLE_STATUS = {408, 429}
NOT_FOUND_CODES = {40401, 40402, 40403}  # subject, version, schema not found


def client_config(url: str, props: Mapping[str, str] | None = None) -> dict[str, Any]:
    """SchemaRegistryClient configuration from the URL and the `SINK_SCHEMA_REGISTRY__*` properties."""
    for one in url.split(","):
        split = urlsplit(one.strip())
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ConfigError(f"SINK_SCHEMA_REGISTRY_URL: {safe_url(one.strip())!r} is not an http(s):// URL")
    unknown = sorted(set(props or ()) - confluent_shim.CLIENT_PROPERTIES - {"basic.auth.credentials.source"})
    if unknown:
        names = ", ".join(_variable(name) for name in unknown)
        raise ConfigError(f"{names}: not a property of the schema registry client")
    conf: dict[str, Any] = {"url": url, **DEFAULTS}
    for key, value in (props or {}).items():
        if key in NUMERIC or key == "timeout":
            try:
                conf[key] = float(value) if key in ("timeout", "cache.latest.ttl.sec") else int(value)
            except ValueError:
                raise ConfigError(f"{_variable(key)}: must be a number") from None  # never the value: a secret
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
            f"{_variable('basic.auth.credentials.source')}: USER_INFO or URL (not quoted: it may be a credential); "
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


class RegistrySchemaSource:
    """Writer schemas by id or GUID from a Confluent-compatible Schema Registry."""

    def __init__(self, url: str, props: Mapping[str, str] | None = None) -> None:
        self.url = safe_url(url)
        conf = client_config(url, props)
        try:
            self.client = SchemaRegistryClient(conf)
        except (ValueError, TypeError) as exc:  # a value the client refuses (our checks passed)
            names = ", ".join(_variable(key) for key in (props or {})) or "SINK_SCHEMA_REGISTRY_URL"
            raise ConfigError(f"{names}: the schema registry client refuses the configuration: {exc}") from None
        self._files: dict[SchemaRef, Any] = {}

    # -------------------------------------------------------------- the SchemaSource port

    def schema(self, ref: SchemaRef) -> tuple[str, str, list[dict[str, Any]]]:
        found = self._call(lambda: self._get(ref), _what(ref))
        return found.schema_type or "AVRO", found.schema_str or "", _references(found.references)

    def reference(self, subject: str, version: int) -> tuple[str, str, list[dict[str, Any]]]:
        found = self._call(
            lambda: self.client.get_version(subject, version), f"subject {subject!r} version {version}"
        ).schema
        return found.schema_type or "AVRO", found.schema_str or "", _references(found.references)

    def protobuf_file(self, ref: SchemaRef) -> Any:
        cached = self._files.get(ref)
        if cached is None:
            cached = self._files[ref] = self._protobuf_file(ref)
        return cached

    def describe(self) -> str:
        """For `sink check`: reach the registry and say what it holds."""
        subjects = self._call(self.client.get_subjects, "the subject list")
        return f"{self.url} answers, {len(subjects)} subject(s)"

    # -------------------------------------------------------------- internals

    def _get(self, ref: SchemaRef, fmt: str | None = None) -> Any:
        if isinstance(ref, str):
            return self.client.get_schema_by_guid(ref, fmt=fmt)
        return self.client.get_schema(ref, fmt=fmt)

    def _protobuf_file(self, ref: SchemaRef) -> Any:
        from google.protobuf.descriptor_pool import DescriptorPool

        what = _what(ref)
        schema = self._call(lambda: self._get(ref, "serialized"), what)
        if (schema.schema_type or "AVRO") != "PROTOBUF":
            raise ValueError(f"{what} is a {schema.schema_type or 'AVRO'} schema, not PROTOBUF")
        pool = DescriptorPool()
        confluent_shim.init_pool(pool)
        self._add_imports(pool, _references(schema.references), set(), what)
        name = f"schema-{ref}.proto"
        try:
            pool.Add(_file_proto(name, schema.schema_str or "", what))
        except TypeError as exc:  # the pool refuses the file: an import no reference gave, a clash
            raise ValueError(f"{what} cannot be added to the descriptor pool: {exc}") from None
        return pool.FindFileByName(name)

    def _add_imports(self, pool: Any, references: list[dict[str, Any]], seen: set[str], what: str) -> None:
        """Add the files a Protobuf schema imports (its references, theirs first) to `pool`, each
        under the import name the reference gives."""
        for ref in references:
            name = str(ref["name"])
            if confluent_shim.is_builtin(name) or name in seen:
                continue
            seen.add(name)
            subject, version = str(ref["subject"]), int(ref["version"])
            where = f"subject {subject!r} version {version} (imported as {name!r} by {what})"
            try:
                found = self._version(subject, version, where)
            except SchemaNotFound as exc:
                raise SchemaNotFound(str(exc), reference=name) from None
            if (found.schema.schema_type or "AVRO") != "PROTOBUF":
                raise ValueError(f"{where} is a {found.schema.schema_type or 'AVRO'} schema, not PROTOBUF")
            self._add_imports(pool, _references(found.schema.references), seen, what)
            try:
                pool.Add(_file_proto(name, found.schema.schema_str or "", where))
            except TypeError as exc:  # the pool refuses a file: a clash, a missing import
                raise ValueError(f"{where} cannot be added to the descriptor pool: {exc}") from None

    def _version(self, subject: str, version: int, where: str) -> Any:
        return self._call(lambda: self.client.get_version(subject, version, True, "serialized"), where)

    def _call(self, request: Callable[[], T], what: str) -> T:
        try:
            return request()
        except SchemaRegistryError as exc:
            raise self._classify(exc, what) from None
        except (confluent_shim.TransportError, OAuthTokenError) as exc:
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


def _what(ref: SchemaRef) -> str:
    return f"schema GUID {ref}" if isinstance(ref, str) else f"schema id {ref}"


def _file_proto(name: str, text: str, what: str) -> Any:
    """A base64 FileDescriptorProto (the registry's `format=serialized`) under the import name `name`."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError as ProtobufDecodeError

    file = descriptor_pb2.FileDescriptorProto()
    try:
        file.ParseFromString(base64.b64decode(text.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, ProtobufDecodeError) as exc:
        raise ValueError(
            f"{what} is not a serialized FileDescriptorProto (the registry must answer format=serialized "
            f"with base64; it may have returned .proto source): {type(exc).__name__}: {exc}"
        ) from None
    file.name = name
    return file


def _references(references: Any) -> list[dict[str, Any]]:
    return [{"name": r.name, "subject": r.subject, "version": r.version} for r in references or ()]
