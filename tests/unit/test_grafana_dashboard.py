"""deploy/grafana/kafka-sql-sink.json is import-ready and every expression in it names metrics the
sink exports (from a scrape of a registry with every hook fed), so a renamed metric breaks this
test instead of a user's dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sink.adapters.http import HELP, metrics_registry
from sink.health import Health
from sink.metrics import Counters, Stats

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "kafka-sql-sink.json"
METRIC = re.compile(r"\b((?:sink|process|python)_[a-z_]+)\b")


def exported() -> set[str]:
    """Every sample name of a scrape where every number is known (hooks wired, lag per partition)."""
    stats = Stats()
    stats.observe_batch("orders", 10, 0.01)
    stats.observe_failure("t", 0, 1, "VALUE_CONVERTER", "DecodeError", "not JSON", True, 1.0)
    health = Health(lambda: 1.0, 60, 30)
    writer = SimpleNamespace(stale_records=0)
    health.attach(SimpleNamespace(counters=Counters(), stats=stats, writer=writer, router=None))
    health.committed({("t", 0): 1})
    health.lag, health.lag_by_partition = 0, {("t", 0): 0}
    text = generate_latest(metrics_registry(health, "orders")).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def expressions(dashboard: dict) -> list[str]:  # type: ignore[type-arg]
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_expression_names_only_metrics_the_sink_exports() -> None:
    names = exported()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used, f"no metric in {expr!r}"
        assert used <= names, f"{expr!r} names {sorted(used - names)}, not exported"
    every_own = {name for expr in exprs for name in METRIC.findall(expr) if name.startswith("sink_")}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in every_own}
    assert set(HELP) - families == set(), "every metric of the sink is on the dashboard"


def test_the_dashboard_imports_into_grafana() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"] and panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for expr in (t["expr"] for t in panel["targets"]):
            for variable in re.findall(r"\$(\w+)", expr):
                assert variable in variables or variable.startswith("__"), (panel["title"], variable)
