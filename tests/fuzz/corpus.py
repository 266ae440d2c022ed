"""The fixed corpus of issue 12: every hostile record it lists, as cases.

A case is one bad record (a function of the id it carries) between good records on a topic of its
own, with what each database may do with it: DLQ (it must be a record error: dead-lettered under
tolerance `all`, a stop under `none`), ROW (it must be written) or EITHER (written without losing a
field, or a record error). Two cases need two topics (table-name collisions); they run under
tolerance `all` only (`MULTI_TOPIC_CASES`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.harness import DLQ, EITHER, ROW, Rec, Scenario

DATABASES = ("postgresql", "mariadb", "sqlite")


def expect(default: str = EITHER, **per_db: str) -> dict[str, str]:
    return {db: per_db.get(db, default) for db in DATABASES}


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------ good records


def good_json(i: int) -> bytes:
    return compact({"id": i, "v": f"good {i}"})


GOOD_SCHEMA = {
    "type": "struct",
    "name": "fz.Good",
    "optional": False,
    "fields": [
        {"field": "id", "type": "int64", "optional": False},
        {"field": "v", "type": "string", "optional": True},
    ],
}
INT64_SCHEMA = {"type": "int64", "optional": False}


def envelope(schema: Any, payload: Any) -> bytes:
    """Connect JsonConverter's compact layout: `{"schema":...,"payload":...}` (the cached fast path)."""
    return compact({"schema": schema, "payload": payload})


def good_connect(i: int) -> bytes:
    return envelope(GOOD_SCHEMA, {"id": i, "v": f"good {i}"})


def good_int64(i: int) -> bytes:
    return envelope(INT64_SCHEMA, i)


def struct(*fields: Mapping[str, Any], name: str = "fz.Bad") -> dict[str, Any]:
    return {"type": "struct", "name": name, "optional": False, "fields": [dict(f) for f in fields]}


ID_FIELD = {"field": "id", "type": "int64", "optional": False}


# ------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    name: str
    fmt: str  # "json" or "connect_json"
    bad: Callable[[int], bytes]  # the bad value, carrying id i where it has an id at all
    expect: Mapping[str, str] = field(default_factory=expect)
    bad_key: bytes | None = None
    before: int = 2  # good records before the bad one (same topic)
    after: int = 2
    good: Callable[[int], bytes] | None = None  # default: good_json / good_connect
    ident: bool = True  # a stored bad record carries its id
    check_fields: bool = True  # value check of a stored bad record (json: its parsed fields)
    topic: Callable[[str], str] | None = None  # prefix -> topic name (identifier-limit cases)
    topic_level: bool = False  # the topic itself is the problem: good records share the bad's fate
    id_column: str = "id"

    def topic_name(self, prefix: str) -> str:
        return self.topic(prefix) if self.topic else f"{prefix}_{self.name}"

    def good_value(self, i: int) -> bytes:
        if self.good is not None:
            return self.good(i)
        return good_json(i) if self.fmt == "json" else good_connect(i)


def _json_fields(value: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _fields(fmt: str, value: bytes) -> dict[str, Any] | None:
    parsed = _json_fields(value)
    if fmt == "connect_json":
        payload = parsed.get("payload") if parsed else None
        return payload if isinstance(payload, dict) else None
    return parsed


def add_case(scenario: Scenario, case: Case, prefix: str, db: str) -> tuple[list[Rec], Rec]:
    """Append the case's records (good..., bad, good...) to the scenario; returns them and the bad one."""
    topic = scenario.topic(case.topic_name(prefix), 1, case.id_column)
    recs: list[Rec] = []
    bad_expect = case.expect[db]
    good_expect = bad_expect if case.topic_level else ROW

    def good(label: str) -> Rec:
        i = scenario.next_seq()
        value = case.good_value(i)
        fields = _json_fields(value) if case.fmt == "json" else {"id": i, "v": f"good {i}"}
        if case.id_column != "id":
            fields = None
        key = str(i).encode() if case.fmt == "json" else None
        return scenario.add(Rec(i, topic, key, value, f"{case.name} ({label} {i})", good_expect, i, fields))

    recs += [good("good before") for _ in range(case.before)]
    i = scenario.next_seq()
    value = case.bad(i)
    fields = _fields(case.fmt, value) if case.check_fields and case.id_column == "id" else None
    bad = scenario.add(
        Rec(i, topic, case.bad_key, value, f"{case.name} (bad {i})", bad_expect, i if case.ident else None, fields)
    )
    recs.append(bad)
    recs += [good("good after") for _ in range(case.after)]
    return recs, bad


L70 = "f" * 70


def _deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _raw(template: str) -> Callable[[int], bytes]:
    """A bad value written as JSON text (NaN, escapes, nesting); `{i}` is the id."""
    return lambda i: template.replace("{i}", str(i)).encode("utf-8")


def _wide(i: int) -> bytes:
    fields: dict[str, Any] = {"id": i}
    fields.update({f"c{n:04d}": n for n in range(2000)})
    return compact(fields)


def _decimal_bytes(unscaled: int) -> str:
    length = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


JSON_CASES: list[Case] = [
    # identifiers at and past the limits (PostgreSQL 63 bytes, MariaDB 64 characters)
    Case(
        "field_70_bytes",
        "json",
        lambda i: compact({"id": i, L70: 42, "v": "kept"}),
        expect(postgresql=DLQ, mariadb=DLQ),
    ),
    Case("field_64_chars", "json", lambda i: compact({"id": i, "g" * 64: 42}), expect(postgresql=DLQ)),
    Case("field_65_chars", "json", lambda i: compact({"id": i, "h" * 65: 42}), expect(postgresql=DLQ, mariadb=DLQ)),
    Case("field_64_bytes_32_chars", "json", lambda i: compact({"id": i, "é" * 32: 42}), expect(postgresql=DLQ)),
    Case(
        "two_fields_one_63_byte_prefix",
        "json",
        lambda i: compact({"id": i, "p" * 63 + "_a": 1, "p" * 63 + "_b": 2}),
        expect(postgresql=DLQ, mariadb=DLQ),
    ),
    Case(
        "long_field_in_a_later_batch",
        "json",
        lambda i: compact({"id": i, L70: 7}),
        expect(postgresql=DLQ, mariadb=DLQ),
        before=3,
    ),
    Case(
        "topic_70_chars",
        "json",
        good_json,
        expect(postgresql=DLQ, mariadb=DLQ),
        topic=lambda p: (p + "_topic_" + "t" * 70)[:70],
        topic_level=True,
        before=0,
    ),
    Case(
        "Name_and_name_fields",
        "json",
        lambda i: compact({"id": i, "Name": "A", "name": "b"}),
        expect(mariadb=DLQ, sqlite=DLQ),
    ),
    Case("empty_field_name", "json", lambda i: compact({"id": i, "": 1})),
    Case("nul_in_field_name", "json", _raw('{"id":{i},"a\\u0000b":1}'), expect(postgresql=DLQ, mariadb=DLQ)),
    Case("lone_surrogate_field_name", "json", _raw('{"id":{i},"\\udc00":1}')),
    # values
    Case("lone_surrogate_string", "json", _raw('{"id":{i},"s":"x\\ud800y"}')),
    Case("nul_in_string", "json", _raw('{"id":{i},"s":"a\\u0000b"}'), expect(postgresql=DLQ)),
    Case("nan", "json", _raw('{"id":{i},"f":NaN}')),
    Case("infinities", "json", _raw('{"id":{i},"f":Infinity,"g":-Infinity}')),
    Case("huge_float_1e400", "json", _raw('{"id":{i},"f":1e400}')),
    Case("n_2_pow_63", "json", lambda i: compact({"id": i, "n": 2**63}), good=lambda i: compact({"id": i, "n": i})),
    Case(
        "n_minus_2_pow_63_minus_1",
        "json",
        lambda i: compact({"id": i, "n": -(2**63) - 1}),
        good=lambda i: compact({"id": i, "n": i}),
    ),
    Case("int_400_digits", "json", _raw('{"id":{i},"n":' + "9" * 400 + "}"), good=lambda i: compact({"id": i, "n": i})),
    Case("int_5000_digits", "json", _raw('{"id":{i},"n":' + "9" * 5000 + "}")),
    Case(
        "string_into_integer_column",
        "json",
        lambda i: compact({"id": i, "n": "not a number"}),
        good=lambda i: compact({"id": i, "n": i}),
    ),
    Case(
        "nested_object_into_scalar_column",
        "json",
        lambda i: compact({"id": i, "x": {"a": [1, {"b": None}]}}),
        good=lambda i: compact({"id": i, "x": i}),
    ),
    Case(
        "scalar_into_json_column",
        "json",
        lambda i: compact({"id": i, "x": 5}),
        good=lambda i: compact({"id": i, "x": {"a": i}}),
    ),
    Case("json_nested_5000_deep", "json", _raw('{"id":{i},"d":' + _deep_list(5000) + "}")),
    Case("json_nested_10000_deep", "json", _raw('{"id":{i},"d":' + _deep_object(10000) + "}")),
    Case("record_with_2000_fields", "json", _wide, expect(postgresql=DLQ, mariadb=DLQ)),
    Case("first_record_zero_fields", "json", lambda i: b"{}", before=0, ident=False),
    Case("top_level_array", "json", lambda i: compact([i, "x"]), ident=False),
    Case("invalid_json_truncated", "json", lambda i: compact({"id": i, "v": "truncated"})[:-4], expect(DLQ)),
    Case("invalid_utf8", "json", lambda i: b'{"id":%d,"v":"\xff\xfe"}' % i, expect(DLQ)),
    Case("key_invalid_json", "json", good_json, expect(DLQ), bad_key=b'{"k":'),
    Case("key_lone_surrogate", "json", good_json, expect(), bad_key=b'"\\ud800"'),
    Case("key_nested_10000_deep", "json", good_json, expect(), bad_key=_deep_list(10000).encode()),
]

CONNECT_CASES: list[Case] = [
    # corrupted envelopes after valid ones of the same schema (the schema-bytes fast path)
    Case(
        "cj_truncated_payload",
        "connect_json",
        lambda i: good_int64(i)[:-1] + b"9",
        expect(DLQ),
        good=good_int64,
        id_column="__connect_value",
        check_fields=False,
    ),
    Case(
        "cj_payload_extra_bracket",
        "connect_json",
        lambda i: good_int64(i)[:-1] + b"]",
        expect(DLQ),
        good=good_int64,
        id_column="__connect_value",
        check_fields=False,
    ),
    Case("cj_extra_bytes_after", "connect_json", lambda i: good_connect(i) + b"}", expect(DLQ)),
    Case("cj_garbage_after", "connect_json", lambda i: good_connect(i) + b"xyz", expect(DLQ)),
    Case("cj_struct_truncated", "connect_json", lambda i: good_connect(i)[:-1], expect(DLQ)),
    Case("cj_struct_cut_in_the_payload", "connect_json", lambda i: good_connect(i)[:-8] + b"}}", expect(DLQ)),
    # payload not matching its schema
    Case(
        "cj_string_field_gets_number", "connect_json", lambda i: envelope(GOOD_SCHEMA, {"id": i, "v": 5}), expect(DLQ)
    ),
    Case(
        "cj_int64_field_gets_string",
        "connect_json",
        lambda i: envelope(GOOD_SCHEMA, {"id": "x", "v": str(i)}),
        expect(DLQ),
        ident=False,
    ),
    Case(
        "cj_int8_out_of_range",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": "b", "type": "int8", "optional": False}), {"id": i, "b": 300}),
        expect(DLQ),
    ),
    Case(
        "cj_int64_gets_float",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": "n", "type": "int64", "optional": True}), {"id": i, "n": 1.5}),
        expect(DLQ),
    ),
    Case(
        "cj_required_field_missing",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": "r", "type": "string", "optional": False}), {"id": i}),
        expect(DLQ),
    ),
    Case(
        "cj_struct_payload_is_a_list",
        "connect_json",
        lambda i: envelope(GOOD_SCHEMA, [i, "x"]),
        expect(DLQ),
        ident=False,
    ),
    Case(
        "cj_boolean_gets_string",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": "ok", "type": "boolean"}), {"id": i, "ok": "yes"}),
        expect(DLQ),
    ),
    Case(
        "cj_bytes_not_base64",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": "b", "type": "bytes", "optional": True}), {"id": i, "b": "!!"}),
        expect(DLQ),
    ),
    Case("cj_not_an_envelope", "connect_json", lambda i: compact({"id": i, "v": "no schema"}), expect(DLQ)),
    Case("cj_missing_payload", "connect_json", lambda i: compact({"schema": GOOD_SCHEMA}), expect(DLQ), ident=False),
    # malformed schemas
    Case(
        "cj_field_without_field",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"type": "int64"}), {"id": i}),
        expect(DLQ),
    ),
    Case(
        "cj_fields_is_5",
        "connect_json",
        lambda i: envelope({"type": "struct", "fields": 5, "optional": False}, {"id": i}),
        expect(DLQ),
    ),
    Case(
        "cj_type_is_a_list",
        "connect_json",
        lambda i: envelope({"type": ["struct"], "fields": [ID_FIELD]}, {"id": i}),
        expect(DLQ),
    ),
    Case(
        "cj_name_is_5",
        "connect_json",
        lambda i: envelope({"type": "struct", "name": 5, "fields": [ID_FIELD]}, {"id": i}),
        expect(DLQ),
    ),
    Case(
        "cj_decimal_scale_x",
        "connect_json",
        lambda i: envelope(
            struct(
                ID_FIELD,
                {
                    "field": "d",
                    "type": "bytes",
                    "name": "org.apache.kafka.connect.data.Decimal",
                    "parameters": {"scale": "x"},
                },
            ),
            {"id": i, "d": _decimal_bytes(12345)},
        ),
        expect(DLQ),
    ),
    Case(
        "cj_unknown_type",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": "q", "type": "int128"}), {"id": i, "q": 1}),
        expect(DLQ),
    ),
    Case("cj_schema_is_a_string", "connect_json", lambda i: envelope("int64", i), expect(DLQ), ident=False),
    # hostile but well-formed
    Case(
        "cj_field_70_bytes",
        "connect_json",
        lambda i: envelope(struct(ID_FIELD, {"field": L70, "type": "int32"}), {"id": i, L70: 42}),
        expect(postgresql=DLQ, mariadb=DLQ),
        check_fields=False,
    ),
    Case(
        "cj_Name_and_name",
        "connect_json",
        lambda i: envelope(
            struct(ID_FIELD, {"field": "Name", "type": "string"}, {"field": "name", "type": "string"}),
            {"id": i, "Name": "A", "name": "b"},
        ),
        expect(mariadb=DLQ, sqlite=DLQ),
        check_fields=False,
    ),
    Case(
        "cj_lone_surrogate_string",
        "connect_json",
        lambda i: good_connect(i).replace(f"good {i}".encode(), b"x\\ud800y"),
        check_fields=False,
    ),
    Case(
        "cj_nested_10000_deep",
        "connect_json",
        lambda i: ('{"schema":null,"payload":' + _deep_list(10000) + "}").encode(),
        ident=False,
    ),
    Case(
        "cj_zero_field_struct_first",
        "connect_json",
        lambda i: envelope({"type": "struct", "fields": [], "optional": False}, {}),
        before=0,
        ident=False,
    ),
    Case("cj_key_corrupted", "connect_json", good_connect, expect(DLQ), bad_key=envelope(INT64_SCHEMA, 1)[:-1] + b"]"),
    Case(
        "cj_new_required_field",  # issue 12 section 6: nothing after it may be written under tolerance none
        "connect_json",
        lambda i: envelope(
            struct(*GOOD_SCHEMA["fields"], {"field": "extra", "type": "int32", "optional": False}, name="fz.Good"),
            {"id": i, "v": "new", "extra": 7},
        ),
        before=3,
        after=3,
    ),
]

NONE_CASES = JSON_CASES + CONNECT_CASES

# The short run checks every case under tolerance `none` on PostgreSQL, and on MariaDB and SQLite
# those whose outcome depends on the database (identifier rules, types, drivers); the long run
# (`make fuzz`) every case everywhere. Under tolerance `all` every case runs on every database.
DATABASE_SPECIFIC = {
    "field_70_bytes",
    "field_64_chars",
    "field_64_bytes_32_chars",
    "topic_70_chars",
    "Name_and_name_fields",
    "empty_field_name",
    "nul_in_field_name",
    "lone_surrogate_string",
    "nan",
    "n_2_pow_63",
    "string_into_integer_column",
    "nested_object_into_scalar_column",
    "record_with_2000_fields",
    "first_record_zero_fields",
    "cj_Name_and_name",
    "cj_zero_field_struct_first",
    "cj_new_required_field",
}


# ------------------------------------------------------------------------------ two-topic cases


def add_topic_collisions(scenario: Scenario, prefix: str, db: str) -> None:
    """Topics whose names collide as table names: two sharing their first 63 bytes (both longer than
    63/64), and `..._Name` / `..._name` (one table on SQLite, which folds case). Their rows must never
    meet in one table (the checker wants each row in the table named exactly as its topic)."""
    base = (prefix + "_shared_prefix_" + "s" * 63)[:63]
    long_expect = {"postgresql": DLQ, "mariadb": DLQ, "sqlite": EITHER}[db]
    for suffix in ("_a", "_b"):
        topic = scenario.topic(base + suffix)
        for _ in range(3):
            i = scenario.next_seq()
            value = good_json(i)
            label = f"topic_63_byte_prefix{suffix} ({i})"
            scenario.add(Rec(i, topic, None, value, label, long_expect, i, json.loads(value)))
    case_expect = {"postgresql": ROW, "mariadb": EITHER, "sqlite": EITHER}[db]
    for suffix in ("_Name", "_name"):
        topic = scenario.topic(f"{prefix}_topic{suffix}")
        for _ in range(3):
            i = scenario.next_seq()
            value = good_json(i)
            label = f"topic_case{suffix} ({i})"
            scenario.add(Rec(i, topic, None, value, label, case_expect, i, json.loads(value)))


def add_oversized(scenario: Scenario, prefix: str) -> None:
    """A bad record just under the producer's 1,000,000-byte limit: with the context headers its dead
    letter is too large, so it goes without its bytes, with `__connect.errors.sink.truncated`."""
    topic = scenario.topic(f"{prefix}_oversized")
    for n in range(3):
        i = scenario.next_seq()
        if n == 1:
            value = b'{"id":%d,"v":"' % i + b"x" * 998_000  # unterminated: a decode error
            scenario.add(Rec(i, topic, None, value, f"oversized_record ({i})", DLQ, None, None))
        else:
            scenario.add(Rec(i, topic, None, good_json(i), f"oversized_record (good {i})", ROW, i, None))


def add_big_int_burst(scenario: Scenario, prefix: str) -> None:
    """`{"n": 2**63}` records among good ones in one batch (PostgreSQL once failed fatally after such a
    rejected batch with SQLSTATE 26000, a prepared statement gone): each is a row or dead-lettered."""
    topic = scenario.topic(f"{prefix}_big_int_burst")
    for n in range(30):
        i = scenario.next_seq()
        value = compact({"id": i, "n": 2**63 + n if n % 3 == 1 else n})
        expect_ = EITHER if n % 3 == 1 else ROW
        scenario.add(Rec(i, topic, None, value, f"big_int_burst ({i})", expect_, i, json.loads(value)))
