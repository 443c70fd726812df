// dag's web UI: renders the page the path names from the JSON API under
// /api/, and polls it every few seconds for live updates. Text from the API
// only ever reaches the page as text nodes (never as HTML).
"use strict";

const REFRESH_MS = 2000;

function el(tag, attrs, ...children) {
  const ns = ["svg", "g", "rect", "text", "path", "title"].includes(tag)
    ? "http://www.w3.org/2000/svg" : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// Replaces what `main` holds (a null, undefined or false piece is left out:
// the DOM would print it as text).
function show(main, ...kids) {
  main.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
}

function badge(state) {
  return el("span", { class: `badge s-${state || "none"}`, "data-state": state || "" }, state || "never ran");
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 129600) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function secs(x) {
  return x === null || x === undefined ? "" : `${x.toFixed(2)}s`;
}

function link(href, text) {
  return el("a", { href, onclick: (ev) => { ev.preventDefault(); go(href); } }, text);
}

// --- pages -----------------------------------------------------------------

async function pipelinePage(main) {
  const p = await api("/api/pipeline");
  const note = p.database === null
    ? el("p", { class: "muted" }, "No database configured: node states appear once runs are recorded.")
    : (p.database !== "ok" ? el("p", { class: "error" }, `PostgreSQL: ${p.database}`) : null);
  show(main,
    el("h1", {}, `Pipeline ${p.pipeline}`),
    note,
    drawGraph(p),
    el("h2", {}, "Nodes"),
    nodeTable(p),
  );
}

function nodeLines(n) {
  const l = n.latest;
  const parts = [];
  if (l) {
    if (l.rows_out !== null) parts.push(`${l.rows_out} rows`);
    if (l.delta_version !== null) parts.push(`v${l.delta_version}`);
    parts.push(ago(l.age_seconds));
  } else {
    parts.push(n.layer);
  }
  let tests = "";
  if (n.tests.length) {
    tests = l && l.tests !== null
      ? `${n.tests.length} tests, ${l.tests_failed || 0} failed${l.tests_warned ? `, ${l.tests_warned} warned` : ""}`
      : `${n.tests.length} tests`;
  }
  return [parts.join(" · "), tests];
}

function drawGraph(p) {
  const W = 210, H = 56;
  const pos = {};
  let width = 400, height = 200;
  if (window.dagre) {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 60, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of p.nodes) g.setNode(n.name, { width: W, height: H });
    for (const e of p.edges) g.setEdge(e.from, e.to);
    dagre.layout(g);
    for (const n of p.nodes) pos[n.name] = g.node(n.name);
    width = g.graph().width; height = g.graph().height;
  } else {
    // Without the layout library (not installed at build time): layers
    // left to right, one column per layer.
    const cols = { bronze: 0, silver: 1, gold: 2 };
    const rows = [0, 0, 0];
    for (const n of p.nodes) {
      const c = cols[n.layer] ?? 0;
      pos[n.name] = { x: 20 + W / 2 + c * (W + 60), y: 20 + H / 2 + rows[c]++ * (H + 16) };
    }
    width = 3 * (W + 60); height = Math.max(...rows) * (H + 16) + 40;
  }
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-testid": "graph" });
  for (const e of p.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y, x2 = b.x - W / 2, y2 = b.y, mx = (x1 + x2) / 2;
    svg.append(el("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  }
  for (const n of p.nodes) {
    const q = pos[n.name];
    const state = n.latest ? n.latest.state : "none";
    const [line1, line2] = nodeLines(n);
    svg.append(el("g", {
      class: `node state-${state}`, "data-node": n.name, "data-state": state,
      transform: `translate(${q.x - W / 2},${q.y - H / 2})`,
      onclick: () => go(`/models/${encodeURIComponent(n.name)}`),
    },
      el("title", {}, `${n.name} (${n.layer}, ${n.kind}): ${state}`),
      el("rect", { width: W, height: H }),
      el("text", { x: 8, y: 17 }, n.name),
      el("text", { x: 8, y: 33, class: "sub" }, line1),
      el("text", { x: 8, y: 48, class: "sub" }, line2),
    ));
  }
  return el("div", { id: "graph" }, svg);
}

function nodeTable(p) {
  return el("table", {},
    el("tr", {}, ["node", "layer", "state", "rows out", "version", "when", "tests", "warehouse"].map((h) => el("th", {}, h))),
    p.nodes.map((n) => {
      const l = n.latest || {};
      return el("tr", { "data-node": n.name },
        el("td", {}, link(`/models/${encodeURIComponent(n.name)}`, n.name)),
        el("td", {}, n.layer),
        el("td", {}, badge(l.state)),
        el("td", { class: "num" }, l.rows_out ?? ""),
        el("td", { class: "num" }, l.delta_version ?? ""),
        el("td", {}, ago(l.age_seconds)),
        el("td", {}, n.tests.length ? `${n.tests.length}` : ""),
        el("td", {}, n.warehouse ? `${n.warehouse}${n.loaded_version !== null && n.loaded_version !== undefined ? ` (v${n.loaded_version})` : ""}` : ""),
      );
    }),
  );
}

async function modelPage(main, name) {
  const m = await api(`/api/models/${encodeURIComponent(name)}`);
  show(main,
    el("h1", {}, `${m.name} `, el("span", { class: "muted" }, `${m.layer} · ${m.kind} · ${m.materialized}`)),
    m.description ? el("p", {}, m.description) : null,
    el("p", { "data-testid": "links" }, "Inputs: ", m.inputs.length ? m.inputs.map((i, k) => [k ? ", " : "", link(`/models/${encodeURIComponent(i)}`, i)]) : "none",
      " · Outputs: ", m.outputs.length ? m.outputs.map((i, k) => [k ? ", " : "", link(`/models/${encodeURIComponent(i)}`, i)]) : "none"),
    m.warehouse ? el("p", {}, `Warehouse table ${m.warehouse}, loaded version `, el("b", { "data-testid": "loaded-version" }, m.loaded_version ?? "none")) : null,
    m.sql ? [el("h2", {}, "SQL"), el("pre", {}, m.sql)] : null,
    el("h2", {}, "Columns"),
    el("table", {}, el("tr", {}, ["column", "type", "nullable", "description"].map((h) => el("th", {}, h))),
      m.columns.map((c) => el("tr", {}, el("td", {}, c.name), el("td", {}, c.type), el("td", {}, c.nullable ? "yes" : "no"), el("td", {}, c.description)))),
    el("h2", {}, "Tests"),
    m.tests.length ? el("ul", {}, m.tests.map((t) => el("li", {}, link(`/tests/${encodeURIComponent(t.name)}`, t.name), ` (${t.kind})`))) : el("p", { class: "muted" }, "none"),
    el("h2", {}, "Recent versions"),
    el("table", { "data-testid": "recent" }, el("tr", {}, ["run", "state", "rows in", "rows out", "version", "seconds", "finished"].map((h) => el("th", {}, h))),
      m.recent.map((r) => el("tr", {},
        el("td", {}, link(`/runs/${r.run}`, `${r.run}`)), el("td", {}, badge(r.state)),
        el("td", { class: "num" }, r.rows_in ?? ""), el("td", { class: "num" }, r.rows_out ?? ""),
        el("td", { class: "num" }, r.delta_version ?? ""), el("td", { class: "num" }, secs(r.seconds)), el("td", {}, r.finished_at ?? "")))),
  );
}

async function runsPage(main) {
  const r = await api("/api/runs");
  const input = el("input", { name: "selector", placeholder: "selector, e.g. gold or +fact_trips", "data-testid": "selector" });
  const said = el("span", { class: "error" });
  const form = el("form", {
    class: "trigger",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const t = await api("/api/trigger", {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ selector: input.value }),
        });
        go(`/runs/${t.run}`);
      } catch (e) { said.textContent = e.message; }
    },
  }, input, el("button", { type: "submit", "data-testid": "trigger" }, "Trigger run"), said);
  // Keep what is being typed across refreshes.
  const old = document.querySelector("input[name=selector]");
  if (old) { input.value = old.value; }
  show(main,
    el("h1", {}, "Runs"), form,
    el("table", { "data-testid": "runs" }, el("tr", {}, ["run", "trigger", "selection", "state", "created", "duration", "tasks"].map((h) => el("th", {}, h))),
      r.runs.map((x) => el("tr", { "data-run": x.id },
        el("td", {}, link(`/runs/${x.id}`, `${x.id}`)), el("td", {}, x.trigger + (x.schedule ? ` (${x.schedule})` : "")),
        el("td", {}, x.selector), el("td", {}, badge(x.state)), el("td", {}, x.created_at ?? ""),
        el("td", { class: "num" }, secs(x.seconds)),
        el("td", {}, `${x.tasks_succeeded}/${x.tasks}${x.tasks_failed ? `, ${x.tasks_failed} failed` : ""}`)))),
  );
  if (old && document.activeElement !== input && old === document.activeElement) input.focus();
}

function gantt(run) {
  const end = Math.max(0.001, ...run.tasks.map((t) => t.end ?? t.start ?? 0), run.seconds ?? 0);
  const colour = { success: "var(--ok)", failed: "var(--fail)", running: "var(--run)", up_for_retry: "var(--warn)" };
  return el("div", { class: "gantt", "data-testid": "gantt" },
    run.tasks.map((t) => {
      const tries = run.attempts.filter((a) => a.node === t.node);
      return el("div", { class: "row", "data-node": t.node },
        el("div", { class: "label", title: t.node }, t.node),
        el("div", { class: "track" },
          (tries.length ? tries : [{ start: t.start, end: t.end, outcome: t.state }]).filter((a) => a.start !== null && a.start !== undefined).map((a) => {
            const left = (100 * a.start) / end;
            const w = (100 * ((a.end ?? end) - a.start)) / end;
            const state = a.outcome === "success" ? "success" : (a.end === null ? "running" : (a.outcome || t.state).startsWith("failed") ? "failed" : t.state);
            return el("div", {
              class: "bar", title: `${t.node} attempt ${a.attempt ?? t.attempt}: ${a.outcome ?? t.state}`,
              style: `left:${left}%;width:${Math.max(w, 0.3)}%;background:${colour[state] || "var(--skip)"}`,
            });
          })));
    }));
}

async function runPage(main, id) {
  const r = await api(`/api/runs/${encodeURIComponent(id)}`);
  show(main,
    el("h1", {}, `Run ${r.id} `, badge(r.state)),
    el("p", {}, `${r.trigger}${r.schedule ? ` (${r.schedule})` : ""} · ${r.selector} · created ${r.created_at ?? ""} · ${secs(r.seconds)}`),
    r.note ? el("p", { class: "muted" }, r.note) : null,
    el("h2", {}, "Timeline"), gantt(r),
    el("h2", {}, "Tasks"),
    el("table", { "data-testid": "tasks" }, el("tr", {}, ["node", "state", "attempt", "rows in", "rows out", "version", "seconds", "tests", "error"].map((h) => el("th", {}, h))),
      r.tasks.map((t) => el("tr", { "data-node": t.node },
        el("td", {}, t.node === "load:warehouse" ? t.node : link(`/models/${encodeURIComponent(t.node)}`, t.node)), el("td", {}, badge(t.state)),
        el("td", { class: "num" }, `${t.attempt}/${t.max_attempts}`),
        el("td", { class: "num" }, t.rows_in ?? ""), el("td", { class: "num" }, t.rows_out ?? ""),
        el("td", { class: "num" }, t.delta_version ?? ""), el("td", { class: "num" }, secs(t.seconds)),
        el("td", {}, t.tests === null ? "" : `${t.tests}${t.tests_failed ? `, ${t.tests_failed} failed` : ""}`),
        el("td", {}, t.error ? el("pre", {}, t.error) : "")))),
    el("h2", {}, "Attempts"),
    el("table", {}, el("tr", {}, ["node", "attempt", "scheduler", "outcome"].map((h) => el("th", {}, h))),
      r.attempts.map((a) => el("tr", {}, el("td", {}, a.node), el("td", { class: "num" }, a.attempt), el("td", {}, a.scheduler), el("td", {}, a.outcome ?? "running")))),
    el("h2", {}, "Data tests of this run"),
    testResults(r.test_results),
  );
}

function testResults(rows) {
  if (!rows.length) return el("p", { class: "muted" }, "none");
  return el("table", { "data-testid": "test-results" }, el("tr", {}, ["test", "model", "status", "failing", "rows checked", "version", "message"].map((h) => el("th", {}, h))),
    rows.map((t) => el("tr", { "data-test": t.test },
      el("td", {}, link(`/tests/${encodeURIComponent(t.test)}`, t.test)), el("td", {}, t.model), el("td", {}, badge(t.status)),
      el("td", { class: "num" }, t.failing ?? ""), el("td", { class: "num" }, t.rows_checked ?? ""),
      el("td", { class: "num" }, t.version ?? ""), el("td", {}, t.message))));
}

function sparkline(history) {
  const colour = { pass: "#2e7d32", warn: "#ef6c00", fail: "#c62828", error: "#c62828" };
  return el("svg", { class: "spark", width: 4 * 30, height: 14 },
    history.map((h, i) => el("rect", { x: i * 4, y: 0, width: 3, height: 14, fill: colour[h.status] || "#999" }, el("title", {}, `${h.tested_at}: ${h.status}`))));
}

async function testsPage(main) {
  const t = await api("/api/tests");
  const md = await fetch("/api/tests/report.md").then((r) => (r.ok ? r.text() : "")).catch(() => "");
  const open = document.querySelector("details[data-testid=report]")?.open ?? false;
  show(main,
    el("h1", {}, "Data quality"),
    el("details", { "data-testid": "report", open: open ? "" : null },
      el("summary", {}, "Report of the latest results (as `dag test --markdown` writes it) · ",
        el("a", { href: "/api/tests/report.md", download: "data-quality.md" }, "download")),
      el("pre", {}, md)),
    el("table", { "data-testid": "tests" }, el("tr", {}, ["test", "model", "kind", "latest", "failing", "history", "when"].map((h) => el("th", {}, h))),
      t.tests.map((x) => el("tr", { "data-test": x.test },
        el("td", {}, link(`/tests/${encodeURIComponent(x.test)}`, x.test)), el("td", {}, x.model), el("td", {}, x.kind),
        el("td", {}, badge(x.latest ? x.latest.status : null)), el("td", { class: "num" }, x.latest ? x.latest.failing : ""),
        el("td", {}, sparkline(x.history)), el("td", {}, x.latest ? x.latest.tested_at : "")))),
  );
}

async function testPage(main, name) {
  const t = await api("/api/tests");
  const x = t.tests.find((y) => y.test === name);
  if (!x) throw new Error(`no test ${name}`);
  const lastFail = [...x.history].reverse().find((h) => h.status !== "pass");
  let sample = null;
  if (lastFail && lastFail.sample) {
    try { sample = JSON.stringify(JSON.parse(lastFail.sample), null, 2); } catch { sample = lastFail.sample; }
  }
  show(main,
    el("h1", {}, `${x.test} `, badge(x.latest ? x.latest.status : null)),
    el("p", {}, `${x.kind} test on `, link(`/models/${encodeURIComponent(x.model)}`, x.model)),
    el("h2", {}, "History"), sparkline(x.history),
    lastFail ? [el("h2", {}, "Last failure"), el("p", {}, `${lastFail.tested_at}, run ${lastFail.run_id}: ${lastFail.failing} failing row(s): ${lastFail.message}`),
      sample ? el("pre", { "data-testid": "sample" }, sample) : null] : null,
    el("h2", {}, "Results"), testResults([...x.history].reverse()),
  );
}

async function quarantinePage(main) {
  const q = await api("/api/quarantine");
  show(main,
    el("h1", {}, "Quarantine"),
    q.quarantines.length ? null : el("p", { class: "muted" }, "No cleaning model in this pipeline: nothing is quarantined."),
    q.quarantines.map((x) => el("section", { "data-quarantine": x.name },
      el("h2", {}, link(`/models/${encodeURIComponent(x.name)}`, x.name), " ",
        el("span", { class: "muted" }, `rows rejected by `, link(`/models/${encodeURIComponent(x.of)}`, x.of),
          x.source ? [" from ", link(`/models/${encodeURIComponent(x.source)}`, x.source)] : "")),
      el("p", {}, el("b", { "data-testid": "rows" }, `${x.rows}`), " row(s)", x.version !== null ? ` · version ${x.version}` : " · no table yet"),
      x.by_reason.length ? [
        el("table", { class: "narrow" }, el("tr", {}, ["reason", "rows"].map((h) => el("th", {}, h))),
          x.by_reason.map((r) => el("tr", { "data-reason": r.reason }, el("td", {}, el("span", { class: "swatch", style: `background:${reasonColour(x, r.reason)}` }), r.reason), el("td", { class: "num" }, r.rows)))),
        el("h3", {}, "Rows by reason per hour of ingestion"), reasonChart(x),
        el("h3", {}, "Newest rows"),
        el("table", { "data-testid": "sample" }, el("tr", {}, ["ingested", "topic", "partition", "offset", "reason", "raw value"].map((h) => el("th", {}, h))),
          x.sample.map((r) => el("tr", { "data-offset": `${r.partition}:${r.offset}` },
            el("td", {}, r.ingested_at ?? ""), el("td", {}, r.topic ?? ""), el("td", { class: "num" }, r.partition ?? ""),
            el("td", { class: "num" }, r.offset ?? ""), el("td", {}, r.reason ?? ""), el("td", {}, rawValue(r.value))))),
      ] : null,
    )),
  );
}

const PALETTE = ["#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#558b2f", "#ad1457", "#4e342e"];
function reasonColour(x, reason) {
  const i = x.by_reason.findIndex((r) => r.reason === reason);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function reasonChart(x) {
  const hours = x.by_hour;
  const W = 22, H = 120;
  const total = (h) => Object.values(h.reasons).reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...hours.map(total));
  const svg = el("svg", { class: "chart", width: Math.max(320, hours.length * W + 80), height: H + 40, "data-testid": "by-hour" });
  hours.forEach((h, i) => {
    let y = H;
    for (const [reason, n] of Object.entries(h.reasons)) {
      const bh = Math.max(1, (n / max) * H);
      y -= bh;
      svg.append(el("rect", { x: 40 + i * W, y: y + 10, width: W - 4, height: bh, fill: reasonColour(x, reason) },
        el("title", {}, `${h.hour}: ${n} ${reason}`)));
    }
    if (i === 0 || i === hours.length - 1) svg.append(el("text", { x: 40 + i * W, y: H + 30, class: "axis" }, h.hour.slice(5, 16).replace("T", " ")));
  });
  svg.append(el("text", { x: 0, y: 18, class: "axis" }, `${max}`));
  svg.append(el("text", { x: 0, y: H + 10, class: "axis" }, "0"));
  return el("div", { class: "chartbox" }, svg);
}

// A raw value as the API made it safe: text (escaped when not printable
// UTF-8), with its hex behind a toggle when it was binary.
function rawValue(v) {
  if (!v) return el("span", { class: "muted" }, "(no value: tombstone)");
  return el("div", { class: "raw" },
    v.binary ? el("span", { class: "badge s-warn" }, `binary, ${v.bytes} bytes`) : null,
    el("pre", {}, v.text + (v.cut ? " …" : "")),
    v.binary ? el("details", {}, el("summary", {}, "hex"), el("pre", {}, v.hex)) : null);
}

function duration(s) {
  if (s === null || s === undefined) return "";
  const a = Math.abs(s);
  if (a < 90) return `${Math.round(s)}s`;
  if (a < 5400) return `${Math.round(s / 60)}m`;
  if (a < 129600) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

// A lag drawn against its threshold: the bar is the lag, the line the
// threshold; red past it.
function lagBar(lag, threshold) {
  const W = 240;
  const scale = Math.max(lag ?? 0, threshold) * 1.25 || 1;
  const over = lag !== null && lag > threshold;
  const w = lag === null ? 0 : Math.min(W, (lag / scale) * W);
  const t = (threshold / scale) * W;
  return el("svg", { class: "lagbar", width: W, height: 16 },
    el("rect", { x: 0, y: 3, width: W, height: 10, fill: "#eceff1" }),
    el("rect", { x: 0, y: 3, width: w, height: 10, fill: over ? "var(--fail)" : "var(--ok)" }),
    el("rect", { x: t - 1, y: 0, width: 2, height: 16, fill: "#263238" }, el("title", {}, `threshold ${duration(threshold)}`)));
}

async function freshnessPage(main) {
  const f = await api("/api/freshness");
  show(main,
    el("h1", {}, "Freshness"),
    el("p", { class: "muted" }, `as of ${f.now}`),
    el("h2", {}, "Sources"),
    f.sources.length ? el("table", { "data-testid": "sources" },
      el("tr", {}, ["source", "reads", "lag (messages)", "last bronze commit", "version", "partitions"].map((h) => el("th", {}, h))),
      f.sources.map((s) => el("tr", { "data-source": s.name },
        el("td", {}, link(`/models/${encodeURIComponent(s.name)}`, s.name)),
        el("td", {}, s.kind === "kafka" ? `topic ${s.topic}` : `files ${s.path}`),
        el("td", { class: "num", "data-testid": "lag" }, s.lag ?? ""),
        el("td", {}, s.age_seconds !== null ? `${ago(s.age_seconds)} (${s.committed_at})` : "never"),
        el("td", { class: "num" }, s.version ?? ""),
        el("td", {}, s.error ? el("span", { class: "error" }, s.error) : (s.partitions.length ?
          el("table", { class: "inner" }, el("tr", {}, ["partition", "in table up to", "high watermark", "lag"].map((h) => el("th", {}, h))),
            s.partitions.map((p) => el("tr", { "data-partition": p.partition },
              el("td", { class: "num" }, p.partition), el("td", { class: "num" }, p.recorded ?? "nothing"),
              el("td", { class: "num" }, p.high_watermark), el("td", { class: "num" }, p.lag)))) : ""))))) : el("p", { class: "muted" }, "No source in this pipeline."),
    el("h2", {}, "Warehouse tables"),
    f.tables.length ? el("table", { "data-testid": "tables" },
      el("tr", {}, ["model", "table", "loaded version", "lake version", "behind", "loaded version committed", "loaded"].map((h) => el("th", {}, h))),
      f.tables.map((t) => el("tr", { "data-model": t.model },
        el("td", {}, link(`/models/${encodeURIComponent(t.model)}`, t.model)), el("td", {}, t.warehouse),
        el("td", { class: "num", "data-testid": "loaded" }, t.loaded_version ?? "not loaded"), el("td", { class: "num" }, t.version ?? ""),
        el("td", { class: "num" }, t.versions_behind ?? ""),
        el("td", {}, t.loaded_version_age_seconds !== null ? ago(t.loaded_version_age_seconds) : ""),
        el("td", {}, t.loaded_at ?? "")))) : el("p", { class: "muted" }, "No model is loaded into the warehouse."),
    el("h2", {}, "Freshness tests"),
    f.tests.length ? el("table", { "data-testid": "freshness-tests" },
      el("tr", {}, ["test", "model", "column", "newest value", "lag now", "against threshold", "threshold", "last result"].map((h) => el("th", {}, h))),
      f.tests.map((t) => el("tr", { "data-test": t.test, "data-breached": t.lag_seconds !== null && t.lag_seconds > t.max_lag_seconds ? "yes" : "no" },
        el("td", {}, link(`/tests/${encodeURIComponent(t.test)}`, t.test)), el("td", {}, t.model), el("td", {}, t.column),
        el("td", {}, t.newest ?? "no value"), el("td", { class: "num" }, duration(t.lag_seconds)),
        el("td", {}, lagBar(t.lag_seconds, t.max_lag_seconds)), el("td", { class: "num" }, duration(t.max_lag_seconds)),
        el("td", {}, t.latest ? [badge(t.latest.status), ` ${t.latest.tested_at}`] : badge(null))))) : el("p", { class: "muted" }, "No freshness test declared (`freshness: {column: ..., max_lag: 1h}` on a model)."),
  );
}

// --- routing ---------------------------------------------------------------

const routes = [
  [/^\/$/, pipelinePage, "pipeline"],
  [/^\/models\/([^/]+)$/, modelPage, "pipeline"],
  [/^\/runs$/, runsPage, "runs"],
  [/^\/runs\/([^/]+)$/, runPage, "runs"],
  [/^\/tests$/, testsPage, "tests"],
  [/^\/tests\/([^/]+)$/, testPage, "tests"],
  [/^\/quarantine$/, quarantinePage, "quarantine"],
  [/^\/freshness$/, freshnessPage, "freshness"],
];

let timer = null;

async function render() {
  const main = document.getElementById("main");
  const path = location.pathname;
  for (const [re, page, nav] of routes) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === nav);
    try {
      await page(main, ...m.slice(1).map(decodeURIComponent));
      document.getElementById("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.loaded = path;
    } catch (e) {
      show(main, el("h1", {}, "Error"), el("p", { class: "error" }, e.message));
      document.body.dataset.loaded = path;
    }
    return;
  }
  show(main, el("h1", {}, "Not found"));
}

function go(path) {
  history.pushState(null, "", path);
  delete document.body.dataset.loaded;
  render();
}

window.addEventListener("popstate", render);
for (const a of document.querySelectorAll("header a")) {
  a.addEventListener("click", (ev) => { ev.preventDefault(); go(a.getAttribute("href")); });
}
render();
timer = setInterval(() => { if (!document.hidden) render(); }, REFRESH_MS);
