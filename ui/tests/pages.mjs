// Drives dag's web UI in headless Chromium (Debian's, through
// playwright-core) the way a person would, for tests/it/ui.rs: opens every
// page, clicks a node of the graph, triggers a run from the Runs page and
// follows it until it ends, and writes a screenshot of each page and a
// report of what the pages showed (checked by the Rust test against
// PostgreSQL).
//
//   node ui/tests/pages.mjs BASE_URL OUT_DIR NODE SELECTOR TEST
import { session } from "./browser.mjs";

const [base, out, node, selector, test] = process.argv.slice(2);

await session(base, out, "report", async (page, { report, loaded, shot }) => {
  // Pipeline: the graph, each node's state.
  await page.goto(`${base}/`);
  await loaded("/");
  report.graph = await page.$$eval("#graph g.node", (gs) =>
    Object.fromEntries(gs.map((g) => [g.dataset.node, g.dataset.state])));
  report.layout = await page.evaluate(() => Boolean(window.dagre));
  await shot("pipeline");

  // Click a node: its model page.
  await page.click(`#graph g.node[data-node="${node}"]`);
  await loaded(`/models/${node}`);
  report.model = {
    heading: await page.textContent("h1"),
    links: await page.innerText("[data-testid=links]"),
    loaded_version: await page.textContent("[data-testid=loaded-version]").catch(() => null),
    recent: await page.$$eval("[data-testid=recent] tr", (rows) => rows.length - 1),
  };
  await shot("model");

  // Runs: trigger a run of the selection and follow it to its end.
  await page.click("header nav a[data-nav=runs]");
  await loaded("/runs");
  report.runs_before = await page.$$eval("[data-testid=runs] tr[data-run]", (rows) => rows.length);
  await page.fill("[data-testid=selector]", selector);
  await page.click("[data-testid=trigger]");
  await page.waitForURL(/\/runs\/\d+$/, { timeout: 20000 });
  const id = Number(new URL(page.url()).pathname.split("/").pop());
  await page.waitForFunction(() => {
    const b = document.querySelector("h1 .badge");
    return b && ["success", "failed"].includes(b.dataset.state);
  }, null, { timeout: 90000 });
  report.triggered = {
    id,
    state: await page.$eval("h1 .badge", (b) => b.dataset.state),
    tasks: await page.$$eval("[data-testid=tasks] tr[data-node]", (rows) =>
      Object.fromEntries(rows.map((r) => [r.dataset.node, r.querySelector(".badge").dataset.state]))),
    bars: await page.$$eval("[data-testid=gantt] .bar", (bars) => bars.length),
  };
  await shot("run");
  await page.click("header nav a[data-nav=runs]");
  await loaded("/runs");
  await shot("runs");

  // Data quality: every test's latest status, then one test's page.
  await page.click("header nav a[data-nav=tests]");
  await loaded("/tests");
  report.tests = await page.$$eval("[data-testid=tests] tr[data-test]", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.test, r.querySelector(".badge").dataset.state])));
  await shot("tests");
  await page.click(`[data-testid=tests] tr[data-test="${test}"] a`);
  await loaded(`/tests/${test}`);
  report.test_page = await page.textContent("h1");
  await shot("test");
});
