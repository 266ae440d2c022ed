// The sink's status page: polls /status.json and fills the page. No framework, no build step,
// nothing fetched from elsewhere. Every value goes in through textContent (never as HTML).
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const INTERVAL_MS = Math.max(250, Number(params.get("interval")) || 2000);
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const secs = (s) => (s === null || s === undefined ? "–" : s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(1) + " s");

  function setText(id, value) { $(id).textContent = value; }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function fillTable(id, rows) {  // rows: arrays of [text, numeric?]
    const body = $(id).tBodies[0];
    body.replaceChildren(...rows.map((cells) => {
      const tr = el("tr");
      for (const [text, numeric] of cells) tr.appendChild(el("td", String(text), numeric ? "num" : ""));
      return tr;
    }));
  }

  function verdict(id, name, v) {
    const node = $(id);
    node.textContent = name + " " + (v.status === "ok" ? "✓" : "✗");
    node.title = v.reason;
    node.className = "pill " + (v.status === "ok" ? "ok" : "fail");
  }

  function render(s) {
    setText("sink-name", s.sink);
    verdict("live", "live", s.live);
    verdict("ready", "ready", s.ready);
    const c = s.counters || {};
    setText("records-in", fmt(c.records_in));
    setText("rows-written", fmt(c.rows_written));
    setText("rows-deleted", fmt(c.rows_deleted));
    setText("dead-lettered", fmt(c.dead_lettered));
    setText("failed", fmt(c.failed));
    setText("batches", fmt(c.batches));
    setText("commits", fmt(c.commits));
    setText("lag", fmt(s.lag));
    fillTable("partitions", s.partitions.map((p) => [
      [p.topic], [p.partition, true], [fmt(p.committed), true], [fmt(p.lag), true], [p.assigned ? "yes" : "no"],
    ]));
    if (s.tables === null) {
      fillTable("tables", []);
      setText("tables-note", "Per-table numbers appear once the worker feeds its batch statistics.");
    } else {
      fillTable("tables", s.tables.map((t) => [[t.table], [fmt(t.rows), true], [fmt(t.batches), true], [secs(t.mean_batch_seconds), true]]));
      setText("tables-note", s.tables.length ? "" : "No batch written yet.");
    }
    renderRetry(s);
    renderFailures(s);
    fillTable("config", Object.entries(s.config).map(([k, v]) => [[k], [typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)]]));
    drawChart(s.throughput);
    setText("updated", "updated " + new Date(s.time * 1000).toLocaleTimeString() + " · up " + Math.round(s.uptime_seconds) + " s");
  }

  function renderRetry(s) {
    const r = s.retry;
    const items = [
      ["state", r.retrying ? "retrying " + r.reason + " for " + secs(r.seconds) : "not retrying"],
      ["retries", fmt(r.retries)],
      ["time in retries", secs(r.seconds_total + (r.retrying ? r.seconds : 0))],
      ["rebalances (assigned / revoked)", fmt(s.rebalances.assigned) + " / " + fmt(s.rebalances.revoked)],
      ["skipped records", fmt(s.skipped)],
      ["reports acknowledged", fmt(s.reported)],
    ];
    $("retry").replaceChildren(...items.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
    $("retry").dataset.retrying = String(r.retrying);
  }

  function renderFailures(s) {
    if (s.failures === null) {
      fillTable("failures", []);
      fillTable("latest", []);
      setText("failures-note", "Counts by reason appear once the router feeds its failure statistics; the totals above are exact.");
      return;
    }
    fillTable("failures", s.failures.by_reason.map((f) => [
      [f.topic], [f.stage], [f.error_class], [f.dead_lettered ? "dead-lettered" : "logged"], [fmt(f.records), true],
    ]));
    fillTable("latest", s.failures.latest.map((f) => [
      [new Date(f.at * 1000).toLocaleTimeString()], [f.topic + "/" + f.partition + "@" + f.offset], [f.error_class], [f.reason],
    ]));
    setText("failures-note", s.include_messages ? "Reasons include record values (SINK_ERRORS_LOG_INCLUDE_MESSAGES=true)." : "Reasons only: record values are never shown.");
  }

  function drawChart(points) {
    const svg = $("chart");
    const W = 800, H = 220, L = 48, B = 20, T = 8;
    const series = [
      ["read", (p) => p.records_in || 0],
      ["written", (p) => (p.rows_written || 0) + (p.rows_deleted || 0)],
      ["dead", (p) => (p.dead_lettered || 0) + (p.failed || 0)],
    ];
    const nodes = [];
    const max = Math.max(1, ...points.flatMap((p) => series.map(([, f]) => f(p))));
    const t1 = points.length ? points[points.length - 1].t : 0, t0 = points.length ? points[0].t : 0;
    const span = Math.max(1, t1 - t0);
    const x = (t) => L + ((t - t0) / span) * (W - L - 4);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    for (const f of [0, 0.5, 1]) {
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("class", "grid");
      line.setAttribute("x1", L); line.setAttribute("x2", W); line.setAttribute("y1", y(max * f)); line.setAttribute("y2", y(max * f));
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", 2); label.setAttribute("y", y(max * f) + 4);
      label.textContent = Math.round(max * f).toLocaleString("en-US");
      nodes.push(line, label);
    }
    const span_label = document.createElementNS(SVG, "text");
    span_label.setAttribute("x", L); span_label.setAttribute("y", H - 4);
    span_label.textContent = points.length ? "last " + Math.round(span) + " s" : "collecting…";
    nodes.push(span_label);
    for (const [name, f] of series) {
      if (!points.length) break;
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("class", name);
      path.setAttribute("d", points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(f(p)).toFixed(1)).join(""));
      nodes.push(path);
    }
    svg.replaceChildren(...nodes);
    svg.dataset.points = String(points.length);
  }

  async function tick() {
    try {
      const answer = await fetch("/status.json", { cache: "no-store" });
      if (!answer.ok) throw new Error("HTTP " + answer.status);
      render(await answer.json());
      document.body.dataset.state = "ok";
    } catch (error) {
      setText("updated", "cannot reach the sink: " + error.message);
      document.body.dataset.state = "error";
    } finally {
      setTimeout(tick, INTERVAL_MS);
    }
  }
  tick();
})();
