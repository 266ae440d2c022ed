"""Review: the status page of a real HTTP server never shows a credential of the settings.

`SINK_SCHEMA_REGISTRY_URL` may name several registries, each with its own `user:password@`
(confluent-kafka's client takes a comma-separated list): every password is masked, not the first
one only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sink.adapters.http import serve
from sink.config import load_settings
from sink.health import Health
from tests.support.http import free_port, http_get

pytestmark = pytest.mark.integration

FIRST, SECOND = "RvwRegPw-1st-5513", "RvwRegPw-2nd-7720"


def test_status_page_masks_the_password_of_every_registry_url(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "SINK_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "SINK_TOPICS": "t",
            "SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "SINK_VALUE_FORMAT": "avro",
            "SINK_SCHEMA_REGISTRY_URL": f"http://reg:{FIRST}@127.0.0.1:1,http://reg:{SECOND}@127.0.0.1:2",
            "SINK_SECRETS_DIR": "",
        }
    )
    server = serve("127.0.0.1", free_port(), Health(time.monotonic, 60.0, 30.0), "review", settings=settings)
    assert server is not None
    try:
        code, body = http_get(server.port, "/status.json")
    finally:
        server.close()
    assert code == 200, body
    for planted in (FIRST, SECOND):
        assert planted not in body, f"{planted!r} leaked in /status.json: {body[:3000]}"
    shown = json.dumps(json.loads(body))
    assert "http://reg:***@127.0.0.1:1" in shown and "127.0.0.1:2" in shown, shown[:3000]
