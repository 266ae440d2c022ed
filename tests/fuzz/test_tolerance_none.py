"""The fixed corpus with errors.tolerance=none: good records, the bad one, good records, on a topic
of its own per case. The sink stops with exit 1 and a log line naming the bad record
(`topic/partition@offset`), nothing after it is in the table, and the committed offset is the bad
record's; where a case may be written on a database (EITHER), writing every record is fine too.

One sink per case; all cases of a database run side by side (a sink spends most of its start
waiting for the group join), once per database per test run: under pytest-xdist the first worker
that needs a database's results computes them (a file lock in the run's shared temporary directory),
the others read them, or meanwhile compute another database's. (`xdist_group` cannot do this here:
pytest 9 ignores the node ids pytest-xdist 3.8 rewrites for it.)
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner
from tests.fuzz.conftest import DATABASES, FULL
from tests.fuzz.corpus import DATABASE_SPECIFIC, NONE_CASES, Case, add_case
from tests.fuzz.harness import (
    NoneRun,
    Offsets,
    Scenario,
    create_topics,
    drop_prefixed_tables,
    judge_none,
    produce_scenario,
    sink_env_file,
)

pytestmark = pytest.mark.e2e

PARALLEL = int(os.environ.get("SINK_FUZZ_PARALLEL", "8"))  # sinks at once
CASE_TIMEOUT = 60.0


class CorpusRuns:
    """Runs the corpus of a database once per test run and judges every case: `{case: violations}`."""

    def __init__(self, bootstrap: str, urls: dict[str, str], tmp: Path, shared: Path | None) -> None:
        self.bootstrap, self.urls, self.tmp, self.shared = bootstrap, urls, tmp, shared
        self.results: dict[str, dict[str, list[str]]] = {}
        self.runner = SinkRunner(tmp)

    def get(self, db: str) -> dict[str, list[str]]:
        if db in self.results:
            return self.results[db]
        if self.shared is None:  # no xdist: nobody to share with
            self.results[db] = self._judged(db)
            return self.results[db]
        while True:
            stored = self._stored(db)
            if stored is not None:
                self.results[db] = stored
                return stored
            if self._compute_if_free(db):
                continue
            for other in DATABASES:  # another worker computes `db`: do another database meanwhile
                if other != db and self._stored(other) is None:
                    self._compute_if_free(other)
            with open(self.shared / f"{db}.lock", "w") as lock:  # then wait for `db`
                fcntl.flock(lock, fcntl.LOCK_EX)

    def _stored(self, db: str) -> dict[str, list[str]] | None:
        assert self.shared is not None
        path = self.shared / f"{db}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _compute_if_free(self, db: str) -> bool:
        assert self.shared is not None
        with open(self.shared / f"{db}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if self._stored(db) is None:
                results = self._judged(db)
                partial = self.shared / f"{db}.json.partial"
                partial.write_text(json.dumps(results))
                partial.rename(self.shared / f"{db}.json")
            return True

    def _judged(self, db: str) -> dict[str, list[str]]:
        prefix = f"fn{uuid.uuid4().hex[:8]}"
        try:
            runs, urls = self._run(db, prefix)
            by_name = {c.name: c for c in NONE_CASES}
            return {name: _judge(run, urls[name], by_name[name].expect[db]) for name, run in runs.items()}
        finally:
            for sink in self.runner.started:
                sink.kill()
            if db != "sqlite":
                drop_prefixed_tables(self.urls[db], prefix)

    def _run(self, db: str, prefix: str) -> tuple[dict[str, NoneRun], dict[str, str]]:
        scenario = Scenario(prefix)
        runs: dict[str, NoneRun] = {}
        urls: dict[str, str] = {}
        for case in cases_for(db):
            recs, bad = add_case(scenario, case, prefix, db)
            runs[case.name] = NoneRun(
                case.name, recs[0].topic, f"{prefix}_{case.name}_g", recs, bad, id_column=case.id_column
            )
            # SQLite: a file per case (concurrent sinks on one file would wait on each other's locks)
            urls[case.name] = self.urls[db] if db != "sqlite" else f"sqlite:///{self.tmp / f'{prefix}_{case.name}.db'}"
        if db != "sqlite":
            drop_prefixed_tables(self.urls[db], prefix)
        create_topics(self.bootstrap, scenario.topics)
        produce_scenario(self.bootstrap, scenario)
        by_name = {c.name: c for c in cases_for(db)}
        pending = list(runs.values())
        active: list[tuple[NoneRun, Offsets, float]] = []
        while pending or active:
            while pending and len(active) < PARALLEL:
                run = pending.pop(0)
                env = sink_env_file(
                    self.tmp / f"{run.group}.env",
                    self.bootstrap,
                    urls[run.case],
                    [run.topic],
                    run.group,
                    by_name[run.case].fmt,
                    errors_tolerance="none",
                )
                run.sink = self.runner.start(env)
                active.append((run, Offsets(self.bootstrap, run.group), time.monotonic()))
            time.sleep(0.5)
            still: list[tuple[NoneRun, Offsets, float]] = []
            for run, offsets, started in active:
                if self._settled(run, offsets, started):
                    run.seconds = time.monotonic() - started
                    offsets.close()
                else:
                    still.append((run, offsets, started))
            active = still
        return runs, urls

    @staticmethod
    def _settled(run: NoneRun, offsets: Offsets, started: float) -> bool:
        assert run.sink is not None
        end = max(r.offset for r in run.recs) + 1
        process = run.sink.process
        if process.poll() is not None:
            run.exit_code = process.returncode
            run.committed = offsets.read([(run.topic, 0)]).get((run.topic, 0))
            return True
        committed = offsets.read([(run.topic, 0)]).get((run.topic, 0))
        if (committed or 0) >= end:
            run.accepted = True
            process.send_signal(signal.SIGTERM)
            run.exit_code = run.sink.wait(60)
            run.committed = offsets.read([(run.topic, 0)]).get((run.topic, 0))
            return True
        if time.monotonic() - started > CASE_TIMEOUT:
            run.timed_out, run.committed = True, committed
            run.sink.kill()
            run.exit_code = process.returncode
            return True
        return False


@pytest.fixture(scope="session")
def corpus_runs(
    bootstrap_servers: str, pg_url: str, mariadb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CorpusRuns]:
    tmp = tmp_path_factory.mktemp("fuzz-none")
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    shared = None
    if run_id:  # the workers of one run share the parent of their base temporary directories
        shared = tmp_path_factory.getbasetemp().parent / f"fuzz-none-{run_id}"
        shared.mkdir(exist_ok=True)
    runs = CorpusRuns(bootstrap_servers, {"postgresql": pg_url, "mariadb": mariadb_url, "sqlite": ""}, tmp, shared)
    yield runs
    for sink in runs.runner.started:
        sink.kill()


def _judge(run: NoneRun, url: str, expect: str) -> list[str]:
    try:
        return judge_none(run, url, expect)
    except Exception as exc:  # one case's checker failing must not take the others' results with it
        return [f"the checker failed: {type(exc).__name__}: {str(exc)[:300]}"]


def cases_for(db: str) -> list[Case]:
    """Every case on PostgreSQL; on MariaDB and SQLite the short run keeps the database-specific ones."""
    if db == "postgresql" or FULL:
        return NONE_CASES
    return [c for c in NONE_CASES if c.name in DATABASE_SPECIFIC]


def _params() -> list[object]:
    return [pytest.param(db, case, id=f"{db}-{case.name}") for db in DATABASES for case in cases_for(db)]


@pytest.mark.parametrize(("db", "case"), _params())
def test_corpus_case_with_tolerance_none(db: str, case: Case, corpus_runs: CorpusRuns) -> None:
    violations = corpus_runs.get(db)[case.name]
    assert not violations, f"{db} {case.name} (expect {case.expect[db]}): " + "; ".join(violations)
