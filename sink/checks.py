"""`sink check`: validate the configuration and reach every service, one line per check."""

from __future__ import annotations

from collections.abc import Callable

from .config import Settings
from .errors import SinkError


def run_checks(settings: Settings, out: Callable[[str], None] = print) -> int:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("configuration", lambda: _configuration(settings)),
        ("broker", lambda: _broker(settings)),
        ("database", lambda: _database(settings)),
    ]
    if settings.uses_registry:
        checks.append(("schema registry", lambda: _registry(settings)))
    failed = 0
    for name, probe in checks:
        try:
            out(f"ok    {name}: {probe()}")
        except (SinkError, OSError, RuntimeError, ValueError) as exc:
            failed += 1
            out(f"FAIL  {name}: {exc}")
    return 1 if failed else 0


def _configuration(s: Settings) -> str:
    topics = ",".join(s.topics) or f"regex {s.topics_regex}"
    return (
        f"sink {s.name!r}, group {s.effective_group_id}, topics {topics}, key {s.key_format}, "
        f"value {s.value_format}, {s.insert_mode} with pk {s.pk_mode}"
    )


def _broker(s: Settings) -> str:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    config = {"bootstrap.servers": s.bootstrap_servers, **s.consumer_config()}
    for key in list(config):
        if key.startswith(("session.", "auto.", "enable.", "max.poll", "group.", "fetch.", "isolation.")):
            config.pop(key)
    try:
        metadata = AdminClient(config).list_topics(timeout=10)
    except KafkaException as exc:
        raise SinkError(f"{s.bootstrap_servers} did not answer: {exc.args[0].str()}") from None
    wanted = set(s.topics)
    missing = sorted(wanted - set(metadata.topics))
    found = f"{len(metadata.brokers)} broker(s) at {s.bootstrap_servers}, {len(metadata.topics)} topics"
    return found + (f"; not there yet: {', '.join(missing)}" if missing else "")


def _database(s: Settings) -> str:
    from .adapters.db import SqlStore, create_engine

    store = SqlStore(create_engine(s.database_url.get_secret_value()))
    try:
        version = store.ping()
    finally:
        store.close()
    return f"{s.safe_database_url()} ({store.dialect.name} {version})"


def _registry(s: Settings) -> str:
    from .adapters.registry import RegistrySchemaSource

    assert s.schema_registry_url
    return RegistrySchemaSource(s.schema_registry_url, s.registry_config()).describe()
