"""The chain: transform types by name (with the `$Key` variants), built from the settings once
and compiled per key and value schema."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError, MappingError, SinkError
from ..model import ColumnType, Decoded, Payload, RawRecord, Shape
from .base import (
    MAX_COMPILED,
    Compiled,
    Options,
    Predicate,
    Step,
)
from .casting import Cast, TimestampConverter
from .fields import ExtractField, Flatten, HoistField, InsertField, MaskField, ReplaceField, ValueToKey
from .headers import DropHeaders, HeaderFrom, InsertHeader
from .naming import ColumnNameCase, TableNameCase
from .predicates import PREDICATES
from .routing import FieldRouter, Filter, RegexRouter, TimestampRouter

# ------------------------------------------------------------------------------ key-side variants


class KeySide:
    """Connect's `$Key` variant of a value transform: the same work on the record key (the inner
    transform sees the key as its value; its messages say "key")."""

    def __init__(self, inner: Any, type_: str) -> None:
        self.inner, self.type = inner, type_
        inner.side = "key"
        self.headers = getattr(inner, "headers", False)  # HeaderFrom$Key: the step returns headers too

    def compile(self, key: Shape, value: Shape) -> Compiled:
        _, new_key, step = self.inner.compile(value, key)  # the value passes through unchanged
        if step is None:
            return new_key, value, None
        if self.headers:

            def swapped_with_headers(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any, Any]:
                topic, v2, k2, headers = step(raw, topic, v, k)
                return topic, k2, v2, headers

            return new_key, value, swapped_with_headers

        def swapped(raw: RawRecord, topic: str, k: Any, v: Any) -> tuple[str, Any, Any]:
            topic, v2, k2 = step(raw, topic, v, k)
            return topic, k2, v2

        return new_key, value, swapped


def _key_side(cls: Callable[[Options], Any], type_: str) -> Callable[[Options], Any]:
    return lambda o: KeySide(cls(o), type_)


# ------------------------------------------------------------------------------ the types by name

TRANSFORMS: dict[str, Callable[[Options], Any]] = {
    "replace_field": ReplaceField,
    "regex_router": RegexRouter,
    "insert_field": InsertField,
    "cast": Cast,
    "timestamp_converter": TimestampConverter,
    "flatten": Flatten,
    "extract_field": ExtractField,
    "hoist_field": HoistField,
    "value_to_key": ValueToKey,
    "mask_field": MaskField,
    "timestamp_router": TimestampRouter,
    "filter": Filter,
    "header_from": HeaderFrom,
    "insert_header": InsertHeader,
    "drop_headers": DropHeaders,
    "table_name_case": TableNameCase,
    "column_name_case": ColumnNameCase,
    "field_router": FieldRouter,
}
# Connect's $Key variants: the value transform's work on the key.
KEY_VARIANTS = (
    "replace_field",
    "cast",
    "mask_field",
    "flatten",
    "extract_field",
    "hoist_field",
    "insert_field",
    "timestamp_converter",
    "header_from",
)
for _type in KEY_VARIANTS:
    TRANSFORMS[_type + "_key"] = _key_side(TRANSFORMS[_type], _type + "_key")


# ------------------------------------------------------------------------------ the chain


class _Link:
    __slots__ = ("name", "negate", "predicate", "transform", "type")

    def __init__(self, name: str, type_: str, transform: Any, predicate: Predicate | None, negate: bool) -> None:
        self.name, self.type, self.transform, self.predicate, self.negate = name, type_, transform, predicate, negate

    @property
    def headers(self) -> bool:
        """Whether the step returns the headers too: (topic, key, value, headers)."""
        return getattr(self.transform, "headers", False)

    def compile(self, key: Shape, value: Shape) -> Compiled:
        new_key, new_value, step = self.transform.compile(key, value)
        predicate, negate = self.predicate, self.negate
        if step is None or predicate is None:
            return new_key, new_value, step
        headers = self.headers

        def conditional(raw: RawRecord, topic: str, k: Any, v: Any) -> Any:
            if predicate(raw, topic, k, v) != negate:
                return step(raw, topic, k, v)
            return (topic, k, v, raw.headers) if headers else (topic, k, v)

        return new_key, new_value, conditional


class Chain:
    """The configured transforms, applied in order; compiled per key and value schema."""

    def __init__(self, links: list[_Link]) -> None:
        self.links = links
        self._compiled: dict[Any, tuple[Payload, Payload, list[tuple[_Link, Step, bool]]]] = {}
        namers = [link.transform.table_name for link in links if hasattr(link.transform, "table_name")]
        # Naming transforms on table names (TableNameCase): applied by the mapping to each derived
        # table name, once per name.
        self.table_namer: Callable[[str], str] | None = None
        if namers:

            def table_namer(name: str) -> str:
                for namer in namers:
                    name = namer(name)
                return name

            self.table_namer = table_namer

    def __bool__(self) -> bool:
        return bool(self.links)

    def __repr__(self) -> str:
        return "Chain(" + ", ".join(f"{link.name}={link.type}" for link in self.links) + ")"

    def apply(self, record: Decoded, topic: str) -> tuple[str, Decoded] | None:
        """(topic, record) after the chain, or None when a Filter dropped the record. Header
        transforms change the record's headers as it goes (the returned record's `raw`)."""
        key, value = record.key, record.value
        cache_key = (_shape_key(key), _shape_key(value))
        compiled = self._compiled.get(cache_key)
        if compiled is None:
            compiled = self._compile(cache_key, _shape(key), _shape(value))
        key_out, value_out, steps = compiled
        raw = record.raw
        k, v = key.data, value.data
        for link, step, headers in steps:
            try:
                out = step(raw, topic, k, v)
            except MappingError as exc:
                raise MappingError(f"transform {link.name!r} ({link.type}) failed: {exc.safe_reason}") from exc
            except SinkError:
                raise
            except Exception as exc:
                raise MappingError(
                    f"transform {link.name!r} ({link.type}) failed", detail=f"{type(exc).__name__}: {exc}"
                ) from exc
            if out is None:
                return None
            if headers:
                topic, k, v, new_headers = out
                if new_headers is not raw.headers:
                    raw = raw._replace(headers=new_headers)
            else:
                topic, k, v = out
        return topic, Decoded(raw, Payload(k, *key_out[1:]), Payload(v, *value_out[1:]))

    def _compile(self, cache_key: Any, key: Shape, value: Shape) -> tuple[Payload, Payload, list[Any]]:
        steps: list[Any] = []
        for link in self.links:
            try:
                key, value, step = link.compile(key, value)
            except SinkError:
                raise
            except Exception as exc:
                raise MappingError(
                    f"transform {link.name!r} ({link.type}) cannot apply to this schema",
                    detail=f"{type(exc).__name__}: {exc}",
                ) from exc
            if step is not None:
                steps.append((link, step, link.headers))
        compiled = (
            Payload(None, key, None if key is None else ("smt", cache_key, "key")),
            Payload(None, value, None if value is None else ("smt", cache_key, "value")),
            steps,
        )
        if len(self._compiled) >= MAX_COMPILED:
            self._compiled.clear()
        self._compiled[cache_key] = compiled
        return compiled


def _shape(payload: Payload) -> Shape:
    """What the chain may rely on: a schema's shape, a primitive's type; None for schemaless data."""
    if payload.schema_id is not None or payload.shape.__class__ is ColumnType:
        return payload.shape
    return None


def _shape_key(payload: Payload) -> Any:
    if payload.schema_id is not None:
        return payload.schema_id
    return payload.shape if payload.shape.__class__ is ColumnType else None


def build_chain(
    names: tuple[str, ...], options: Mapping[str, Mapping[str, str]], predicates: Mapping[str, Mapping[str, str]]
) -> Chain:
    """The chain `SINK_TRANSFORMS` names, from its `SINK_TRANSFORMS__<NAME>__<OPTION>` blocks and
    the `SINK_PREDICATES__<NAME>__<OPTION>` blocks they refer to. ConfigError naming the variable."""
    names = tuple(n.lower() for n in names)
    for name in options:
        if name not in names:
            raise ConfigError(
                f"SINK_TRANSFORMS__{name.upper()}__TYPE: transform {name!r} is not listed in SINK_TRANSFORMS"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"SINK_TRANSFORMS: a name is listed twice ({','.join(names)})")
    built_predicates = {}
    for name, values in predicates.items():
        o = Options(f"SINK_PREDICATES__{name.upper()}", values)
        type_ = (o.get("type") or "").lower()
        if type_ not in PREDICATES:
            raise o.error("type", _unknown(type_, PREDICATES))
        built_predicates[name.lower()] = PREDICATES[type_](o)
    links = []
    for name in names:
        if not re.fullmatch(r"[a-z0-9_]+", name) or "__" in name:
            raise ConfigError(f"SINK_TRANSFORMS: {name!r} is not a name of letters, digits and single underscores")
        o = Options(f"SINK_TRANSFORMS__{name.upper()}", options.get(name, {}))
        type_ = (o.get("type") or "").lower()
        if type_ not in TRANSFORMS:
            raise o.error("type", _unknown(type_, TRANSFORMS))
        transform = TRANSFORMS[type_](o)
        predicate_name = (o.get("predicate") or "").lower() or None
        predicate = None
        if predicate_name is not None:
            if not getattr(transform, "routes", False):
                takers = sorted((t for t, c in TRANSFORMS.items() if getattr(c, "routes", False)), key=_first_filter)
                raise o.error("predicate", f"only {', '.join(takers)} take a predicate")
            if predicate_name not in built_predicates:
                define = f"SINK_PREDICATES__{predicate_name.upper()}__TYPE"
                raise o.error("predicate", f"no predicate {predicate_name!r} (define {define})")
            predicate = built_predicates[predicate_name]
        negate = o.boolean("negate")
        if negate and predicate is None:
            raise o.error("negate", "needs a PREDICATE")
        links.append(_Link(name, type_, transform, predicate, negate))
    return Chain(links)


def _first_filter(type_: str) -> tuple[bool, str]:
    return type_ != "filter", type_


def _unknown(type_: str, known: Mapping[str, Any]) -> str:
    what = f"unknown type {type_!r}" if type_ else "required"
    return f"{what} (one of: {', '.join(known)})"
