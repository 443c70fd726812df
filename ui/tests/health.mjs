// The UI's quarantine, freshness and data-quality report in headless
// Chromium, for tests/it/ui.rs: what each page shows (rows by reason, the
// sample's bronze coordinates, consumer lag, loaded versions, freshness
// tests against their threshold, the Markdown report) goes to
// OUT_DIR/health.json, checked there against the lake, the broker and
// PostgreSQL; screenshots beside it.
//
//   node ui/tests/health.mjs BASE_URL OUT_DIR RUN_NAME
import { session } from "./browser.mjs";

const [base, out, runName] = process.argv.slice(2);

await session(base, out, "health", async (page, { report, loaded, shot }) => {
  await page.goto(`${base}/`);
  await loaded("/");

  // Quarantine: per table, its rows, rows by reason, the sample.
  await page.click("header nav a[data-nav=quarantine]");
  await loaded("/quarantine");
  report.quarantine = await page.$$eval("section[data-quarantine]", (sections) =>
    Object.fromEntries(sections.map((s) => [s.dataset.quarantine, {
      rows: Number(s.querySelector("[data-testid=rows]").textContent),
      reasons: Object.fromEntries([...s.querySelectorAll("tr[data-reason]")].map((r) =>
        [r.dataset.reason, Number(r.querySelector("td.num").textContent)])),
      bars: s.querySelectorAll("[data-testid=by-hour] rect").length,
      sample: [...s.querySelectorAll("[data-testid=sample] tr[data-offset]")].map((r) => ({
        at: r.dataset.offset,
        binary: Boolean(r.querySelector(".raw .badge")),
        text: r.querySelector(".raw pre").textContent,
      })),
    }])));
  await shot("quarantine");

  // Freshness: lag per source and partition, loaded versions, tests.
  await page.click("header nav a[data-nav=freshness]");
  await loaded("/freshness");
  report.sources = await page.$$eval("[data-testid=sources] tr[data-source]", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.source, {
      lag: r.querySelector("[data-testid=lag]").textContent,
      partitions: Object.fromEntries([...r.querySelectorAll("tr[data-partition]")].map((p) =>
        [p.dataset.partition, Number(p.lastElementChild.textContent)])),
      committed: !r.textContent.includes("never"),
    }])));
  report.tables = await page.$$eval("[data-testid=tables] tr[data-model]", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.model, r.querySelector("[data-testid=loaded]").textContent])));
  report.freshness_tests = await page.$$eval("[data-testid=freshness-tests] tr[data-test]", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.test, {
      breached: r.dataset.breached,
      threshold_marks: r.querySelectorAll("svg.lagbar rect").length,
      last: r.querySelector(".badge").dataset.state,
    }])));
  await shot("freshness");

  // Data quality: the Markdown report (folded away on the page).
  await page.click("header nav a[data-nav=tests]");
  await loaded("/tests");
  report.markdown = await page.textContent("details[data-testid=report] pre");

  // A `dag run` by the name its events and alerts use.
  await page.goto(`${base}/runs/${runName}`);
  await loaded(`/runs/${runName}`);
  report.named_run = await page.textContent("h1");
});
