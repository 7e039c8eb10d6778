// What the number of a person's conversations costs the first screen: builds 10 and 10,000
// conversations of one turn each through the API (a database for each; DB_DIR keeps them between
// runs, since building 10,000 takes minutes), then for each prints
//   - the server's time for the page `/`, for `list_conversations` (the first page) and for the
//     page after it (median of 10, loopback), and the page's bytes on the wire and decoded,
//   - in headless Chromium with a warm cache (median of 3): first contentful paint, time to
//     interactive (navigation start to `html[data-hydrated]`), the sidebar's entries and DOM
//     elements, and the time from scrolling the sidebar to its end to the next page's entries
//     (the list asks for it by itself as it nears its end).
//   node end2end/sidebar-scale.mjs
// Uses target/release/rill (`bash scripts/release-build.sh`), target/site and
// target/debug/fake-provider unless RILL_BIN, SITE_ROOT, FAKE_BIN say otherwise; serves on PORT
// (3000) and FAKE_PORT (4000); SIZES=10,10000 by default.
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configureFake, exchange, median, sendTurn, startFake, startRill } from "./bench-server.mjs";
import { launchHeadless } from "./headless.mjs";

const PORT = Number(process.env.PORT ?? 3000);
const FAKE_PORT = Number(process.env.FAKE_PORT ?? 4000);
const SIZES = (process.env.SIZES ?? "10,10000").split(",").filter(Boolean).map(Number);
const dbDir = process.env.DB_DIR ?? mkdtempSync(join(tmpdir(), "rill-sidebar-"));
mkdirSync(dbDir, { recursive: true });
const BUILDERS = 8;

const fakeUrl = await startFake(FAKE_PORT);
await configureFake(fakeUrl, { tokens: 4, token_delay_ms: 0, script: ["A ", "short ", "answer", "."] });

/** `n` conversations of one turn, `BUILDERS` at a time. */
async function build(url, n) {
  const started = Date.now();
  let next = 0;
  const builder = async () => {
    for (let i = next++; i < n; i = next++) {
      await sendTurn(url, `Conversation ${i + 1}: a question about rivers`, null);
      if ((i + 1) % 1000 === 0) console.error(`  ${i + 1} built (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  };
  await Promise.all(Array.from({ length: BUILDERS }, builder));
  console.error(`  built ${n} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

async function serverSide(url) {
  const page = [];
  const list = [];
  const next = [];
  const first = await (await fetch(`${url}/api/list_conversations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  })).json();
  const last = first[first.length - 1];
  const after = JSON.stringify({ after: { updated_at: last.updated_at, id: last.id } });
  for (let i = 0; i < 11; i++) {
    page.push(await exchange(url, "GET", "/"));
    list.push(await exchange(url, "POST", "/api/list_conversations", JSON.stringify({})));
    next.push(await exchange(url, "POST", "/api/list_conversations", after));
  }
  // The first of each warms the caches; the median of the other ten.
  const pick = (runs) => ({ ...runs[1], ms: median(runs.slice(1).map((r) => r.ms)) });
  return { page: pick(page), list: pick(list), next: pick(next) };
}

async function browserSide(url) {
  const { context, page, close } = await launchHeadless("sidebar-scale");
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await context.addInitScript(() => {
    new MutationObserver((_, observer) => {
      if (document.documentElement?.hasAttribute("data-hydrated")) {
        window.__hydratedAt = performance.now();
        observer.disconnect();
      }
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-hydrated"] });
  });
  const runs = [];
  // A first load fills the cache; the three after it are measured.
  for (let i = 0; i < 4; i++) {
    await page.goto(url, { waitUntil: "load" });
    await page.waitForSelector("html[data-hydrated]", { state: "attached" });
    const figures = await page.evaluate(() => ({
      fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN,
      tti: window.__hydratedAt,
      entries: document.querySelectorAll("nav.sidebar li a[href^='/c/']").length,
      elements: document.getElementsByTagName("*").length,
    }));
    if (i > 0) runs.push(figures);
  }
  // The next page of the list, as a reader scrolling the sidebar to its end gets it: scrolled
  // and polled in the page, so the figure holds no round trip of the script's own.
  const before = runs[0].entries;
  const nextPage = await page.evaluate(async (before) => {
    const count = () => document.querySelectorAll("nav.sidebar li a[href^='/c/']").length;
    const started = performance.now();
    const list = [...document.querySelectorAll("nav *")].find((e) => e.scrollHeight > e.clientHeight + 10);
    if (list) list.scrollTop = list.scrollHeight;
    while (performance.now() - started < 5000) {
      if (count() > before) return { ms: performance.now() - started, entries: count() };
      await new Promise((r) => requestAnimationFrame(r));
    }
    return null;
  }, before);
  await close();
  if (errors.length) throw new Error(`the page failed: ${errors.join("; ")}`);
  return {
    fcp: median(runs.map((r) => r.fcp)),
    tti: median(runs.map((r) => r.tti)),
    entries: before,
    elements: median(runs.map((r) => r.elements)),
    nextPage,
  };
}

const rows = [];
for (const n of SIZES) {
  const db = join(dbDir, `sidebar-${n}.db`);
  const fresh = !existsSync(db);
  const rill = await startRill(PORT, db, fakeUrl);
  if (fresh) {
    console.error(`building ${n} conversations …`);
    await build(rill.url, n);
  }
  const server = await serverSide(rill.url);
  const browser = await browserSide(rill.url);
  await rill.stop();
  rows.push({ n, server, browser });
}

const kb = (b) => `${(b / 1024).toFixed(1)} KB`;
console.log("| conversations | page `/`, server | `list_conversations` (next page) | page on the wire (decoded) | first contentful paint | interactive | sidebar entries (elements) | next page after scrolling |");
console.log("|---|---|---|---|---|---|---|---|");
for (const { n, server, browser } of rows) {
  const next = browser.nextPage
    ? `${browser.nextPage.ms.toFixed(0)} ms (to ${browser.nextPage.entries})`
    : "none (the list is whole)";
  console.log(
    `| ${n.toLocaleString("en")} | ${server.page.ms.toFixed(1)} ms | ${server.list.ms.toFixed(1)} ms (${server.next.ms.toFixed(1)} ms) | ${kb(server.page.wire)} (${kb(server.page.decoded)}) | ${browser.fcp.toFixed(0)} ms | ${browser.tti.toFixed(0)} ms | ${browser.entries} (${browser.elements}) | ${next} |`,
  );
}
process.exit(0);
