"""`sink run`'s start-up (issue 7): the start-up checks hand over the registry client they built
(tests/integration/test_startup.py: the worker uses it and the checked engine). Offline:
building the registry client reaches nothing."""

from __future__ import annotations

from pathlib import Path

from sink import cli
from sink.adapters.registry import RegistrySchemaSource
from sink.checks import validate_clients
from sink.config import Settings, load_settings


def _settings(tmp_path: Path, **extra: str) -> Settings:
    environ = {
        "SINK_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SINK_TOPICS": "orders",
        "SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'sink.db'}",
        "SINK_SECRETS_DIR": "",
        **extra,
    }
    return load_settings([], environ=environ)


def _avro(tmp_path: Path) -> Settings:
    return _settings(tmp_path, SINK_VALUE_FORMAT="avro", SINK_SCHEMA_REGISTRY_URL="http://127.0.0.1:1")


def test_validate_clients_returns_the_registry_client_it_built_or_none(tmp_path: Path) -> None:
    assert isinstance(validate_clients(_avro(tmp_path)), RegistrySchemaSource)
    assert validate_clients(_settings(tmp_path)) is None


def test_other_commands_check_no_database(tmp_path: Path) -> None:
    assert cli._preflight(_settings(tmp_path), "check") is None
    assert not (tmp_path / "sink.db").exists()
