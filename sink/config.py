"""The whole configuration surface, validated once at start-up.

Names mirror Kafka Connect's options with dots as underscores and the prefix `SINK_`; every one is
documented in config/README.md (a test keeps the two in step). Values come from env files given as
`sink run --env-file a.env --env-file b.env` (later files win) and from the real environment,
which wins over files. Secret settings may also come from files: `SINK_<NAME>_FILE=/path` for the
scalar ones, and a secrets directory (`SINK_SECRETS_DIR`, default `/run/secrets` when it exists)
holding one file per variable, named after it. Any problem becomes one `ConfigError` line naming
the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .cdc import UNAVAILABLE_VALUE
from .errors import ConfigError
from .identifiers import split_table_name_format
from .model import CdcFormat, InsertMode, PkMode, Tolerance

ENV_PREFIX = "SINK_"
PASSTHROUGH = ("consumer", "producer", "schema_registry")  # SINK_<GROUP>__<PROP> -> librdkafka "a.b.c"
# SINK_TRANSFORMS=a,b with SINK_TRANSFORMS__A__<OPTION>=...; SINK_PREDICATES likewise (sink/smt/)
BLOCKS = ("transforms", "predicates")
# Settings whose values may hold a credential: an error about them never quotes the value.
SECRET_SETTINGS = (*PASSTHROUGH, "database_url", "schema_registry_url", "bootstrap_servers")
# Scalar secrets that may be given as SINK_<NAME>_FILE=/path (Docker's and the postgres image's
# convention). Not the pass-through groups: librdkafka has properties of its own ending in `.file`
# (sasl.oauthbearer.assertion.private.key.file), so SINK_CONSUMER__X_FILE keeps meaning `x.file`;
# their secrets come from the secrets directory instead.
FILE_SECRETS = tuple(name for name in SECRET_SETTINGS if name not in PASSTHROUGH)
FILE_SUFFIX = "_file"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
# Query parameters of a database URL that carry a secret (libpq's password, sslpassword,
# oauth_client_secret; PyMySQL's passwd; any driver's token): masked wherever the URL is shown.
_SECRET_QUERY = re.compile(r"pass|pwd|secret|token|credential", re.IGNORECASE)
_MASK = "MASKEDSECRET"
# Never quote the URL: its pieces may be pieces of the password.
_REGISTRY_URL_HINT = (
    "not a valid URL; URL-encode '/', '?', '#', '@' and ':' in the user name and password "
    "(%2F, %3F, %23, %40, %3A), e.g. http://user:pa%2Fss@registry:8081"
)

Format = Literal["avro", "protobuf", "json_schema", "connect_json", "json", "string"]
REGISTRY_FORMATS = ("avro", "protobuf", "json_schema")
CommaList = Annotated[tuple[str, ...], NoDecode]
MAX_REPLICATION_FACTOR = 32767  # Kafka's replication factor is an INT16
MAX_TOPIC_PARTITIONS = 2**31 - 1  # an INT32 in CreateTopics
# SINK_TABLE_NAME_FORMAT: the topic, and the source block of a Debezium change event.
TABLE_PLACEHOLDERS = ("topic", "source.db", "source.schema", "source.table")


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):  # type: ignore[no-untyped-def,override]
        # load_settings() merges files and environment itself, so the precedence lives in one place.
        return (init_settings,)

    name: str = Field("sink", pattern=r"^[A-Za-z0-9._-]+$")
    bootstrap_servers: str
    group_id: str | None = None
    topics: CommaList = ()
    topics_regex: str | None = None
    consumer: dict[str, SecretStr] = {}
    producer: dict[str, SecretStr] = {}

    key_format: Format = "string"
    value_format: Format = "json"
    # May carry `user:password@` (basic.auth.credentials.source=URL): kept out of repr and errors.
    schema_registry_url: str | None = Field(None, repr=False)
    schema_registry: dict[str, SecretStr] = {}

    database_url: SecretStr
    table_name_format: str = "${topic}"
    insert_mode: InsertMode = "insert"
    pk_mode: PkMode = "none"
    pk_fields: CommaList = ()
    fields_include: CommaList = ()
    fields_exclude: CommaList = ()
    delete_enabled: bool = False
    # Debezium change events (sink/cdc.py): none, debezium (every record is one), auto (detected).
    cdc_format: CdcFormat = "none"
    # Debezium's add.fields (op, ts_ms, source.<field>, transaction.<field>, or a bare source field) as
    # columns <prefix><name, . as _>; soft deletes: a delete upserts <prefix>deleted=true instead.
    cdc_add_fields: CommaList = ()
    cdc_add_fields_prefix: str = Field("__", pattern=r"^[A-Za-z0-9_]*$", max_length=30)
    cdc_delete_mode: Literal["hard", "soft"] = "hard"
    # Debezium's unavailable.value.placeholder (PostgreSQL's unchanged TOAST values): a field holding
    # it is left out of the row, so the column keeps its stored value; empty: no placeholder.
    cdc_unavailable_value_placeholder: str = Field(UNAVAILABLE_VALUE, max_length=256)
    truncate_enabled: bool = False  # a Debezium truncate (`t`) empties the table; otherwise it is skipped
    # Connect's SMTs (sink/smt/): the names in order, each configured by SINK_TRANSFORMS__<NAME>__<OPTION>;
    # validated into an smt.Chain (None: no transforms). Predicates first: transforms refer to them.
    predicates: Annotated[Any, NoDecode] = None
    transforms: Annotated[Any, NoDecode] = None
    auto_create: bool = False
    auto_evolve: bool = False
    # Out-of-order protection: a column of the rows whose value orders the versions of a key; an
    # upsert (or delete) changes a stored row only when it is newer (docs/architecture.md).
    upsert_version_field: str | None = Field(None, min_length=1)
    # Whole non-object values (schemaless scalars and arrays) in one column of this name; without
    # it such a value is a record error. Keys likewise (record_key without SINK_PK_FIELDS).
    value_column_name: str | None = Field(None, min_length=1)
    key_column_name: str | None = Field(None, min_length=1)

    # Limits checked per record before a parser recurses or DDL runs (a record past them is a record error).
    record_max_depth: int = Field(100, ge=1, le=500)
    table_max_columns: int | None = Field(None, ge=1)  # default: the database's own limit

    batch_size: int = Field(10_000, ge=1, le=1_000_000)
    batch_max_wait_ms: int = Field(500, ge=0)
    buffer_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # records' bytes buffered before a write

    errors_tolerance: Tolerance = "none"
    errors_retry_timeout_ms: int = Field(-1, ge=-1)
    errors_retry_delay_max_ms: int = Field(60_000, ge=1)
    errors_deadletterqueue_topic_name: str | None = None
    # Connect's errors.deadletterqueue.topic.replication.factor: `sink run` creates a missing
    # dead-letter topic at start with 1 partition and this many replicas. -1, the broker's
    # default.replication.factor, by default: Connect's 3 stops every single-broker cluster.
    errors_deadletterqueue_topic_replication_factor: int = -1
    errors_deadletterqueue_context_headers_enable: bool = False
    errors_deadletterqueue_max_ratio: float = Field(1.0, ge=0.0, le=1.0)
    errors_deadletterqueue_ratio_window: int = Field(1000, ge=1)
    errors_deadletterqueue_max_consecutive: int = Field(0, ge=0)
    errors_log_enable: bool = False
    errors_log_include_messages: bool = False
    reporter_result_topic_name: str | None = None
    reporter_error_topic_name: str | None = None
    # Confluent's Connect reporter's reporter.{result,error}.topic.{replication.factor,partitions}:
    # `sink run` creates a missing report topic at start, as it does the dead-letter topic.
    reporter_result_topic_replication_factor: int = -1
    reporter_result_topic_partitions: int = Field(1, ge=1, le=MAX_TOPIC_PARTITIONS)
    reporter_error_topic_replication_factor: int = -1
    reporter_error_topic_partitions: int = Field(1, ge=1, le=MAX_TOPIC_PARTITIONS)

    # exactly_once: positions kept in the target database (SINK_OFFSETS_TABLE_NAME), written in the
    # same transaction as the rows they cover, fenced by an epoch per partition (docs/architecture.md).
    delivery_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    offsets_table_name: str = Field("__sink_offsets", min_length=1, max_length=60)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    log_stats_interval_ms: int = Field(10_000, ge=100)
    shutdown_timeout_ms: int = Field(10_000, ge=100)

    # Where secret files were read from (resolved by load_settings; None: no directory).
    secrets_dir: Path | None = None

    # HTTP endpoints /metrics, /livez, /readyz (sink/adapters/http.py); None or 0: no server.
    http_port: int | None = Field(None, ge=0, le=65535)
    http_host: str = Field("0.0.0.0", min_length=1)
    health_heartbeat_timeout_ms: int = Field(60_000, ge=1000)  # /livez fails past this without a heartbeat
    health_retry_unready_ms: int = Field(30_000, ge=0)  # /readyz fails once retrying an outage this long

    _split = field_validator(
        "topics", "pk_fields", "fields_include", "fields_exclude", "cdc_add_fields", mode="before"
    )(_split_commas)

    @field_validator("predicates", mode="before")
    @classmethod
    def _predicate_blocks(cls, value: Any) -> Any:
        return _blocks(value, "predicates")

    @field_validator("transforms", mode="before")
    @classmethod
    def _chain(cls, value: Any, info: ValidationInfo) -> Any:
        from .smt import build_chain

        blocks = _blocks(value, "transforms")
        if blocks is None:
            return None
        predicates = dict(info.data.get("predicates") or {})
        listed = str(predicates.pop("", "") or "")  # SINK_PREDICATES=a,b: optional, as each has its block
        for name in (p.strip().lower() for p in listed.split(",") if p.strip()):
            if name not in predicates:
                raise ConfigError(f"SINK_PREDICATES__{name.upper()}__TYPE: required for predicate {name!r}")
        names = tuple(part.strip() for part in str(blocks.pop("", "") or "").split(",") if part.strip())
        for name in predicates:
            if not names:
                raise ConfigError(f"SINK_PREDICATES__{name.upper()}__TYPE: set, but SINK_TRANSFORMS is not")
        chain = build_chain(names, blocks, predicates)  # raises ConfigError naming the variable
        return chain if chain else None

    @field_validator("http_port", mode="before")
    @classmethod
    def _empty_port(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value  # `SINK_HTTP_PORT=`: off

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "errors_deadletterqueue_topic_replication_factor",
        "reporter_result_topic_replication_factor",
        "reporter_error_topic_replication_factor",
    )
    @classmethod
    def _replication_factor(cls, value: int) -> int:
        if value == -1 or 1 <= value <= MAX_REPLICATION_FACTOR:
            return value
        raise ValueError(
            f"1 to {MAX_REPLICATION_FACTOR} (how many brokers keep a copy of the topic: at most the "
            "cluster's brokers), or -1 for the broker's default.replication.factor"
        )

    @field_validator("topics_regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return value

    @field_validator("table_name_format")
    @classmethod
    def _valid_table_name_format(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty; e.g. ${topic} (the default) or kafka_${topic}")
        for placeholder in re.findall(r"\$\{([^}]*)\}", value):
            if placeholder not in TABLE_PLACEHOLDERS:
                known = ", ".join("${" + p + "}" for p in TABLE_PLACEHOLDERS)
                raise ValueError(f"unknown placeholder ${{{placeholder}}} (known: {known})")
        split_table_name_format(value)  # schema.table: at most one dot outside ${...}
        return value

    @field_validator("cdc_add_fields")
    @classmethod
    def _valid_add_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"(?:(?:source|transaction)\.)?[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(
                    f"{name!r} is not a change-event field; give op, ts_ms, source.<field> (e.g. source.ts_ms, "
                    "source.lsn, source.table), transaction.<field> or a bare source field (table, lsn)"
                )
        return value

    @field_validator("schema_registry_url")
    @classmethod
    def _valid_registry_url(cls, value: str | None) -> str | None:
        if not value:
            return None  # `SINK_SCHEMA_REGISTRY_URL=` in an env file: not set
        for url in value.split(","):
            try:
                parts = urlsplit(url.strip())
            except ValueError:  # its message may quote the netloc, password and all (NFKC check)
                raise ValueError(_REGISTRY_URL_HINT) from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("not an http:// or https:// URL (several: comma-separated), e.g. http://registry:8081")
            try:
                parts.port  # noqa: B018 - raises for a port that is not a number; its message quotes it
            except ValueError:
                raise ValueError(_REGISTRY_URL_HINT) from None
            if "@" in parts.path + parts.query + parts.fragment:
                raise ValueError(_REGISTRY_URL_HINT)  # an unencoded '/', '?' or '#' ended the userinfo early
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_url(cls, value: SecretStr) -> SecretStr:
        try:
            url = make_url(value.get_secret_value())
        except (ArgumentError, ValueError):  # ValueError (a bad port) would quote the URL, password and all
            raise ValueError(
                "not a database URL; use postgresql+psycopg://..., mysql+pymysql://... or sqlite:///file.db "
                "(URL-encode '@', ':' and '/' in the password)"
            ) from None
        if "@" in (url.host or ""):  # SQLAlchemy ends the password at the first '@': the rest is in the host
            raise ValueError("the host contains '@'; URL-encode '@' in the user name and password as %40")
        if url.get_backend_name() not in ("postgresql", "mysql", "mariadb", "sqlite"):
            raise ValueError(f"unsupported database {url.get_backend_name()!r}; use postgresql, mysql or sqlite")
        _driver_installed(url)
        _sqlite_directory_exists(url)
        _pymysql_can_send_password(url)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for problem in _contradictions(self):
            raise ValueError(problem)
        return self

    # -------------------------------------------------------------- derived views

    @property
    def effective_group_id(self) -> str:
        return self.group_id or f"sink-{self.name}"

    def consumer_config(self) -> dict[str, str]:
        return _librdkafka(self.consumer)

    def producer_config(self) -> dict[str, str]:
        return _librdkafka(self.producer)

    def registry_config(self) -> dict[str, str]:
        return _librdkafka(self.schema_registry)

    @property
    def uses_registry(self) -> bool:
        return self.key_format in REGISTRY_FORMATS or self.value_format in REGISTRY_FORMATS

    def safe_database_url(self) -> str:
        """The database URL with every password masked (userinfo and secret query parameters such
        as `password=`, `sslpassword=`), for logs and `sink check`."""
        url = make_url(self.database_url.get_secret_value())
        query = {key: _MASK if _SECRET_QUERY.search(key) else value for key, value in url.query.items()}
        return url.set(query=query).render_as_string(hide_password=True).replace(_MASK, "***")


def _driver_installed(url: URL) -> None:
    """A missing driver (`postgresql+psycopg2://` without psycopg2) is a configuration error now,
    not a traceback when the engine is first created."""
    try:
        url.get_dialect().import_dbapi()
    except (ImportError, ArgumentError):
        raise ValueError(
            f"database driver {url.get_driver_name()!r} is not installed; use postgresql+psycopg://..., "
            "mysql+pymysql://... or sqlite:///file.db"
        ) from None


def _pymysql_can_send_password(url: URL) -> None:
    """PyMySQL encodes the password as Latin-1; its UnicodeEncodeError would quote a character of
    the password and its position (a traceback from `sink run`, a FAIL line from `sink check`)."""
    if url.get_driver_name() != "pymysql":
        return
    for password in (url.password, url.query.get("password"), url.query.get("passwd")):
        if not isinstance(password, str):
            continue
        try:
            password.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                "the password has a character outside Latin-1, which the PyMySQL driver cannot send"
            ) from None


def _sqlite_directory_exists(url: URL) -> None:
    """SQLite creates a missing file but not its directory; without this check the sink would
    retry "unable to open database file" forever, as if the database were down."""
    path = url.database or ""
    if url.get_backend_name() != "sqlite" or path in ("", ":memory:") or path.startswith("file:"):
        return
    directory = Path(path).expanduser().parent
    if not directory.is_dir():
        raise ValueError(f"SQLite directory {directory} does not exist (SQLite creates the file, not its directory)")


def _blocks(value: Any, group: str) -> dict[str, Any] | None:
    """SINK_TRANSFORMS / SINK_PREDICATES as `_nest` gathers them: {"": "a,b", "a": {"option": "..."}};
    a plain comma list (Settings built in code) stands for {"": list}."""
    if value is None or value == {} or value == "":
        return None
    if isinstance(value, str | tuple | list):
        value = {"": value if isinstance(value, str) else ",".join(value)}
    if not isinstance(value, Mapping):
        raise ConfigError(f"SINK_{group.upper()}: a comma list of names")
    return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}


def _librdkafka(props: Mapping[str, SecretStr]) -> dict[str, str]:
    return {key.lower().replace("_", "."): value.get_secret_value() for key, value in props.items()}


def _contradictions(s: Settings) -> list[str]:
    """Combinations that cannot work, each as 'SINK_X: why'; checked after the single values."""
    problems = []
    if bool(s.topics) == bool(s.topics_regex):
        problems.append("SINK_TOPICS: set exactly one of SINK_TOPICS (comma list) or SINK_TOPICS_REGEX")
    if s.cdc_format != "none" and s.pk_mode not in ("record_key", "record_value", "record_header"):
        problems.append(
            f"SINK_CDC_FORMAT: {s.cdc_format} needs a primary key to apply updates and deletes; set "
            f"SINK_PK_MODE=record_key (Debezium's key) or record_value with SINK_PK_FIELDS (got {s.pk_mode})"
        )
    if s.cdc_format != "none" and s.insert_mode != "upsert":
        problems.append(
            f"SINK_INSERT_MODE: SINK_CDC_FORMAT={s.cdc_format} needs upsert (an update or a snapshot "
            f"re-read replaces the row) (got {s.insert_mode})"
        )
    for variable, used in (
        ("SINK_TABLE_NAME_FORMAT", any("${" + p + "}" in s.table_name_format for p in TABLE_PLACEHOLDERS[1:])),
        ("SINK_CDC_ADD_FIELDS", bool(s.cdc_add_fields)),
        ("SINK_CDC_DELETE_MODE", s.cdc_delete_mode != "hard"),
        ("SINK_CDC_UNAVAILABLE_VALUE_PLACEHOLDER", s.cdc_unavailable_value_placeholder != UNAVAILABLE_VALUE),
    ):
        if used and s.cdc_format == "none":
            problems.append(f"{variable}: reads Debezium change events; set SINK_CDC_FORMAT=debezium or auto")
    backend = make_url(s.database_url.get_secret_value()).get_backend_name()
    if split_table_name_format(s.table_name_format)[0] is not None and backend == "sqlite":
        problems.append(
            f"SINK_TABLE_NAME_FORMAT: {s.table_name_format!r} names a schema (the dot outside ${{...}}), and SQLite "
            "has none (an attached database is not supported); give a table name without a dot, e.g. replica_${topic}"
        )
    if s.delete_enabled and s.pk_mode != "record_key":
        problems.append(f"SINK_DELETE_ENABLED: true requires SINK_PK_MODE=record_key (got {s.pk_mode})")
    if s.insert_mode != "insert" and s.pk_mode == "none":
        problems.append(f"SINK_INSERT_MODE: {s.insert_mode} needs a primary key; SINK_PK_MODE must not be none")
    if s.pk_mode in ("record_value", "record_header") and not s.pk_fields:
        problems.append(f"SINK_PK_FIELDS: required with SINK_PK_MODE={s.pk_mode}")
    if s.pk_mode == "kafka" and s.pk_fields and len(s.pk_fields) != 3:
        problems.append("SINK_PK_FIELDS: with SINK_PK_MODE=kafka give three names (topic, partition, offset)")
    if s.upsert_version_field is not None:
        problems += _version_problems(s)
    if s.predicates and s.transforms is None:
        problems.append("SINK_PREDICATES: set, but no SINK_TRANSFORMS uses a predicate")
    if s.uses_registry and not s.schema_registry_url:
        problems.append("SINK_SCHEMA_REGISTRY_URL: required when a format is avro, protobuf or json_schema")
    problems += _topics_read_back(s)
    # A SINK_TABLE_NAME_FORMAT without ${topic} is allowed on purpose: many topics into one table.
    return problems[:1]


def _topics_read_back(s: Settings) -> list[str]:
    """A topic the sink writes to must not be one it reads: each record it wrote there would be read
    and written again, for ever (Connect refuses a dead-letter topic among a connector's topics)."""
    subscribed = "SINK_TOPICS_REGEX" if s.topics_regex else "SINK_TOPICS"
    pattern = None if not s.topics_regex else re.compile(s.topics_regex.removeprefix("^"))
    problems = []
    for variable, topic in (
        ("SINK_ERRORS_DEADLETTERQUEUE_TOPIC_NAME", s.errors_deadletterqueue_topic_name),
        ("SINK_REPORTER_RESULT_TOPIC_NAME", s.reporter_result_topic_name),
        ("SINK_REPORTER_ERROR_TOPIC_NAME", s.reporter_error_topic_name),
    ):
        if topic and (topic in s.topics or (pattern is not None and pattern.match(topic))):
            problems.append(
                f"{variable}: {topic!r} is a topic the sink reads ({subscribed}): what it writes there "
                "would be read and written again, for ever; give a topic outside its subscription"
            )
    return problems


def _version_problems(s: Settings) -> list[str]:
    field = s.upsert_version_field
    if s.insert_mode != "upsert":
        return [f"SINK_UPSERT_VERSION_FIELD: needs SINK_INSERT_MODE=upsert (got {s.insert_mode})"]
    if s.pk_mode == "kafka":
        return [
            "SINK_UPSERT_VERSION_FIELD: with SINK_PK_MODE=kafka every record has a key of its own, so there "
            "is no older row to protect; to version by the Kafka offset, add it as a field with an "
            "insert_field transform and key the rows by record_key or record_value"
        ]
    if field in s.pk_fields:
        return [f"SINK_UPSERT_VERSION_FIELD: {field!r} is a primary-key field; name a column outside the key"]
    return []


# ------------------------------------------------------------------------------ loading


def known_variables() -> set[str]:
    names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return names | {ENV_PREFIX + (name + FILE_SUFFIX).upper() for name in FILE_SECRETS}


def load_settings(env_files: Sequence[str | Path] = (), environ: Mapping[str, str] | None = None) -> Settings:
    """Read env files (later wins) and the environment (wins over files); raise one-line ConfigError."""
    merged: dict[str, str] = {}
    for path in env_files:
        merged.update(_read_env_file(Path(path)))
    merged.update(os.environ if environ is None else environ)
    values = {k[len(ENV_PREFIX) :].lower(): v for k, v in merged.items() if k.upper().startswith(ENV_PREFIX)}
    values = _secrets_from_files(values)
    try:
        return Settings(**_nest(values))
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from None


def _secrets_from_files(values: Mapping[str, str]) -> dict[str, str]:
    """Fill secret settings from files: `SINK_<NAME>_FILE` (never together with `SINK_<NAME>`),
    then the secrets directory for whatever is still unset (a variable or `_FILE` wins over it).
    Errors name the variable and the path, never the file's content."""
    resolved = dict(values)
    for name in FILE_SECRETS:
        path = resolved.pop(name + FILE_SUFFIX, "").strip()
        if not path:
            continue
        variable = ENV_PREFIX + (name + FILE_SUFFIX).upper()
        if resolved.get(name, "").strip():
            raise ConfigError(f"{variable}: set either {ENV_PREFIX + name.upper()} or {variable}, not both")
        resolved[name] = _read_secret(Path(path), variable)
    directory = _secrets_dir(resolved)
    resolved.pop("secrets_dir", None)
    if directory is None:
        return resolved
    resolved["secrets_dir"] = str(directory)
    for file in sorted(directory.iterdir()):
        upper = file.name.upper()
        if not upper.startswith(ENV_PREFIX) or not file.is_file():
            continue  # other services' secrets, Kubernetes' `..data` links
        key = upper[len(ENV_PREFIX) :].lower()
        group, sep, prop = key.partition("__")
        if not (key in FILE_SECRETS or (sep and prop and group in PASSTHROUGH)):
            raise ConfigError(
                f"{upper}: not a secret setting, in secrets directory {directory} "
                f"(secrets: {', '.join(ENV_PREFIX + n.upper() for n in FILE_SECRETS)}, SINK_CONSUMER__<PROP>, "
                "SINK_PRODUCER__<PROP>, SINK_SCHEMA_REGISTRY__<PROP>; other settings belong in an env file)"
            )
        if key not in resolved:  # the environment and env files win over the directory
            resolved[key] = _read_secret(file, upper)
    return resolved


def _secrets_dir(values: Mapping[str, str]) -> Path | None:
    """`SINK_SECRETS_DIR`, or /run/secrets when it exists; `SINK_SECRETS_DIR=` turns it off."""
    if "secrets_dir" not in values:
        return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None
    given = values["secrets_dir"].strip()
    if not given:
        return None
    directory = Path(given)
    if not directory.is_dir():
        raise ConfigError(f"SINK_SECRETS_DIR: {directory} is not a directory")
    return directory


def _read_secret(path: Path, variable: str) -> str:
    """A secret file's text without its trailing line break (as `echo ... > file` writes it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # its message would quote bytes of the secret
        raise ConfigError(f"{variable}: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise ConfigError(f"{variable}: {path} is empty")
    return text


def _nest(values: Mapping[str, str]) -> dict[str, Any]:
    """`consumer__session_timeout_ms` -> {"consumer": {"session_timeout_ms": ...}}; others unchanged."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        group, sep, prop = key.partition("__")
        if key in PASSTHROUGH:
            if value.strip():  # never quote the value: likely a credential put in the wrong place
                variable = ENV_PREFIX + key.upper()
                raise ConfigError(f"{variable}: not a setting itself; give each property as {variable}__<PROPERTY>")
            continue
        if sep and group in PASSTHROUGH:
            nested.setdefault(group, {})[prop] = value
        elif key in BLOCKS:
            nested.setdefault(key, {})[""] = value
        elif sep and group in BLOCKS:
            name, sep2, option = prop.partition("__")
            if not sep2 or not name or not option:
                variable = ENV_PREFIX + key.upper()
                raise ConfigError(f"{variable}: give each option as SINK_{group.upper()}__<NAME>__<OPTION>")
            nested.setdefault(group, {}).setdefault(name, {})[option] = value
        elif key in Settings.model_fields:
            nested[key] = value
    return nested


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"--env-file: {path} does not exist or is not a file")
    values = {k: v for k, v in dotenv_values(path, interpolate=False).items() if v is not None}
    known = known_variables()
    for name in values:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        group, sep, prop = upper[len(ENV_PREFIX) :].partition("__")
        if not (sep and prop and group.lower() in (*PASSTHROUGH, *BLOCKS)):
            raise ConfigError(f"{upper}: unknown variable in {path} (see config/README.md for the allowed names)")
    return values


def describe(exc: ValidationError) -> str:
    """The first validation problem as one line: `SINK_X: what is allowed (got ...)`."""
    err = exc.errors(include_url=False)[0]
    loc = [str(part) for part in err["loc"]]
    message = str(err["msg"]).removeprefix("Value error, ")
    if not loc:  # model-level validator: the message already names its variable
        return message
    name = ENV_PREFIX + loc[0].upper() + ("__" + "__".join(loc[1:]).upper() if len(loc) > 1 else "")
    if err["type"] == "missing":
        return f"{name}: required, not set"
    shown = err.get("input")
    secret = loc[0] in SECRET_SETTINGS
    got = "" if secret or shown is None or isinstance(shown, dict) else f" (got {shown!r})"
    return f"{name}: {message}{got}"
