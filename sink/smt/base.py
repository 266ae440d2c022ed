"""What every transform is built from: its options (read once, errors naming the variable), the
shapes of the step it compiles, and the helpers that read and rebuild struct shapes and values."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ConfigError, MappingError
from ..formats import Struct
from ..model import Column, RawRecord, Shape

# (topic, key, value), or with the headers as a fourth item when the chain carries headers; None: filtered out
Step = Callable[[RawRecord, str, Any, Any], "tuple[Any, ...] | None"]
Predicate = Callable[[RawRecord, str, Any, Any], bool]
Compiled = tuple[Shape, Shape, Step | None]  # new key shape, new value shape, per-record step
MAX_COMPILED = 10_000
UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


class Options:
    """One transform's options, read with the variable each comes from for error lines."""

    def __init__(self, prefix: str, values: Mapping[str, str]) -> None:
        self.prefix = prefix  # SINK_TRANSFORMS__<NAME>
        self.values = {k.lower().replace(".", "_"): v for k, v in values.items()}
        self.used: set[str] = {"type"}

    def var(self, option: str) -> str:
        return f"{self.prefix}__{option.upper()}"

    def error(self, option: str, message: str) -> ConfigError:
        return ConfigError(f"{self.var(option)}: {message}")

    def get(self, option: str, default: str | None = None) -> str | None:
        self.used.add(option)
        value = self.values.get(option)
        return default if value is None or not value.strip() else value.strip()

    def required(self, option: str, what: str) -> str:
        value = self.get(option)
        if value is None:
            raise self.error(option, f"required ({what})")
        return value

    def names(self, option: str, required: bool = False) -> tuple[str, ...]:
        value = self.required(option, "a comma list of field names") if required else self.get(option, "")
        return tuple(p.strip() for p in (value or "").split(",") if p.strip())

    def pairs(self, option: str) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for part in self.names(option):
            old, sep, new = part.partition(":")
            if not sep or not old.strip() or not new.strip():
                raise self.error(option, f"{part!r} is not old:new (e.g. a:b,c:d)")
            pairs[old.strip()] = new.strip()
        return pairs

    def boolean(self, option: str) -> bool:
        value = (self.get(option, "false") or "false").lower()
        if value not in ("true", "false"):
            raise self.error(option, f"true or false (got {value!r})")
        return value == "true"

    def regex(self, option: str) -> re.Pattern[str]:
        text = self.required(option, "a regular expression")
        try:
            return re.compile(java_named_groups(text))
        except re.error as exc:
            raise self.error(option, f"not a valid regular expression ({exc})") from None

    def check_unknown(self, allowed: tuple[str, ...]) -> None:
        for option in sorted(set(self.values) - set(allowed) - {"type", "predicate", "negate"}):
            known = ", ".join(o.upper() for o in allowed) or "none"
            raise self.error(option, f"not an option of this transform (options: {known})")


# ------------------------------------------------------------------------------ helpers


_JAVA_NAMED_GROUP = re.compile(r"(?<!\\)((?:\\\\)*)\(\?<([A-Za-z][A-Za-z0-9]*)>")


def java_named_groups(pattern: str) -> str:
    """java.util.regex's named group `(?<name>...)` as Python's `(?P<name>...)` (Connect users write
    the Java form; lookbehinds `(?<=`, `(?<!` and an escaped `\\(` are left alone)."""
    return _JAVA_NAMED_GROUP.sub(r"\1(?P<\2>", pattern)


def struct_columns(shape: Shape) -> tuple[Column, ...] | None:
    return shape if isinstance(shape, tuple) else None


def same_kind(shape: tuple[Column, ...], columns: tuple[Column, ...], nested: dict[str, Shape]) -> Shape:
    """New columns for a struct, keeping its name; a Struct only where nested shapes remain."""
    name = shape.name if isinstance(shape, Struct) else None
    if nested or name:
        return Struct(columns, name, nested)
    return columns


def unique_columns(columns: tuple[Column, ...], what: str) -> tuple[Column, ...]:
    """The new columns, refused when two share a name: Connect's SchemaBuilder throws "Cannot create
    field because of field name duplication", so the record fails rather than losing a field's value."""
    seen: set[str] = set()
    for c in columns:
        if c.name in seen:
            raise MappingError(f"{what}: two fields would be named {c.name!r}")
        seen.add(c.name)
    return columns


def nested_shapes(shape: Shape) -> dict[str, Shape]:
    return dict(shape.nested) if isinstance(shape, Struct) else {}


def need_struct(value: Any, what: str) -> dict[str, Any]:
    if value.__class__ is not dict:
        raise MappingError(f"{what} needs a struct, not a {type(value).__name__}")
    return value


def value_step(transform: Callable[[dict[str, Any]], Any], what: str) -> Step:
    """A step that changes struct values (tombstones pass unchanged)."""

    def step(raw: RawRecord, topic: str, key: Any, value: Any) -> tuple[str, Any, Any]:
        if value is None:
            return topic, key, None
        return topic, key, transform(need_struct(value, what))

    return step


def to_string(value: Any) -> str:
    """A value as text, as Connect writes it: booleans in lower case, dates ISO 8601, bytes base64."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
