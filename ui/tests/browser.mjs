// What the UI's browser scripts share: Debian's headless Chromium through
// playwright-core, a page that records script errors and requests leaving
// our server, waiting for a page to render, and screenshots that fail on a
// value the script did not render ("null", "undefined", "NaN").
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// Runs `drive(page, tools)` in a fresh browser and writes what it
// reported (plus any error) to OUT_DIR/<name>.json.
export async function session(base, out, name, drive) {
  mkdirSync(out, { recursive: true });
  const report = { errors: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("pageerror", (e) => report.errors.push(String(e)));
    page.on("requestfailed", (r) => {
      // Anything but our own server is a page that reaches out (a CDN).
      if (!r.url().startsWith(base)) report.errors.push(`request to ${r.url()}`);
    });
    const loaded = async (path) => {
      await page.waitForFunction((p) => document.body.dataset.loaded === p, path, { timeout: 20000 });
    };
    const shot = async (shotName) => {
      const text = await page.innerText("main");
      const bad = text.match(/\b(null|undefined|NaN)\b|\[object Object\]/);
      if (bad) report.errors.push(`${shotName} page shows "${bad[0]}"`);
      await page.screenshot({ path: join(out, `${shotName}.png`), fullPage: true });
    };
    await drive(page, { report, loaded, shot });
  } catch (e) {
    report.errors.push(String(e && e.stack ? e.stack : e));
  } finally {
    await browser.close();
    writeFileSync(join(out, `${name}.json`), JSON.stringify(report, null, 2));
  }
}
