"""Hypothesis strategies for hostile JSON and Connect JSON keys and values, and `generate`, which
collects a list of them up front (they all go through one sink run; a sink start costs seconds).

Each strategy draws a `Payload`: the bytes, plus what the checker needs to know about them — the
decoded fields a stored row must keep, and whether the bytes are invalid by construction (then
they must be dead-lettered).
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.harness import DLQ, EITHER, Rec, Scenario


@dataclass(frozen=True)
class Payload:
    key: bytes | None
    value: bytes
    kind: str  # what was drawn: "object", "scalar", "truncated", ...
    invalid: bool  # invalid by construction: must be dead-lettered
    fields: dict[str, Any] | None  # the row must keep these (None: no value check)
    has_id: bool  # a stored row carries the id field
    null: bool = False  # the value decodes to null (a tombstone)


# ------------------------------------------------------------------------------ names and values

PLAIN_NAMES = ("a", "b", "c", "n", "s", "x", "flag", "note", "when")
SPECIAL_NAMES = (
    "",
    "a\x00b",
    "\ud800",
    "\udfff",
    "NAME",
    "Name",
    "name",
    "ID",
    "Id",
    "v",
    "__connect_value",
    "select",
    "a b",
    'quo"te',
    "back`tick",
    "semi;colon",
    "ß",
    "SS",
    "é" * 32,
    "e" * 64,
    "f" * 63 + "x",
    "Ǆ",
    "ǆ",
)
any_char = st.characters(exclude_categories=())  # surrogates and NUL included
names = st.one_of(
    st.sampled_from(PLAIN_NAMES),
    st.sampled_from(PLAIN_NAMES),
    st.sampled_from(PLAIN_NAMES),
    st.sampled_from(SPECIAL_NAMES),
    st.text(any_char, max_size=6),
    st.text(st.sampled_from("abé_Z"), min_size=58, max_size=70),
).filter(lambda n: n != "id")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(any_char, max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=10,
)


def _dumps(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate unescaped is invalid UTF-8


def _parses(data: bytes | None) -> bool | None:
    """True when Python's json takes the bytes, False when they are invalid, None when undecidable
    here (too deep for this interpreter's stack: the sink's limit may differ)."""
    if data is None:
        return True
    try:
        json.loads(data)
    except RecursionError:
        return None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, too many digits
        return False
    return True


@st.composite
def corrupt(draw: st.DrawFn, data: bytes) -> tuple[str, bytes]:
    how = draw(st.sampled_from(["truncated", "extra_bytes", "bad_byte", "prefixed"]))
    if how == "truncated":
        return how, data[: draw(st.integers(1, max(1, len(data) - 1)))]
    if how == "extra_bytes":
        return how, data + draw(st.sampled_from([b"]", b"}", b"x", b",", b"\x00", b"{}", b'"']))
    if how == "bad_byte":
        at = draw(st.integers(0, max(0, len(data) - 1)))
        return how, data[:at] + b"\xff" + data[at + 1 :]
    return how, draw(st.sampled_from([b"x", b"\xef\xbb\xbf", b"]", b"\x00"])) + data


# ------------------------------------------------------------------------------ plain JSON


@st.composite
def json_keys(draw: st.DrawFn) -> bytes | None:
    roll = draw(st.integers(0, 19))  # about one key in ten is broken
    kind = {7: "corrupt", 13: "binary"}.get(roll, "valid" if roll % 2 else "none")
    if kind == "none":
        return None
    data = _dumps(draw(json_values), draw(st.booleans()))
    if kind == "valid":
        return data
    if kind == "binary":
        return draw(st.binary(max_size=24))
    return draw(corrupt(data))[1]


@st.composite
def json_records(draw: st.DrawFn, i: int) -> Payload:
    key = draw(json_keys())
    kind = draw(st.sampled_from(["object"] * 5 + ["corrupt"] * 2 + ["scalar", "binary", "deep"]))
    ascii_only = draw(st.booleans())
    if kind == "scalar":
        value = _dumps(draw(json_values.filter(lambda v: not isinstance(v, dict))), ascii_only)
    elif kind == "binary":
        value = draw(st.binary(min_size=1, max_size=40))
    elif kind == "deep":
        depth = draw(st.integers(1200, 4000))
        nest = "[" * depth + "]" * depth if draw(st.booleans()) else '{"a":' * depth + "0" + "}" * depth
        value = f'{{"id":{i},"deep":{nest}}}'.encode()
    else:
        fields = {"id": i, **{k: v for k, v in draw(st.dictionaries(names, json_values, max_size=6)).items()}}
        fields["id"] = i
        value = _dumps(fields, ascii_only)
        if kind == "corrupt":
            kind, value = draw(corrupt(value))
    return _judge(key, value, kind, i)


def _judge(key: bytes | None, value: bytes, kind: str, i: int) -> Payload:
    key_ok, value_ok = _parses(key), _parses(value)
    invalid = key_ok is False or value_ok is False
    parsed = json.loads(value) if value_ok else None
    has_id = isinstance(parsed, dict) and type(parsed.get("id")) is int and parsed["id"] == i
    fields = parsed if has_id else None
    if value_ok is None:  # too deep to judge here: no value check, a row keeps its id
        has_id = kind == "deep"
    return Payload(key, value, kind, invalid, fields, has_id, null=bool(value_ok) and parsed is None)


# ------------------------------------------------------------------------------ Connect JSON

PRIMITIVE_TYPES = ("int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string", "bytes")
INT_RANGES = {"int8": 7, "int16": 15, "int32": 31, "int64": 63}
DECIMAL = "org.apache.kafka.connect.data.Decimal"


@st.composite
def connect_field(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    """A Connect field schema (without its name) and a payload value that matches it."""
    kind = draw(st.sampled_from([*PRIMITIVE_TYPES, "decimal", "date", "array", "map", "struct"]))
    optional = draw(st.booleans())
    if optional and draw(st.integers(0, 4)) == 0:
        value: Any = None
    else:
        value = ...
    if kind in INT_RANGES:
        bits = INT_RANGES[kind]
        schema: dict[str, Any] = {"type": kind}
        value = draw(st.integers(-(2**bits), 2**bits - 1)) if value is ... else value
    elif kind in ("float32", "float64"):
        schema = {"type": kind}
        value = draw(st.floats(allow_nan=False, allow_infinity=False, width=32)) if value is ... else value
    elif kind == "boolean":
        schema = {"type": kind}
        value = draw(st.booleans()) if value is ... else value
    elif kind == "string":
        schema = {"type": kind}
        value = draw(st.text(max_size=30)) if value is ... else value
    elif kind == "bytes":
        schema = {"type": kind}
        value = base64.b64encode(draw(st.binary(max_size=20))).decode() if value is ... else value
    elif kind == "decimal":
        scale = draw(st.integers(0, 6))
        schema = {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": {"scale": str(scale)}}
        if value is ...:
            unscaled = draw(st.integers(-(10**20), 10**20))
            length = max(1, (unscaled.bit_length() + 8) // 8)
            value = base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()
    elif kind == "date":
        schema = {"type": "int32", "name": "org.apache.kafka.connect.data.Date", "version": 1}
        value = draw(st.integers(-100_000, 2_000_000)) if value is ... else value
    elif kind == "array":
        schema = {"type": "array", "items": {"type": "int32", "optional": False}}
        value = draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4)) if value is ... else value
    elif kind == "map":
        schema = {"type": "map", "keys": {"type": "string"}, "values": {"type": "int64"}}
        value = draw(st.dictionaries(st.text(max_size=5), st.integers(0, 10), max_size=3)) if value is ... else value
    else:
        schema = {"type": "struct", "fields": [{"field": "z", "type": "string", "optional": True}]}
        value = {"z": draw(st.none() | st.text(max_size=5))} if value is ... else value
    schema["optional"] = optional
    return schema, value


MISMATCHES: tuple[tuple[str, Any], ...] = (
    ("int8", 300),
    ("int16", 70_000),
    ("int32", 2**40),
    ("int64", "12"),
    ("int64", 1.5),
    ("int32", True),
    ("boolean", 1),
    ("boolean", "true"),
    ("string", 5),
    ("string", ["x"]),
    ("bytes", "!!!"),
    ("float64", "1.0"),
)


@st.composite
def connect_records(draw: st.DrawFn, i: int) -> Payload:
    key = draw(connect_keys())
    kind = draw(st.sampled_from(["valid"] * 5 + ["truncated", "extra_bytes", "mismatch", "mutated", "schemaless"]))
    field_names = draw(st.lists(names, max_size=5, unique=True))
    fields_schema: list[dict[str, Any]] = [{"field": "id", "type": "int64", "optional": False}]
    payload: dict[str, Any] = {"id": i}
    for name in field_names:
        schema, value = draw(connect_field())
        fields_schema.append({"field": name, **schema})
        if value is not None or draw(st.booleans()):
            payload[name] = value
    schema = {"type": "struct", "name": f"fz.R{draw(st.integers(0, 3))}", "optional": False, "fields": fields_schema}
    expected: dict[str, Any] | None = {}
    for f in fields_schema:
        sent = payload.get(f["field"])
        exact = f["type"] == "string" or (f["type"] in INT_RANGES and "name" not in f)
        expected[f["field"]] = sent if exact or sent is None else True  # True: only "not NULL" is checked
    invalid, has_id = False, True
    if kind == "schemaless":
        value = _dumps({"schema": None, "payload": payload}, True)
        parsed = json.loads(value)["payload"]
        return Payload(key, value, kind, _parses(key) is False, parsed, True)
    if kind == "mismatch" and len(fields_schema) > 0:
        type_, wrong = draw(st.sampled_from(MISMATCHES))
        fields_schema.append({"field": "wrong", "type": type_, "optional": True})
        payload["wrong"] = wrong
        invalid, expected = True, None
    if kind == "mutated":  # a schema with one part replaced by junk: a row or a record error, never a stop
        target = draw(st.integers(0, len(fields_schema)))
        junk = draw(st.sampled_from([5, None, "x", [], {}, ["struct"], {"type": "struct"}, True]))
        if target == len(fields_schema):
            schema[draw(st.sampled_from(["type", "fields", "name", "optional"]))] = junk
        else:
            part = draw(st.sampled_from(["field", "type", "optional", "name", "parameters", "items"]))
            fields_schema[target][part] = junk
        expected, has_id = None, False
    value = _dumps({"schema": schema, "payload": payload}, draw(st.booleans()))
    if kind in ("truncated", "extra_bytes"):
        kind, value = draw(corrupt(value).filter(lambda kv: kv[0] in ("truncated", "extra_bytes", "bad_byte")))
        invalid = _parses(value) is not True
        expected = None
    if _parses(key) is False:
        invalid = True
    return Payload(key, value, kind, invalid, expected, has_id and not invalid)


@st.composite
def connect_keys(draw: st.DrawFn) -> bytes | None:
    roll = draw(st.integers(0, 19))
    kind = {7: "corrupt", 13: "corrupt"}.get(roll, "valid" if roll % 2 else "none")
    if kind == "none":
        return None
    data = _dumps({"schema": {"type": "int64", "optional": False}, "payload": draw(st.integers(0, 2**40))}, True)
    return data if kind == "valid" else draw(corrupt(data))[1]


# ------------------------------------------------------------------------------ collecting


SENTINEL = 987_654_321_987  # the id while drawing (generation must not depend on outside state)


@functools.lru_cache(maxsize=4)  # one draw per format and process: the databases get the same payloads
def generate(fmt: str, first_seq: int, seed_value: int) -> list[Payload]:
    """Draw the profile's number of payloads (deterministic for a seed); the n-th carries the id
    `first_seq + n` where it has an id at all."""
    drawn: list[Payload] = []
    records = json_records if fmt == "json" else connect_records

    @seed(seed_value)
    @settings(settings.get_profile("sink-fuzz"))
    @given(records(SENTINEL))
    def collect(payload: Payload) -> None:
        drawn.append(payload)

    collect()
    return [_with_id(p, first_seq + n, fmt) for n, p in enumerate(drawn)]


def _with_id(payload: Payload, i: int, fmt: str) -> Payload:
    value = payload.value.replace(str(SENTINEL).encode(), str(i).encode())
    if fmt == "json":
        return _judge(payload.key, value, payload.kind, i)
    fields = None if payload.fields is None else {**payload.fields, "id": i}
    return Payload(payload.key, value, payload.kind, payload.invalid, fields, payload.has_id)


def add_fuzz(scenario: Scenario, fmt: str, prefix: str, seed_value: int) -> int:
    """Append the Hypothesis payloads to the scenario on fuzz topics of 2 partitions each (one per 500
    payloads, 3 to 20: each new table is typed by other first records)."""
    payloads = generate(fmt, scenario.next_seq(), seed_value)
    topics = max(3, min(20, len(payloads) // 500))
    names_ = [scenario.topic(f"{prefix}_fz{n}", 2) for n in range(topics)]
    for payload in payloads:
        i = scenario.next_seq()
        assert payload.fields is None or payload.fields.get("id") == i, "payload ids follow the sequence numbers"
        scenario.add(
            Rec(
                i,
                names_[i % topics],
                payload.key,
                payload.value,
                f"fuzz {fmt} #{i} {payload.kind}",
                DLQ if payload.invalid else EITHER,
                i if payload.has_id else None,
                payload.fields,
                partition=(i // topics) % 2,
                null=payload.null,
            )
        )
    return len(payloads)
