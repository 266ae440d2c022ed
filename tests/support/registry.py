"""A small in-memory, Confluent-compatible Schema Registry for tests.

It speaks the REST endpoints confluent-kafka's ``SchemaRegistryClient`` and serializers use, over
real HTTP, so the product talks to it exactly as it would to Confluent's registry. It does not
check compatibility and does not convert Protobuf schemas between text and the base64
``FileDescriptorProto`` form: a schema is returned exactly as it was registered, whatever
``format`` asks for (confluent-kafka's Python serializers register the base64 form, which is
what its deserializer asks for with ``format=serialized``).

Every schema has an id and a GUID (``guid(schema_id)``), as Confluent's registry 8 does:
registering answers both, ``GET /schemas/ids/{id}`` and ``GET /schemas/guids/{guid}`` serve the
schema with its ``references`` and ``guid`` (the GUID answer carries no ``id``, so a client cannot
lean on one), ``GET /subjects/{subject}/versions/{version}`` serves a referenced schema.

Switches for tests: ``available = False`` makes every request answer 503; ``schema_id_fetches``
counts ``GET /schemas/ids/{id}`` requests and ``schema_guid_fetches`` ``GET /schemas/guids/{guid}``
requests (received, whatever the answer); ``requests`` logs every ``(method, path)``;
``basic_auth=("user", "pass")`` requires HTTP basic auth; ``unavailable_paths`` holds path
prefixes (e.g. ``"/subjects/address"``) that answer 503 while everything else answers.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_TYPES = ("AVRO", "PROTOBUF", "JSON")


class _HttpError(Exception):
    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def _not_found_subject(subject: str) -> _HttpError:
    return _HttpError(404, 40401, f"Subject '{subject}' not found.")


def _not_found_version(version: str) -> _HttpError:
    return _HttpError(404, 40402, f"Version {version} not found.")


def _not_found_schema() -> _HttpError:
    return _HttpError(404, 40403, "Schema not found")


@dataclass(frozen=True)
class StoredSchema:
    id: int
    schema: str
    schema_type: str
    references: tuple[tuple[tuple[str, Any], ...], ...] = ()
    guid: str = ""

    def references_json(self) -> list[dict[str, Any]]:
        return [dict(ref) for ref in self.references]

    def body(self) -> dict[str, Any]:
        """The ``GET /schemas/ids/{id}`` answer: ``schemaType`` is omitted for Avro, as Confluent does."""
        out: dict[str, Any] = {"schema": self.schema, "guid": self.guid}
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = self.references_json()
        return out


@dataclass
class _State:
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    by_guid: dict[str, int] = field(default_factory=dict)
    by_content: dict[tuple[str, str, tuple[Any, ...]], int] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> schema id per version
    compatibility: str = "NONE"
    subject_compatibility: dict[str, str] = field(default_factory=dict)


class RegistryServer:
    """The registry on ``127.0.0.1`` (port 0 = a free port); ``url`` once started."""

    def __init__(self, port: int = 0, basic_auth: tuple[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port = port
        self.basic_auth = basic_auth
        self.available = True
        self.schema_id_fetches = 0
        self.schema_guid_fetches = 0
        self.unavailable_paths: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self._state = _State()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("registry not started")
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> RegistryServer:
        if self._server is not None:
            return self
        handler = type("Handler", (_Handler,), {"registry": self})
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="test-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- test helpers ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every schema and subject; reset the counters and switches."""
        with self._lock:
            self._state = _State()
            self.schema_id_fetches = 0
            self.schema_guid_fetches = 0
            self.unavailable_paths.clear()
            self.requests.clear()
            self.available = True

    def register(
        self,
        subject: str,
        schema: str,
        schema_type: str = "AVRO",
        references: list[dict[str, Any]] | None = None,
    ) -> int:
        """Register directly (no HTTP); returns the schema id."""
        return self._register(subject, schema, schema_type, references or [])["id"]

    def guid(self, schema_id: int) -> str:
        """The GUID of a registered schema (text, as the REST API gives it)."""
        with self._lock:
            return self._state.schemas[schema_id].guid

    # -- operations (called under the handler) -----------------------------------------------------

    def _register(
        self, subject: str, schema: str, schema_type: str, references: list[dict[str, Any]]
    ) -> dict[str, Any]:
        if schema_type not in SCHEMA_TYPES:
            raise _HttpError(422, 42201, f"Invalid schema type {schema_type}")
        if not isinstance(schema, str) or not schema:
            raise _HttpError(422, 42201, "Invalid schema")
        refs = tuple(tuple(sorted(ref.items())) for ref in references)
        key = (schema_type, schema, refs)
        with self._lock:
            state = self._state
            schema_id = state.by_content.get(key)
            if schema_id is None:
                schema_id = max(state.schemas, default=0) + 1
                guid = str(uuid.uuid4())
                state.schemas[schema_id] = StoredSchema(schema_id, schema, schema_type, refs, guid)
                state.by_content[key] = schema_id
                state.by_guid[guid] = schema_id
            versions = state.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return {"id": schema_id, "guid": state.schemas[schema_id].guid}

    def _lookup(self, subject: str, schema: str, schema_type: str, references: list[dict[str, Any]]) -> dict[str, Any]:
        refs = tuple(tuple(sorted(ref.items())) for ref in references)
        with self._lock:
            versions = self._state.subjects.get(subject)
            if not versions:
                raise _not_found_subject(subject)
            schema_id = self._state.by_content.get((schema_type, schema, refs))
            if schema_id is None or schema_id not in versions:
                raise _not_found_schema()
            return self._version_body(subject, versions.index(schema_id) + 1, schema_id)

    def _version_body(self, subject: str, version: int, schema_id: int) -> dict[str, Any]:
        stored = self._state.schemas[schema_id]
        return {
            "subject": subject,
            "version": version,
            "id": schema_id,
            "guid": stored.guid,
            "schemaType": stored.schema_type,
            "schema": stored.schema,
            "references": stored.references_json(),
        }

    def _get_version(self, subject: str, version: str) -> dict[str, Any]:
        with self._lock:
            versions = self._state.subjects.get(subject)
            if not versions:
                raise _not_found_subject(subject)
            if version in ("latest", "-1"):
                number = len(versions)
            else:
                try:
                    number = int(version)
                except ValueError:
                    raise _HttpError(422, 42202, f"Invalid version {version}") from None
                if not 1 <= number <= len(versions):
                    raise _not_found_version(version)
            return self._version_body(subject, number, versions[number - 1])

    def _get_schema(self, schema_id: str) -> StoredSchema:
        with self._lock:
            try:
                return self._state.schemas[int(schema_id)]
            except (KeyError, ValueError):
                raise _not_found_schema() from None

    def _get_schema_by_guid(self, guid: str) -> dict[str, Any]:
        with self._lock:
            schema_id = self._state.by_guid.get(guid.lower())
            if schema_id is None:
                raise _not_found_schema()
            return self._state.schemas[schema_id].body()

    def _schema_versions(self, schema_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"subject": subject, "version": versions.index(schema_id) + 1}
                for subject, versions in sorted(self._state.subjects.items())
                if schema_id in versions
            ]

    def _delete_subject(self, subject: str) -> list[int]:
        with self._lock:
            versions = self._state.subjects.pop(subject, None)
            if not versions:
                raise _not_found_subject(subject)
            self._state.subject_compatibility.pop(subject, None)
            return list(range(1, len(versions) + 1))

    # -- routing -----------------------------------------------------------------------------------

    def handle(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Dispatch one request; returns (status, JSON body)."""
        match method, parts:
            case "GET", ["schemas", "ids", schema_id]:
                return 200, self._get_schema(schema_id).body()
            case "GET", ["schemas", "guids", guid]:
                return 200, self._get_schema_by_guid(guid)
            case "GET", ["schemas", "ids", schema_id, "versions"]:
                return 200, self._schema_versions(self._get_schema(schema_id).id)
            case "GET", ["schemas", "ids", schema_id, "subjects"]:
                versions = self._schema_versions(self._get_schema(schema_id).id)
                return 200, [v["subject"] for v in versions]
            case "GET", ["schemas", "types"]:
                return 200, list(SCHEMA_TYPES)
            case "GET", ["subjects"]:
                with self._lock:
                    return 200, sorted(s for s, v in self._state.subjects.items() if v)
            case "GET", ["subjects", subject, "versions"]:
                with self._lock:
                    versions = self._state.subjects.get(subject)
                    if not versions:
                        raise _not_found_subject(subject)
                    return 200, list(range(1, len(versions) + 1))
            case "GET", ["subjects", subject, "versions", version]:
                return 200, self._get_version(subject, version)
            case "POST", ["subjects", subject, "versions"]:
                schema, schema_type, refs = _schema_request(body)
                return 200, self._register(subject, schema, schema_type, refs)
            case "POST", ["subjects", subject]:
                schema, schema_type, refs = _schema_request(body)
                return 200, self._lookup(subject, schema, schema_type, refs)
            case "DELETE", ["subjects", subject]:
                return 200, self._delete_subject(subject)
            case "GET", ["config"]:
                return 200, {"compatibilityLevel": self._state.compatibility}
            case "PUT", ["config"]:
                level = _compatibility_request(body)
                with self._lock:
                    self._state.compatibility = level
                return 200, {"compatibility": level}
            case "GET", ["config", subject]:
                level = self._state.subject_compatibility.get(subject, self._state.compatibility)
                return 200, {"compatibilityLevel": level}
            case "PUT", ["config", subject]:
                level = _compatibility_request(body)
                with self._lock:
                    self._state.subject_compatibility[subject] = level
                return 200, {"compatibility": level}
            case "GET", ["associations", "resources", _, _]:
                # confluent-kafka >= 2.14 serdes ask this first (AssociatedNameStrategy); none here,
                # so they fall back to the topic name strategy.
                return 200, []
            case "GET", ["mode"] | ["mode", _]:
                return 200, {"mode": "READWRITE"}
            case "GET", []:
                return 200, {}
        raise _HttpError(404, 404, f"HTTP 404 Not Found: {method} /{'/'.join(parts)}")


def _schema_request(body: Any) -> tuple[str, str, list[dict[str, Any]]]:
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise _HttpError(422, 42201, "Invalid schema: request body needs a 'schema' string")
    schema_type = body.get("schemaType") or "AVRO"
    references = body.get("references") or []
    if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
        raise _HttpError(422, 42201, "Invalid schema references")
    return body["schema"], str(schema_type).upper(), references


def _compatibility_request(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("compatibility"), str):
        raise _HttpError(422, 42203, "Invalid compatibility level")
    return body["compatibility"].upper()


class _Handler(BaseHTTPRequestHandler):
    registry: RegistryServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr logging
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        registry = self.registry
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with registry._lock:
            registry.requests.append((method, split.path))
            if method == "GET" and len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
                registry.schema_id_fetches += 1
            if method == "GET" and len(parts) == 3 and parts[:2] == ["schemas", "guids"]:
                registry.schema_guid_fetches += 1
            down = not registry.available or any(split.path.startswith(p) for p in registry.unavailable_paths)
        try:
            if down:
                raise _HttpError(503, 50301, "Schema Registry is unavailable (test switch)")
            if registry.basic_auth is not None and not self._authorized(registry.basic_auth):
                raise _HttpError(401, 401, "Unauthorized")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise _HttpError(400, 400, "Malformed JSON") from None
            status, payload = registry.handle(method, parts, query, body)
        except _HttpError as err:
            status, payload = err.status, {"error_code": err.error_code, "message": err.message}
        self._send(status, payload)

    def _authorized(self, expected: tuple[str, str]) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == expected

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="schema-registry"')
        self.end_headers()
        self.wfile.write(data)
