"""SINK_CDC_FORMAT: its values and the settings it needs, refused at start-up naming the variable."""

from __future__ import annotations

import pytest

from sink.cli import rules_from
from sink.config import load_settings
from sink.errors import ConfigError

BASE = {
    "SINK_BOOTSTRAP_SERVERS": "localhost:9092",
    "SINK_DATABASE_URL": "sqlite:///:memory:",
    "SINK_TOPICS": "dbserver1.inventory.customers",
    "SINK_INSERT_MODE": "upsert",
    "SINK_PK_MODE": "record_key",
}


@pytest.mark.parametrize("mode", ["debezium", "auto", "none"])
def test_cdc_format_reaches_the_mapping_rules(mode: str) -> None:
    settings = load_settings([], {**BASE, "SINK_CDC_FORMAT": mode})
    assert rules_from(settings).mapping.cdc_format == mode


def test_default_is_none() -> None:
    assert load_settings([], BASE).cdc_format == "none"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"SINK_CDC_FORMAT": "maxwell"}, "SINK_CDC_FORMAT: "),
        ({"SINK_CDC_FORMAT": "debezium", "SINK_PK_MODE": "none"}, "SINK_CDC_FORMAT: debezium needs a primary key"),
        ({"SINK_CDC_FORMAT": "auto", "SINK_PK_MODE": "kafka"}, "SINK_CDC_FORMAT: auto needs a primary key"),
        ({"SINK_CDC_FORMAT": "debezium", "SINK_INSERT_MODE": "insert"}, "SINK_INSERT_MODE: SINK_CDC_FORMAT=debezium"),
    ],
)
def test_bad_combinations_name_the_variable(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings([], {**BASE, **extra})
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
