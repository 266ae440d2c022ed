"""Decode + map per record: sink.pipeline.Preparer (bytes -> Row) on RawRecords built in memory,
single thread, against a baseline of bare `json.loads` of key and value (the floor any JSON sink pays)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from sink.formats import make_decoder
from sink.model import Coord, RawRecord, Row
from sink.pipeline import Preparer
from sink.transforms import MappingRules, RowMapper

from . import records
from .common import BASELINE, SINK, Progress, Result, repeats

SECTION = "decode+map"
ENCODERS: dict[str, Callable[[int], tuple[bytes, bytes]]] = {
    "json": records.json_record,
    "connect_json": records.connect_json_record,
}


def raw_records(fmt: str, count: int) -> list[RawRecord]:
    encode = ENCODERS[fmt]
    out = []
    for i in range(count):
        key, value = encode(i)
        out.append(RawRecord(Coord("orders", i % 3, i // 3), key, value, (), 1_700_000_000_000 + i))
    return out


def preparer(fmt: str) -> Preparer:
    mapper = RowMapper(MappingRules(pk_mode="record_key", delete_enabled=True))
    return Preparer(make_decoder(fmt), make_decoder(fmt), mapper)


def _best_of(repeat: int, work: Callable[[], object]) -> tuple[float, float, int]:
    """(fastest, slowest) seconds and the number of runs of `work` (see common.repeats)."""

    def timed() -> float:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    times = repeats(repeat, timed)
    return min(times), max(times), len(times)


def run(fmt: str, count: int, repeat: int, progress: Progress) -> list[Result]:
    raws = raw_records(fmt, count)
    results: list[Result] = []

    def loads_only() -> None:
        loads = json.loads
        for raw in raws:
            loads(raw.key)  # type: ignore[arg-type]
            loads(raw.value)  # type: ignore[arg-type]

    with progress.step(f"decode+map  {fmt:<12}  baseline: json.loads of key and value") as out:
        best, worst, runs = _best_of(repeat, loads_only)
        label = "baseline: json.loads key + value"
        out.append(Result(SECTION, fmt, label, count, best, "records/s", BASELINE, _note(count, best, worst, runs)))
    results += out

    prepare = preparer(fmt).prepare
    prepare(raws[0])  # compile the Connect schema once, as the first record of a topic does
    rows: list[object] = []

    def prepare_all() -> None:
        rows[:] = [prepare(raw) for raw in raws]

    with progress.step(f"decode+map  {fmt:<12}  sink Preparer.prepare") as out:
        best, worst, runs = _best_of(repeat, prepare_all)
        note = _note(count, best, worst, runs)
        bad = sum(1 for row in rows if not isinstance(row, Row))
        if bad:
            note += f"; {bad:,} NOT ROWS"
        label = "sink Preparer (decode + map to Row)"
        out.append(Result(SECTION, fmt, label, count, best, "records/s", SINK, note))
    results += out
    return results


def _note(count: int, best: float, worst: float, runs: int) -> str:
    note = f"{1e6 * best / count:.1f} µs/record"
    return note + (f"; best of {runs}, slowest {count / worst:,.0f}" if runs > 1 else "")
