"""`string`: UTF-8 text, one STRING column (Kafka Connect's StringConverter)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import DecodeError
from ..model import ColumnType, Kind, Payload, make

STRING = ColumnType(Kind.STRING)


class StringDecoder:
    @staticmethod
    def validator() -> Callable[[bytes], object]:
        """What raises exactly when `decode` does (not UTF-8), at C speed: `pipeline.Preparer`
        checks a key it does not map this way."""
        return bytes.decode  # UTF-8, strict

    def decode(self, data: bytes, header: bytes | None = None) -> Payload:  # header: no framing here
        try:
            return make(Payload, (data.decode("utf-8"), STRING, None))
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not valid UTF-8 at byte {exc.start}: {exc.reason}") from None
