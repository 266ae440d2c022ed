"""More of the bulk path's per-chunk decisions: subclasses and foreign scalars (numpy's) never go by
binary COPY (psycopg picks a binary dumper by the column's type, a text one by the value's class:
only the exact classes are known to land alike); on the text path, a dict or list for a scalar column
is refused and values other than str for a text column are spelled as the server's cast writes them
(`pgcopy.spelled_out`, its cast given as a function here; tests/integration/test_copy_value_equivalence.py
checks both against PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from psycopg.postgres import types as pg_types
from psycopg.types.json import Jsonb

from sink.adapters.pgbinary import binary_safe
from sink.adapters.pgcopy import refuse_documents, spelled_out
from sink.errors import RecordRejected
from tests.support.subclasses import Day, Id, Moment, Rank, Real, Text, Wide

D = decimal.Decimal
UTC = dt.UTC


class Exact(decimal.Decimal):
    pass


def safe(type_name: str, *values: Any) -> bool:
    info = pg_types.get(type_name)
    assert info is not None
    return binary_safe([info.oid], [(v,) for v in values])


SUBCLASSES = [
    ("int2", Rank.ONE),
    ("int8", Wide(5)),
    ("float8", Real(1.5)),
    ("float8", Rank.ONE),
    ("numeric", Exact("1.5")),
    ("numeric", Rank.ONE),
    ("numeric", True),
    ("text", Text("x")),
    ("timestamptz", Moment(2024, 1, 1, tzinfo=UTC)),
    ("timestamp", Moment(2024, 1, 1)),
    ("date", Day(2024, 1, 1)),
    ("uuid", Id(int=1)),
    ("bytea", memoryview(b"x")),
    ("bool", 0),
]


@pytest.mark.parametrize(("type_name", "value"), SUBCLASSES, ids=[f"{t}-{type(v).__name__}" for t, v in SUBCLASSES])
def test_subclasses_of_the_allowed_classes_go_by_text(type_name: str, value: Any) -> None:
    assert not safe(type_name, value)
    assert not safe(type_name, None, value)


def test_numpy_scalars_go_by_text() -> None:
    np = pytest.importorskip("numpy")
    for type_name, value in [
        ("int8", np.int64(5)),
        ("int4", np.int32(5)),
        ("float8", np.float64(0.1)),  # a subclass of float
        ("float8", np.float32(0.1)),
        ("bool", np.bool_(True)),
        ("text", np.str_("x")),  # a subclass of str
        ("numeric", np.int64(5)),
    ]:
        assert not safe(type_name, value), (type_name, value)


# ------------------------------------------------------------------------------ documents for scalar columns


def test_a_dict_or_list_for_a_scalar_column_is_that_rows_error() -> None:
    rows = [(1, "a", Jsonb({"x": 1})), (2, None, Jsonb([1]))]
    refuse_documents(rows, [(0, "id"), (1, "t")])  # documents are wrapped for their columns: fine

    for value in ([1, 2], {"a": 1}):
        with pytest.raises(RecordRejected, match="nested value") as raised:
            refuse_documents([*rows, (3, value, None)], [(0, "id"), (1, "t")])
        assert raised.value.column == "t"
    refuse_documents([(1, [1, 2])], [(0, "id")])  # a native array column is not among the scalars


# ------------------------------------------------------------------------------ text columns spelled out


class Cast:
    """Stands in for the server's cast to text: records each call's values, answers `<repr>`."""

    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    def __call__(self, values: list[Any]) -> list[str]:
        self.calls.append(list(values))
        return [f"<{v!r}>" for v in values]


def test_values_of_other_classes_are_cast_per_class_naive_and_aware_apart() -> None:
    naive, aware, other = dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2, 2, 2, tzinfo=UTC)
    column = [
        1.5,
        "s",
        None,
        True,
        D("1E+5"),
        naive,
        aware,
        7,
        Rank.ONE,
        other,
        2.5,
        False,
        Text("t"),
        uuid.UUID(int=1),
    ]
    rows = [(n, value, value) for n, value in enumerate(column)]
    cast = Cast()

    out = spelled_out(rows, [1], cast)

    assert sorted(cast.calls, key=repr) == sorted(
        [[1.5, 2.5], [D("1E+5")], [naive], [aware, other], [Rank.ONE], [uuid.UUID(int=1)]], key=repr
    )
    assert [r[1] for r in out] == [
        "<1.5>",
        "s",
        None,
        "true",
        "<Decimal('1E+5')>",
        f"<{naive!r}>",
        f"<{aware!r}>",
        7,
        f"<{Rank.ONE!r}>",
        f"<{other!r}>",
        "<2.5>",
        "false",
        "t",
        f"<{uuid.UUID(int=1)!r}>",
    ]
    assert [r[2] for r in out] == column, "only the text columns"
    assert all(isinstance(r, list) for r in out)


def test_a_chunk_with_nothing_to_spell_is_left_as_it_is() -> None:
    rows = [(1, "a", 1.5), (2, None, True), (3, 7, None)]
    cast = Cast()

    assert spelled_out(rows, [1], cast) is rows
    assert spelled_out(rows, [], cast) is rows
    assert cast.calls == []


def test_without_the_cast_only_booleans_are_spelled() -> None:
    rows = [(1, True), (2, 1.5)]
    assert spelled_out(rows, [1]) == [[1, "true"], [2, 1.5]]
