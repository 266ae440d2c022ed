"""kafka-sql-sink benchmarks: `make bench` or `.venv/bin/python benchmarks/run.py [--quick] [--rows N]`.

Prints one line per step while it runs, then the machine facts and a table. Every number is
compared with a baseline (and, where there is one, a ceiling) measured in the same run; nothing
here asserts a time. See benchmarks/README.md for what each line means.
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as a script: import `benchmarks.*` from the repository root
    sys.path[0] = str(ROOT)

from benchmarks import common  # noqa: E402

SECTIONS = ("write", "e2e", "decode", "avro")
DATABASES = ("postgresql", "mariadb", "sqlite")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (10,000 rows, 20,000 records)")
    parser.add_argument("--rows", type=int, help="rows for the write path and decode+map (default 50,000)")
    parser.add_argument(
        "--records", type=int, help="records per end-to-end topic (default 100,000); avro: the dataset (1,000,000)"
    )
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per batch (default 10000, the sink's)")
    parser.add_argument("--keys", type=int, help="distinct keys in the upsert topic (default records / 10)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--databases", default=",".join(DATABASES), help=f"comma list of {', '.join(DATABASES)}")
    parser.add_argument("--repeat", type=int, help="runs per write-path and decode line, best kept (default 3)")
    parser.add_argument("--profile", action="store_true", help="also cProfile the Writer and the Preparer")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, env files, SQLite)")
    parser.add_argument("--avro-batches", default="10000,50000", help="avro: batch sizes of the limit line (b)")
    parser.add_argument("--naive-seconds", type=float, default=10.0, help="avro: time box of the per-record line")
    parser.add_argument("--py-spy", action="store_true", help="avro: one more sink run (N/2) under py-spy")
    parser.add_argument("--no-quix", action="store_true", help="avro: skip the Quix Streams line (no venv)")
    parser.add_argument(
        "--rounds", type=int, help="avro: runs of (c) and (a), alternating; each keeps its median (default 3)"
    )
    parser.add_argument(
        "--sink-env", action="append", default=[], metavar="NAME=VALUE", help="avro: extra SINK_* setting (repeatable)"
    )
    args = parser.parse_args(argv)
    args.avro_records = args.records or (20_000 if args.quick else 1_000_000)
    args.rows = args.rows or (10_000 if args.quick else 50_000)
    args.records = args.records or (20_000 if args.quick else 100_000)
    args.repeat = max(1, args.repeat or (1 if args.quick else 3))
    args.rounds = (1 if args.quick else 3) if args.rounds is None else max(1, args.rounds)
    args.keys = args.keys or max(1, args.records // 10)
    args.naive_rows = min(args.rows, 2_000 if args.quick else 5_000)
    args.naive_cap_s = 2.0 if args.quick else 5.0
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    for name in args.only:
        if name not in SECTIONS:
            parser.error(f"--only: unknown section {name!r}")
    for name in args.databases:
        if name not in DATABASES:
            parser.error(f"--databases: unknown database {name!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from benchmarks import decode_map, end_to_end, write_path

    progress = common.Progress()
    workdir = Path(tempfile.mkdtemp(prefix="sink-bench-"))
    servers = {
        db: (common.server_version(url) or "unreachable") if db in args.databases else "not measured"
        for db, url in (("postgresql", common.POSTGRES_URL), ("mariadb", common.MARIADB_URL))
    }
    urls = {
        "postgresql": common.POSTGRES_URL,
        "mariadb": common.MARIADB_URL,
        "sqlite": f"sqlite:///{workdir / 'bench.db'}",
    }
    available = {db: urls[db] for db in args.databases if servers.get(db, "") not in ("unreachable",)}
    plan = {
        "write": f"write path {args.rows:,} rows (batch {args.batch_size})",
        "e2e": f"end to end {args.records:,} records x 2 topics",
        "decode": f"decode+map {args.rows:,} records",
        "avro": f"avro peers {args.avro_records:,} records",
    }
    shown = ", ".join(plan[name] for name in SECTIONS if name in args.only)
    progress.line(f"kafka-sql-sink benchmarks: {shown}; work dir {workdir}")
    # The sink's bytecode, as an installed image has it (pip compiles what it installs; the
    # editable checkout is compiled by each `sink` process again when PYTHONDONTWRITEBYTECODE is set).
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "sink"), quiet=1)
    for db in args.databases:
        if db not in available:
            progress.line(f"skipping {db}: cannot connect to {urls[db]}")

    results: list[common.Result] = []
    failures: list[str] = []
    profile_lines: list[str] = []
    avro_lines: list[str] = []

    def attempt(what: str, fn, *fn_args) -> None:  # type: ignore[no-untyped-def]
        try:
            results.extend(fn(*fn_args))
        except Exception as exc:
            failures.append(f"{what}: {type(exc).__name__}: {exc}")
            traceback.print_exc()

    try:
        if "write" in args.only:
            for db, url in available.items():
                attempt(
                    f"write path {db}",
                    write_path.run,
                    db, url, args.rows, args.batch_size, args.naive_rows, args.naive_cap_s, args.repeat, progress,
                )  # fmt: skip
        if "e2e" in args.only:
            e2e_targets = {db: url for db, url in available.items() if db in ("postgresql", "sqlite")}
            e2e_profile = profile_lines if args.profile else None
            attempt("end to end", end_to_end.run, args.records, args.keys, e2e_targets, workdir, progress, e2e_profile)
        if "decode" in args.only:
            for fmt in ("json", "connect_json"):
                attempt(f"decode+map {fmt}", decode_map.run, fmt, args.rows, args.repeat, progress)
        if "avro" in args.only:
            if "postgresql" in available:
                others = {db: available[db] for db in ("mariadb", "sqlite") if db in available}
                if "sqlite" in others:
                    others["sqlite"] = f"sqlite:///{workdir / 'avro.db'}"  # its own file in the work directory
                attempt("avro peers", _avro, args, available["postgresql"], others, workdir, progress, avro_lines)
            else:
                failures.append("avro peers: needs PostgreSQL")
        if args.profile:
            attempt("profile", lambda: profile_lines.extend(_profile(args, available, progress)) or [])
    finally:
        if args.keep:
            progress.line(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    for line in common.machine_facts(servers):
        print(line)
    print(
        "columns   rate = count / time (no warm-up subtracted); vs base = rate / the group's baseline rate; "
        "of ceil = sink rate / the group's first ceiling"
    )
    if results:
        print()
        common.print_table(results)
    for line in avro_lines:
        print(line)
    for line in profile_lines:
        print(line)
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


def _avro(
    args: argparse.Namespace,
    url: str,
    others: dict[str, str],
    workdir: Path,
    progress: common.Progress,
    out: list[str],
) -> list:
    from benchmarks import avro_db, avro_peers, avro_report

    options = avro_peers.Options(
        count=args.avro_records,
        batches=[int(b) for b in args.avro_batches.split(",")],
        naive_seconds=args.naive_seconds,
        quix=not args.no_quix,
        sink_env=dict(item.split("=", 1) for item in args.sink_env),
        py_spy=args.py_spy,
        rounds=args.rounds,
        databases=others,
        skipped={
            db: f"cannot connect to {common.MARIADB_URL}" if db in args.databases else "not in --databases"
            for db in ("mariadb", "sqlite")
            if db not in others
        },
    )
    doc = avro_peers.run(options, url, workdir, progress)
    head = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT)
    doc["sink_version"] = head.stdout.strip() or "?"
    servers = {"postgresql": common.server_version(url) or "?"}
    if "mariadb" in others:
        servers["mariadb"] = common.server_version(others["mariadb"]) or "?"
    doc["machine"] = common.machine_facts(servers)
    written = avro_report.write(doc, avro_peers.RESULTS)
    load = ", ".join(f"{x:.1f}" for x in doc["load_before"])
    out += [
        "",
        f"avro peers: {doc['records']:,} Avro records, {doc['distinct_ids']:,} distinct ids (half the records are "
        f"updates), {doc['partitions']} partitions, upsert into PostgreSQL"
        + "".join(f", {avro_db.NAMES[db]} (lines /{db})" for db in others)
        + f"; load average before: {load}",
        "each line: from its process start until its table holds the exact final state (WRONG otherwise)",
        avro_report.HEADER_NOTE,
        "",
        *avro_report.table(doc),
        "",
        *doc.get("profile", []),
        "written: " + ", ".join(str(p.relative_to(ROOT)) for p in written),
    ]
    failed = [line for line in doc["lines"] if line["wrong"].startswith("FAILED")]
    if failed:
        raise RuntimeError(f"{len(failed)} avro line(s) failed: " + ", ".join(line["label"] for line in failed))
    return []


def _profile(args: argparse.Namespace, available: dict[str, str], progress: common.Progress) -> list[str]:
    from benchmarks import profiling

    lines: list[str] = [""]
    for db, url in available.items():
        with progress.step(f"profile     {db:<10}  sink Writer under cProfile"):
            lines += [*profiling.profile_writer(db, url, args.rows, args.batch_size), ""]
    for fmt in ("json", "connect_json"):
        with progress.step(f"profile     {fmt:<10}  sink Preparer under cProfile"):
            lines += [*profiling.profile_preparer(fmt, args.rows), ""]
    return lines


if __name__ == "__main__":
    sys.exit(main())
