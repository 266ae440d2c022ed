"""`json`: schemaless JSON; the columns are inferred from the values (schema.infer_columns)."""

from __future__ import annotations

import json

from ..errors import DecodeError
from ..model import Payload
from . import exceeds_depth


class JsonDecoder:
    def __init__(self, max_depth: int = 100) -> None:
        self.max_depth = max_depth

    def decode(self, data: bytes) -> Payload:
        if exceeds_depth(data, self.max_depth):  # before json.loads and every later step recurse into it
            raise DecodeError(f"JSON nested deeper than {self.max_depth} levels (SINK_RECORD_MAX_DEPTH)")
        try:
            return Payload(json.loads(data))
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not valid UTF-8 at byte {exc.start}: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
