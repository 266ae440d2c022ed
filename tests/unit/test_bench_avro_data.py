"""Smoke test of the avro peers benchmark's pure helpers (benchmarks/avro_data.py): the dataset,
its wire formats, the expected final-state checksum and the last-record-per-partition probe,
against brute force. No timing, no broker, no database."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import fastavro

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import avro_data  # noqa: E402


def _brute_force(count: int, applied: int) -> dict[int, int]:
    """id -> index of the last record applied for it, replaying records 0..applied-1."""
    last: dict[int, int] = {}
    for i in range(applied):
        last[avro_data.values(i, count)["id"]] = i
    return last


def test_checksum_is_that_of_the_last_version_of_every_id() -> None:
    for count in (2, 10, 21, 40):
        total = avro_data.even(count)
        for applied in {0, 1, total // 2 - 1, total // 2, total // 2 + 3, total - 1, total}:
            applied = max(0, min(applied, total))
            last = _brute_force(count, applied)
            notes = sum(avro_data.note_hash(avro_data.note(i)) for i in last.values())
            assert avro_data.expected_checksum(count, applied) == (len(last), sum(last.values()), notes)
        assert avro_data.expected_checksum(count) == avro_data.expected_checksum(count, total)
        assert avro_data.expected_checksum(count)[0] == total // 2


def test_every_version_of_an_id_is_in_one_partition_and_the_probe_is_each_partitions_last_record() -> None:
    count = 42
    partitions: dict[int, set[int]] = {}
    last_in_partition: dict[int, tuple[int, int]] = {}
    for i, partition, key in avro_data.messages(count):
        key_id = int(key)
        partitions.setdefault(key_id, set()).add(partition)
        last_in_partition[partition] = (key_id, i)
    assert all(len(p) == 1 for p in partitions.values())
    assert avro_data.last_per_partition(count) == dict(last_in_partition.values())


def test_wire_formats_carry_the_record() -> None:
    value = avro_data.avro_value(7, 5, 20)
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == 7
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), avro_data.PARSED_SCHEMA, None)
    assert decoded == avro_data.values(5, 20)
    assert tuple(decoded[c] for c in avro_data.COLUMNS) == avro_data.row(5, 20)
    document = json.loads(avro_data.json_value(5, 20))
    assert document["id"] == 5 and document["seq"] == 5 and document["note"] == avro_data.note(5)


def test_checksum_of_rows_read_back_is_the_expected_one_only_for_the_last_versions() -> None:
    count = 40
    keys = avro_data.distinct(count)
    finals = [(i, avro_data.note(i)) for i in range(keys, 2 * keys)]  # (seq, note) of each id's last version
    assert avro_data.checksum_of(finals) == avro_data.expected_checksum(count)
    assert avro_data.checksum_of(reversed(finals)) == avro_data.expected_checksum(count)  # any order
    stale = [(0, avro_data.note(0)), *finals[1:]]  # id 0 still at its first version
    assert avro_data.checksum_of(stale) != avro_data.expected_checksum(count)
    partial = [(keys, avro_data.note(keys)), *finals[2:]]  # id 1 missing
    assert avro_data.checksum_of(partial) != avro_data.expected_checksum(count)
    assert avro_data.checksum_of([]) == avro_data.expected_checksum(count, 0) == (0, 0, 0)
    for applied in (1, keys, keys + 5):  # the first records only: the table's state after them
        last = _brute_force(count, applied)
        rows = [(i, avro_data.note(i)) for i in last.values()]
        assert avro_data.checksum_of(rows) == avro_data.expected_checksum(count, applied)
