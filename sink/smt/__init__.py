"""Kafka Connect's single message transforms (SMTs) and predicates, in a chain like `transforms=a,b`.

Pure: no I/O. A transform is configured once (`build_chain`, from `SINK_TRANSFORMS` and its
`SINK_TRANSFORMS__<NAME>__<OPTION>` blocks; any problem is a ConfigError naming the variable) and
*compiled* once per schema: `compile(key shape, value shape)` works out the new shapes (renamed,
filtered, cast, flattened columns) and returns the per-record step, which only moves values, with
every name and converter looked up in advance. Schemaless records compile once too; their steps
work from the values. A step takes `(raw, topic, key, value)` and returns the new `(topic, key,
value)`, or None to drop the record (Filter). Anything a step raises is the record's MappingError
at stage TRANSFORMATION, naming the transform.

Connect's names: ReplaceField, RegexRouter, InsertField, Cast, TimestampConverter, Flatten,
ExtractField, HoistField, ValueToKey, MaskField, TimestampRouter, Filter, HeaderFrom, InsertHeader,
DropHeaders; predicates TopicNameMatches, HasHeaderKey, RecordIsTombstone, with `negate`. Each
transform works on the value (Connect's `$Value`); where Connect has a `$Key` variant, `<type>_key`
does the same work on the key (KeySide). ValueToKey writes the key.

Layout: `base` (options, step types, shape helpers), `fields` (ReplaceField, InsertField, Flatten,
ExtractField, HoistField, ValueToKey, MaskField), `casting` (Cast, TimestampConverter), `dates`
(SimpleDateFormat patterns), `routing` (RegexRouter, TimestampRouter, FieldRouter, Filter),
`headers` (HeaderFrom, InsertHeader, DropHeaders), `naming` (table and column name case),
`predicates`, `chain` (the types by name, `$Key` variants, `build_chain`, `Chain`).
"""

from __future__ import annotations

from .base import Options, Predicate, Step
from .chain import KEY_VARIANTS, TRANSFORMS, Chain, KeySide, build_chain
from .dates import java_date_format
from .headers import header_bytes
from .naming import snake_case
from .predicates import PREDICATES
from .routing import java_replacement

__all__ = [
    "KEY_VARIANTS",
    "PREDICATES",
    "TRANSFORMS",
    "Chain",
    "KeySide",
    "Options",
    "Predicate",
    "Step",
    "build_chain",
    "header_bytes",
    "java_date_format",
    "java_replacement",
    "snake_case",
]
