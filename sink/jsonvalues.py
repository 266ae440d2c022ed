"""Record values as JSON text: one encoding for JSON columns (`adapters.db`) and delivery reports.

Dates and times as ISO 8601, decimals and UUIDs as their exact text, bytes as base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from typing import Any


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for the values the formats produce; TypeError for any other."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
