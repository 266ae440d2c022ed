"""Issue 7: the Avro decoder calls fastavro's `_read_data` itself, with the named types and options
`schemaless_reader` would build on every call (`avro._READ`), once an import-time probe saw both
read alike. These tests check that the fast reader is the one in use, that a `_read_data` that
reads otherwise, fails or is missing is not used, and that the decoder gives the same values and
the same errors through either reader, for random bodies of a schema with named types from a
referenced schema, unions, arrays and maps. The fast reader is given the named types the schema
was parsed with, so a schema that is only a union or a name of referenced types reads too (the
public reader cannot find them: UnknownType).
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any
from unittest import mock

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sink.errors import DecodeError
from sink.formats import avro
from sink.formats.avro import AvroDecoder
from tests.support.fakes import FakeRegistry
from tests.support.wire import header, record

fastavro_read = pytest.importorskip("fastavro._read")  # the compiled reader (the wheels have it)

POINT = {"type": "record", "name": "Point", "namespace": "other", "fields": [{"name": "x", "type": "double"}]}
SCHEMA = record(
    {"name": "id", "type": "long"},
    {"name": "at", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    {"name": "point", "type": "other.Point"},
    {"name": "points", "type": {"type": "array", "items": "other.Point"}},
    {"name": "either", "type": ["null", "other.Point", "string"]},
    {"name": "tags", "type": {"type": "map", "values": "int"}},
    {"name": "name", "type": "string"},
)
REFERENCES = [{"name": "other.Point", "subject": "point", "version": 1}]


OTHER = {"type": "record", "name": "Other", "namespace": "other", "fields": [{"name": "y", "type": "string"}]}


def _decoder(schema: Any = SCHEMA) -> AvroDecoder:
    references = {("point", 1): ("AVRO", json.dumps(POINT), []), ("other", 1): ("AVRO", json.dumps(OTHER), [])}
    refs = [*REFERENCES, {"name": "other.Other", "subject": "other", "version": 1}]
    return AvroDecoder(FakeRegistry({1: ("AVRO", json.dumps(schema), refs)}, references=references))


def _outcome(decoder: AvroDecoder, data: bytes) -> tuple[str, Any]:
    try:
        payload = decoder.decode(data)
    except DecodeError as exc:
        return "error", str(exc)
    return "value", (payload.data, payload.shape)


def test_the_decoder_reads_through_fastavros_read_data() -> None:
    """The installed fastavro passes the probe: the fast reader is in use (a fallback would be slower)."""
    assert avro._READ is fastavro_read._read_data


def test_the_named_types_are_those_schemaless_reader_gathers_from_a_record_schema() -> None:
    named: dict[str, Any] = {}
    fastavro.parse_schema(POINT, named)
    parsed = fastavro.parse_schema(SCHEMA, named)
    gathered: dict[str, Any] = {}
    fastavro.parse_schema(parsed, gathered)  # what schemaless_reader does on each call
    assert avro._named_types(named) == {"writer": gathered, "reader": {}}


@pytest.mark.parametrize(
    ("schema", "body", "expected"),
    [
        ("other.Point", struct.pack("<d", 2.5), {"x": 2.5}),
        (["other.Point", "other.Other"], b"\x02\x04hi", {"y": "hi"}),  # branch 1, then "hi"
        (["null", "other.Point"], b"\x00", None),
    ],
    ids=["a-referenced-name", "a-union-of-referenced-records", "null-or-a-referenced-record"],
)
def test_a_schema_only_naming_referenced_types_reads(schema: Any, body: bytes, expected: Any) -> None:
    assert _decoder(schema).decode(header(1) + body).data == expected


@pytest.mark.parametrize(
    "read_data",
    [
        lambda stream, parsed, named, reader, options: {"not": "the record"},  # reads otherwise
        lambda stream, parsed, options: None,  # a signature that changed
    ],
    ids=["reads-otherwise", "other-signature"],
)
def test_a_read_data_that_does_not_read_as_schemaless_reader_is_not_used(read_data: Any) -> None:
    with mock.patch.object(fastavro_read, "_read_data", read_data):
        assert avro._fastavro_read() is avro._public_read


def test_a_schemaless_reader_with_an_option_the_sink_does_not_pass_is_not_bypassed() -> None:
    real = fastavro.schemaless_reader

    def schemaless_reader(fo: Any, writer_schema: Any, reader_schema: Any = None, new_option: bool = False) -> Any:
        return real(fo, writer_schema, reader_schema)  # reads the probe alike: only the signature differs

    with mock.patch.object(avro, "schemaless_reader", schemaless_reader):
        assert avro._fastavro_read() is avro._public_read


def test_without_read_data_the_public_reader_reads() -> None:
    with mock.patch.object(fastavro_read, "_read_data", None):
        assert avro._fastavro_read() is avro._public_read


def test_a_read_data_that_raises_otherwise_is_not_used() -> None:
    """Errors count too: a reader that refuses the probe's bad bodies with another exception is not taken."""
    real = fastavro_read._read_data

    def refusing(stream: io.BytesIO, *args: Any) -> Any:
        try:
            return real(stream, *args)  # the whole body reads as before
        except Exception as exc:  # the bad ones (EOFError, IndexError, ...) raise ValueError instead
            raise ValueError("another error") from exc

    with mock.patch.object(fastavro_read, "_read_data", refusing):
        assert avro._fastavro_read() is avro._public_read


def _valid_body(draw: st.DrawFn) -> bytes:
    point = st.fixed_dictionaries({"x": st.floats(allow_nan=False)})
    value = draw(
        st.fixed_dictionaries(
            {
                "id": st.integers(-(2**63), 2**63 - 1),
                "at": st.none() | st.integers(-(2**40), 2**40),
                "point": point,
                "points": st.lists(point, max_size=3),
                "either": st.none() | point | st.text(max_size=5),
                "tags": st.dictionaries(st.text(max_size=3), st.integers(-(2**31), 2**31 - 1), max_size=3),
                "name": st.text(max_size=8),
            }
        )
    )
    named: dict[str, Any] = {}
    fastavro.parse_schema(POINT, named)
    plain = json.loads(json.dumps(SCHEMA).replace('"logicalType"', '"ignored"'))  # `at` as its raw long
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(plain, named), value)
    return out.getvalue()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A valid body, or one cut short, or changed at one byte, or any bytes."""
    kind = draw(st.sampled_from(["valid", "cut", "changed", "any"]))
    if kind == "any":
        return draw(st.binary(max_size=40))
    body = _valid_body(draw)
    if kind == "cut":
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))]
    if kind == "changed" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body


@settings(max_examples=300, deadline=None)
@given(body=bodies())
def test_either_reader_gives_the_same_values_and_errors(body: bytes) -> None:
    data = header(1) + body
    fast = _outcome(_decoder(), data)
    with mock.patch.object(avro, "_READ", avro._public_read):
        public = _outcome(_decoder(), data)
    assert repr(fast) == repr(public)  # (a double may read as NaN, which equals nothing)
