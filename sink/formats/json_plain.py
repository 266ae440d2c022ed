"""`json`: schemaless JSON; the columns are inferred from the values (schema.infer_columns)."""

from __future__ import annotations

import json

from ..errors import DecodeError
from ..model import Payload


class JsonDecoder:
    def decode(self, data: bytes) -> Payload:
        try:
            return Payload(json.loads(data))
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not valid UTF-8 at byte {exc.start}: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
