"""Transforms that choose the topic (so the table) or drop the record: RegexRouter,
TimestampRouter, FieldRouter, Filter."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..errors import MappingError
from ..model import RawRecord, Shape
from .base import (
    EPOCH,
    MAX_COMPILED,
    Compiled,
    Options,
    need_struct,
    to_string,
)
from .dates import date_pattern

# ------------------------------------------------------------------------------ routers


def java_replacement(text: str, groups: int | None = None) -> str:
    """A java.util.regex replacement (`$1`, `${name}`, `\\$`) as a Python `Match.expand` template.
    With the pattern's group count, `$12` is group 12 only if there is one (else group 1, then "2"),
    as Java's appendReplacement reads it."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append("\\\\" if text[i + 1] == "\\" else text[i + 1])
            i += 2
        elif c == "$" and text[i + 1 : i + 2] == "{":
            end = text.index("}", i)
            out.append(f"\\g<{text[i + 2 : end]}>")
            i = end + 1
        elif c == "$" and text[i + 1 : i + 2].isdigit():
            j = i + 2  # the first digit always belongs to the reference
            while j < len(text) and text[j].isdigit() and (groups is None or int(text[i + 1 : j + 1]) <= groups):
                j += 1
            out.append(f"\\g<{text[i + 1 : j]}>")
            i = j
        else:
            out.append("\\\\" if c == "\\" else c)
            i += 1
    return "".join(out)


class RegexRouter:
    """org.apache.kafka.connect.transforms.RegexRouter: a topic matching `regex` (whole) becomes
    `replacement` ($1, ${name}), so its table is SINK_TABLE_NAME_FORMAT of the new topic."""

    routes = True

    def __init__(self, o: Options) -> None:
        self.pattern = o.regex("regex")
        try:
            self.replacement = java_replacement(o.get("replacement", "") or "", self.pattern.groups)
        except ValueError:
            raise o.error("replacement", "a ${name} reference without its closing }") from None
        for group in re.findall(r"\\g<([^>]*)>", self.replacement):
            if not (int(group) <= self.pattern.groups if group.isdigit() else group in self.pattern.groupindex):
                raise o.error("replacement", f"refers to group {group!r}, which REGEX does not have")
        o.check_unknown(("regex", "replacement"))
        self._routes: dict[str, str] = {}

    def route(self, topic: str) -> str:
        routed = self._routes.get(topic)
        if routed is None:
            match = self.pattern.fullmatch(topic)
            routed = match.expand(self.replacement) if match else topic
            if len(self._routes) < MAX_COMPILED:
                self._routes[topic] = routed
        return routed

    def compile(self, key: Shape, value: Shape) -> Compiled:
        route = self.route
        return key, value, lambda raw, topic, k, v: (route(topic), k, v)


class TimestampRouter:
    """org.apache.kafka.connect.transforms.TimestampRouter: the topic (and so the table) from
    `topic_format` with ${topic} and ${timestamp}, the record's timestamp in `timestamp_format` (UTC)."""

    routes = True

    def __init__(self, o: Options) -> None:
        self.topic_format = o.get("topic_format", "${topic}-${timestamp}") or ""
        self.format = date_pattern(o, "timestamp_format", "yyyyMMdd")
        o.check_unknown(("topic_format", "timestamp_format"))

    def compile(self, key: Shape, value: Shape) -> Compiled:
        topic_format, format_ = self.topic_format, self.format
        assert format_ is not None

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if raw.timestamp is None:
                raise MappingError("timestamp_router: the record has no timestamp")
            when = EPOCH + dt.timedelta(milliseconds=raw.timestamp)
            return topic_format.replace("${topic}", topic).replace("${timestamp}", format_(when)), k, v

        return key, value, step


# ------------------------------------------------------------------------------ routing by a field


class FieldRouter:
    """The topic (and so the table) from a value field: `topic_format` (default `${field}`) with
    ${topic} and ${field}, the field's value as text; a record without the field is an error, a
    tombstone keeps its topic. Connect has no such SMT (ExtractTopic$Value of Confluent's does this)."""

    routes = True

    def __init__(self, o: Options) -> None:
        self.field = o.required("field", "the value field whose value names the table")
        self.topic_format = o.get("topic_format", "${field}") or "${field}"
        o.check_unknown(("field", "topic_format"))
        self._routes: dict[tuple[str, Any], str] = {}

    def compile(self, key: Shape, value: Shape) -> Compiled:
        field, topic_format, routes = self.field, self.topic_format, self._routes

        def step(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            if v is None:
                return topic, k, v
            x = need_struct(v, "field_router").get(field)
            if x is None or isinstance(x, dict | list):
                raise MappingError(f"field_router: field {field!r} is missing, null or not a primitive")
            routed = routes.get((topic, x))
            if routed is None:
                routed = topic_format.replace("${topic}", topic).replace("${field}", to_string(x))
                if len(routes) < MAX_COMPILED:
                    routes[(topic, x)] = routed
            return routed, k, v

        return key, value, step


# ------------------------------------------------------------------------------ Filter


class Filter:
    """org.apache.kafka.connect.transforms.Filter: drops the records its predicate matches (all,
    without a predicate); a dropped record is reported as `skip`."""

    routes = True

    def __init__(self, o: Options) -> None:
        o.check_unknown(())

    def compile(self, key: Shape, value: Shape) -> Compiled:
        return key, value, lambda raw, topic, k, v: None
