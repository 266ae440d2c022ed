"""Connect's predicates (TopicNameMatches, HasHeaderKey, RecordIsTombstone) and a field condition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model import RawRecord
from .base import (
    Options,
    Predicate,
    to_string,
)


def topic_name_matches(o: Options) -> Predicate:
    pattern = o.regex("pattern")
    o.check_unknown(("pattern",))
    return lambda raw, topic, k, v: pattern.fullmatch(topic) is not None


def has_header_key(o: Options) -> Predicate:
    name = o.required("name", "the header name")
    o.check_unknown(("name",))
    return lambda raw, topic, k, v: any(h == name for h, _ in raw.headers)


def record_is_tombstone(o: Options) -> Predicate:
    o.check_unknown(())
    return lambda raw, topic, k, v: v is None


def field_value_matches(o: Options) -> Predicate:
    """A value field (as text) matches `pattern` whole; a missing or null field does not."""
    field = o.required("field", "the value field to test")
    pattern = o.regex("pattern")
    o.check_unknown(("field", "pattern"))

    def test(raw: RawRecord, topic: str, k: Any, v: Any) -> bool:
        if v.__class__ is not dict:
            return False
        x = v.get(field)
        return x is not None and pattern.fullmatch(to_string(x)) is not None

    return test


PREDICATES: dict[str, Callable[[Options], Predicate]] = {
    "topic_name_matches": topic_name_matches,
    "has_header_key": has_header_key,
    "record_is_tombstone": record_is_tombstone,
    "field_value_matches": field_value_matches,
}
