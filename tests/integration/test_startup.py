"""`sink run`'s start-up (issue 7): the engine the database check connected and the registry client
the client check built are the worker's, not made a second time, so the first batch after the
group join finds the connection open. No broker needed: the consumer is built, never polled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sink import cli
from sink.adapters.registry import RegistrySchemaSource
from sink.checks import connect_database
from sink.config import Settings, load_settings
from sink.errors import ConfigError


def _settings(database_url: str, **extra: str) -> Settings:
    environ = {
        "SINK_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SINK_TOPICS": "orders",
        "SINK_DATABASE_URL": database_url,
        "SINK_SECRETS_DIR": "",
        **extra,
    }
    return load_settings([], environ=environ)


@pytest.fixture(params=["pg", "sqlite"])
def database_url(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> str:
    return pg_url if request.param == "pg" else f"sqlite:///{tmp_path / 'sink.db'}"


def test_connect_database_keeps_its_connection_in_the_pool(database_url: str) -> None:
    engine = connect_database(_settings(database_url))
    try:
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_connect_database_names_the_variable_when_the_server_refuses(pg_url: str) -> None:
    with pytest.raises(ConfigError, match=r"^SINK_DATABASE_URL: the database refused the connection: .*3D000"):
        connect_database(_settings(pg_url.rsplit("/", 1)[0] + "/no_such_db_startup"))


def test_run_builds_one_registry_client_and_hands_the_checked_engine_to_the_store(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[RegistrySchemaSource] = []
    init = RegistrySchemaSource.__init__

    def counted(self: RegistrySchemaSource, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(RegistrySchemaSource, "__init__", counted)
    settings = _settings(database_url, SINK_VALUE_FORMAT="avro", SINK_SCHEMA_REGISTRY_URL="http://127.0.0.1:1")
    checked = cli._preflight(settings, "run")
    assert checked is not None
    worker, closeables = cli.build_worker(settings, checked=checked)
    try:
        assert built == [checked.registry]
        engines = [getattr(closeable, "engine", None) for closeable in closeables]
        assert checked.engine in engines
        assert checked.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # still open, for the first batch
    finally:
        worker.source.close()
        for closeable in closeables:
            closeable.close()  # type: ignore[attr-defined]
