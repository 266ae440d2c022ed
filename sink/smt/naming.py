"""Naming transforms like the Debezium JDBC sink's `collection.naming.*` / `column.naming.*`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from ..errors import MappingError
from ..model import Shape
from .base import (
    MAX_COMPILED,
    Compiled,
    Options,
    nested_shapes,
    same_kind,
    struct_columns,
)

# ------------------------------------------------------------------------------ naming


def snake_case(name: str) -> str:
    """`firstName` -> `first_name`, `HTTPServer` -> `http_server`, `Order Lines` -> `order_lines`
    (leading underscores kept: `__op` stays)."""
    lead = len(name) - len(name.lstrip("_"))
    body = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name[lead:])
    body = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", body)
    return name[:lead] + re.sub(r"[\s\-.]+", "_", body).lower()


CASES: dict[str, Callable[[str], str]] = {"snake_case": snake_case, "lower": str.lower, "upper": str.upper}


def _namer(o: Options) -> Callable[[str], str]:
    case = (o.get("case") or "").lower() or None
    if case is not None and case not in CASES:
        raise o.error("case", f"one of {', '.join(CASES)} (got {case!r})")
    prefix, suffix = o.get("prefix", "") or "", o.get("suffix", "") or ""
    if case is None and not prefix and not suffix:
        raise o.error("case", "give at least one of CASE, PREFIX, SUFFIX")
    o.check_unknown(("case", "prefix", "suffix"))
    convert = CASES[case] if case else None

    def name(text: str) -> str:
        return prefix + (convert(text) if convert else text) + suffix

    return name


class TableNameCase:
    """Table names like the Debezium JDBC sink's `collection.naming.style` / `.prefix` / `.suffix`:
    `case` snake_case, lower or upper, then `prefix` and `suffix`, applied to every table name the
    sink derives (SINK_TABLE_NAME_FORMAT's result, after routers), once per name."""

    def __init__(self, o: Options) -> None:
        self.table_name = _namer(o)

    def compile(self, key: Shape, value: Shape) -> Compiled:
        return key, value, None


class ColumnNameCase:
    """Column names like the Debezium JDBC sink's `column.naming.style` / `.prefix` / `.suffix`:
    the top-level fields of the value and of a struct key (so record_key primary keys match)."""

    def __init__(self, o: Options) -> None:
        self.name = _namer(o)
        self._names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        new = self._names.get(name)
        if new is None:
            new = self.name(name)
            if len(self._names) < MAX_COMPILED:
                self._names[name] = new
        return new

    def _shape(self, shape: Shape) -> Shape:
        columns = struct_columns(shape)
        if columns is None:
            return shape
        names = {c.name: self._rename(c.name) for c in columns}
        if len(set(names.values())) != len(names):
            raise MappingError("column_name_case: two fields get one name")
        return same_kind(
            columns,
            tuple(dataclasses.replace(c, name=names[c.name]) for c in columns),
            {names[k]: s for k, s in nested_shapes(shape).items() if k in names},
        )

    def compile(self, key: Shape, value: Shape) -> Compiled:
        rename = self._rename

        def renamed(x: Any) -> Any:
            return {rename(n): y for n, y in x.items()} if x.__class__ is dict else x

        return self._shape(key), self._shape(value), lambda raw, topic, k, v: (topic, renamed(k), renamed(v))
