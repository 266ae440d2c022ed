"""The Avro peers section's outputs: the printed table, results/latest.json and results/latest.png.

`vs (b)` divides a line's rate by the limit line of its own database ((b) for PostgreSQL,
(b/mariadb), (b/sqlite)); `vs (c)` by the plain consumer's (PostgreSQL) for every line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ORDER = ("b", "c", "cx2", "a", "ax2", "a/2", "a/4", "json", "d", "e", "b/mariadb", "a/mariadb", "b/sqlite", "a/sqlite")
LIMITS = {"postgresql": "b", "mariadb": "b/mariadb", "sqlite": "b/sqlite"}  # a line's (b), by its database
HEADER_NOTE = (
    "vs (b) = rate / the limit line (b) of the line's own database: (b) PostgreSQL, (b/mariadb), (b/sqlite); "
    "vs (c) = rate / the plain consumer's (PostgreSQL) for every line"
)


def limit_key(line: dict[str, Any]) -> str:
    """The key of the limit line a line is compared with: its own database's (b)."""
    return LIMITS.get(line.get("database", "postgresql"), "b")


def _ordered(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rank = {k: n for n, k in enumerate(ORDER)}
    return sorted(doc["lines"], key=lambda line: rank.get(line["key"], 99))


def table(doc: dict[str, Any]) -> list[str]:
    lines = _ordered(doc)
    rates = {line["key"]: line["rate"] for line in lines if line["rate"] and not line["wrong"]}
    headers = ("", "line", "database", "records", "time", "records/s", "vs (b)", "vs (c)", "peak RSS", "CPU s", "note")
    rows: list[tuple[str, ...]] = []
    for line in lines:
        rate = line["rate"]

        def ratio(base: str, rate: float | None = rate) -> str:
            return f"{rate / rates[base]:.2f}x" if rate and base in rates else ""

        note = " ".join(filter(None, (line["wrong"], line["note"])))
        rows.append(
            (
                f"({line['key']})",
                line["label"],
                line.get("database", "postgresql"),
                f"{line['count']:,}",
                f"{line['seconds']:.1f} s" if line["seconds"] else "-",
                f"{rate:,.0f}" if rate else "-",
                ratio(limit_key(line)),
                ratio("c"),
                f"{line['rss_mb']:.0f} MB" if line["rss_mb"] else "-",
                f"{line['cpu']:.1f}" if line["cpu"] is not None else "-",
                note,
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    right = {3, 4, 5, 6, 7, 8, 9}

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [render(headers), render(tuple("-" * w for w in widths)), *(render(r) for r in rows)]
    lin = doc.get("linearity", {})
    if lin.get("points"):
        points = ", ".join(f"{n:,} in {t:.1f} s" for n, t in lin["points"])
        ratios = ", ".join(f"{k} = {v:.2f}" for k, v in lin.items() if k.startswith("t("))
        out += ["", f"linearity (sink run, Avro): {points}; {ratios}"]
        if "marginal records/s (N/2 -> N)" in lin:
            out.append(f"  marginal rate from N/2 to N: {lin['marginal records/s (N/2 -> N)']:,.0f} records/s")
    return out


def write(doc: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "latest.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    written = [path]
    try:
        written.append(chart(doc, directory / "latest.png"))
    except ImportError:
        pass  # matplotlib is in the dev extra; without it, only the JSON
    return written


def chart(doc: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [line for line in _ordered(doc) if line["rate"] and line["key"] not in ("a/2", "a/4", "profile")]
    height = max(5.5, 0.5 * len(lines) + 1.5)
    fig, (bars, lin) = plt.subplots(1, 2, figsize=(15, height), gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"({line['key']}) {line['label']}" for line in lines]
    colors = [
        "#c0392b" if line["wrong"] else "#2e86c1" if line["key"].startswith(("a", "json")) else "#7f8c8d"
        for line in lines
    ]
    positions = range(len(lines))[::-1]
    bars.barh(list(positions), [line["rate"] for line in lines], color=colors)
    for y, line in zip(positions, lines, strict=True):
        text = (
            f" {line['rate']:,.0f}" + (" WRONG" if line["wrong"] else "") + (" (extrap.)" if line["key"] == "e" else "")
        )
        bars.text(line["rate"], y, text, va="center", fontsize=8)
    bars.set_yticks(list(positions), labels, fontsize=8)
    bars.set_xscale("log")
    bars.set_xlabel("records/s (log scale), higher is better")
    others = [d for d in doc.get("databases", []) if d != "postgresql"]
    into = "PostgreSQL" + (" (/" + ", /".join(others) + ": that database)" if others else "")
    bars.set_title(f"{doc['records']:,} Avro records, {doc['distinct_ids']:,} ids, upsert into {into}", fontsize=9)
    bars.margins(x=0.25)

    points = doc.get("linearity", {}).get("points", [])
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        lin.plot(xs, ys, "o-", color="#2e86c1", label="sink run (Avro): measured")
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / (
            sum((x - mean_x) ** 2 for x in xs) or 1.0
        )
        fixed = mean_y - slope * mean_x
        fit = f"fit: {fixed:.1f} s + N / {1 / slope:,.0f} per s" if slope > 0 else "fit"
        lin.plot([0, xs[-1]], [fixed, fixed + slope * xs[-1]], "--", color="#7f8c8d", label=fit)
        for x, y in zip(xs, ys, strict=True):
            lin.annotate(f"{y:.1f} s", (x, y), textcoords="offset points", xytext=(5, -12), fontsize=8)
        lin.set_xlim(0, xs[-1] * 1.1)
        lin.set_ylim(0, max(ys) * 1.15)
        ratio = doc["linearity"].get("t(N)/t(N/2)")
        lin.set_title("time vs records" + (f": t(N)/t(N/2) = {ratio:.2f}" if ratio else ""))
        lin.set_xlabel("records")
        lin.set_ylabel("seconds from process start to final state")
        lin.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
