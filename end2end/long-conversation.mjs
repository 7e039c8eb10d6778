// What a conversation's length costs: builds conversations of 3, 10, 1,000 and 5,000 turns
// through the API (a server of its own, limits raised, the fake provider answering a short
// markdown reply at once), then for each one prints
//   - the server's time to open it: `get_conversation` and the whole server-rendered page
//     (median of 10, over loopback),
//   - the bytes of both on the wire (brotli, as a browser accepts them) and decoded,
//   - in headless Chromium with a warm cache: time to interactive (navigation start to
//     `html[data-hydrated]`, median of 3), DOM elements, JS heap and WASM memory,
//   - while a 1,500-token reply streams at its end: main-thread time per token (CDP Performance
//     metrics) and keydown-to-next-frame latency (p95, max) of typing in the composer,
// then the same for a 1,000-turn conversation with every window loaded (a reader who scrolled
// back to its start), the WASM memory after switching five times between two 1,000-turn
// conversations, and the issue's budgets, met or not.
//   node end2end/long-conversation.mjs
// Uses target/release/rill (`bash scripts/release-build.sh`),
// target/site and target/debug/fake-provider unless RILL_BIN, SITE_ROOT, FAKE_BIN say
// otherwise; serves on PORT (3000) and FAKE_PORT (4000). DB=path keeps the database and the
// conversations' ids (path.json) between runs, so a second run skips building them.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as bench from "./bench-server.mjs";
import { median } from "./bench-server.mjs";
import { launchHeadless } from "./headless.mjs";

const PORT = Number(process.env.PORT ?? 3000);
const FAKE_PORT = Number(process.env.FAKE_PORT ?? 4000);
const SIZES = (process.env.SIZES ?? "3,10,1000,5000").split(",").filter(Boolean).map(Number);
const STREAM_TOKENS = 1_500;
const STREAM_DELAY_MS = 8;

// A short reply with some markdown, as the conversations are built.
const SHORT_REPLY = [
  "Here ", "is ", "a ", "short ", "answer ", "with ", "**bold** ", "and ", "`code`.", "\n\n",
  "- one", "\n- two", "\n\n", "```rust\n", "let x = 1;\n", "```\n",
];
// The streamed reply at the end: paragraphs and lists, a token at a time.
const LONG_REPLY = (() => {
  const section =
    "## Step\n\nSome prose with **bold**, `code` and a [link](https://example.com). " +
    "It goes on for a while, as explanations do.\n\n- first point\n- second point\n\n";
  let text = "";
  while (text.length < STREAM_TOKENS * 4) text += section;
  return Array.from({ length: STREAM_TOKENS }, (_, i) => text.slice(i * 4, i * 4 + 4));
})();

const dbPath = process.env.DB ?? join(mkdtempSync(join(tmpdir(), "rill-long-")), "rill.db");
const idsPath = `${dbPath}.json`;
const fakeUrl = await bench.startFake(FAKE_PORT);
const { url, stop } = await bench.startRill(PORT, dbPath, fakeUrl);
const configureFake = (config) => bench.configureFake(fakeUrl, config);

// ---- building conversations through the API ------------------------------------------------
const turn = (text, conversation) => bench.sendTurn(url, text, conversation);

async function build(name, turns) {
  let id = null;
  const started = Date.now();
  for (let i = 1; i <= turns; i++) {
    // The first question names the conversation in the sidebar, the last one tells it apart.
    const text = i === 1 ? `${name}: question 1` : i === turns ? `${name}: last question` : `Question ${i}`;
    id = await turn(text, id);
    if (i % 1000 === 0) console.error(`  ${name}: ${i} turns (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  return id;
}

let ids = existsSync(idsPath) ? JSON.parse(readFileSync(idsPath, "utf8")) : {};
const wanted = [...SIZES.map((n) => [`${n} turns`, n]), ["Switch A", 1000], ["Switch B", 1000]];
const missing = wanted.filter(([name]) => !ids[name]);
if (missing.length) {
  await configureFake({ tokens: SHORT_REPLY.length, token_delay_ms: 0, script: SHORT_REPLY });
  const started = Date.now();
  console.error(`building ${missing.map(([n, t]) => `${n} (${t})`).join(", ")} …`);
  const built = await Promise.all(missing.map(async ([name, turns]) => [name, await build(name, turns)]));
  ids = { ...ids, ...Object.fromEntries(built) };
  writeFileSync(idsPath, JSON.stringify(ids));
  console.error(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// ---- the server's side of an open -----------------------------------------------------------
const exchange = (method, path, body) => bench.exchange(url, method, path, body);
async function serverOpen(id) {
  const api = [];
  const page = [];
  for (let i = 0; i < 11; i++) {
    api.push(await exchange("POST", "/api/get_conversation", JSON.stringify({ id })));
    page.push(await exchange("GET", `/c/${id}`));
  }
  // The first of each warms the caches; the median of the other ten.
  const pick = (runs) => ({ ...runs[1], ms: median(runs.slice(1).map((r) => r.ms)) });
  return { api: pick(api), page: pick(page) };
}

// ---- the browser's side ---------------------------------------------------------------------
const { context, page, close } = await launchHeadless("long-conversation");
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
const cdp = await context.newCDPSession(page);
await cdp.send("Performance.enable");
const metrics = async () => {
  const { metrics } = await cdp.send("Performance.getMetrics");
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
};
/** JS heap in use after a garbage collection, and the WASM linear memory of every instance. */
async function memory() {
  await cdp.send("HeapProfiler.collectGarbage");
  const heap = (await metrics()).JSHeapUsedSize;
  const wasm = await page.evaluate(() => window.__wasmMemories.reduce((sum, m) => sum + m.buffer.byteLength, 0));
  return { heap, wasm };
}
// Notes the WASM memories the page's modules export (the split files share the main one's).
await context.addInitScript(() => {
  const memories = (window.__wasmMemories = []);
  const note = (result) => {
    const instance = result.instance ?? result;
    for (const value of Object.values(instance.exports ?? {})) {
      if (value instanceof WebAssembly.Memory && !memories.includes(value)) memories.push(value);
    }
    return result;
  };
  for (const name of ["instantiate", "instantiateStreaming"]) {
    const original = WebAssembly[name];
    WebAssembly[name] = (...args) => original.apply(WebAssembly, args).then(note);
  }
});
// Records each keydown's latency to the end of the next frame (a task queued from the frame's
// animation callback runs after it paints).
// And when the page became interactive.
await context.addInitScript(() => {
  window.__keyLatency = [];
  new MutationObserver((_, observer) => {
    if (document.documentElement?.hasAttribute("data-hydrated")) {
      window.__hydratedAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-hydrated"] });
  addEventListener(
    "keydown",
    (event) => {
      const at = event.timeStamp;
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => window.__keyLatency.push(performance.now() - at);
        channel.port2.postMessage(null);
      });
    },
    true,
  );
});

async function interactive(id) {
  const runs = [];
  for (let i = 0; i < 3; i++) {
    await page.goto(`${url}/c/${id}`);
    await page.waitForSelector("html[data-hydrated]", { state: "attached" });
    runs.push(await page.evaluate(() => window.__hydratedAt - performance.getEntriesByType("navigation")[0].startTime));
  }
  return median(runs);
}

async function streamAtEnd() {
  await configureFake({ tokens: LONG_REPLY.length, token_delay_ms: STREAM_DELAY_MS, script: LONG_REPLY });
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("A longer answer, please.");
  await page.keyboard.press("Enter");
  const reply = page.locator("li.message.assistant").last();
  await reply.locator(".content").filter({ hasText: "Step" }).waitFor();
  const shownChars = () => reply.locator(".content").evaluate((el) => el.textContent.length);
  const firstChars = await shownChars();
  const before = await metrics();
  const t0 = Date.now();
  // Typing while it streams: 40 keys, 60 ms apart, into the composer.
  await page.evaluate(() => (window.__keyLatency = []));
  await box.focus();
  await page.keyboard.type("typing while the reply streams, as people do", { delay: 60 });
  await page.waitForFunction(
    () => document.querySelector("li.message.assistant:last-of-type")?.getAttribute("data-status") !== "streaming",
    null,
    { polling: 500, timeout: 120_000 },
  );
  const after = await metrics();
  const seconds = (Date.now() - t0) / 1000;
  const keys = (await page.evaluate(() => window.__keyLatency)).sort((a, b) => a - b);
  // Tokens shown since the first sample: the share of the reply's text that came after it.
  const lastChars = await shownChars();
  const tokens = ((lastChars - firstChars) / lastChars) * STREAM_TOKENS;
  await box.fill("");
  return {
    perToken: ((after.TaskDuration - before.TaskDuration) / tokens) * 1000,
    busy: (after.TaskDuration - before.TaskDuration) / seconds,
    p95: keys[Math.floor(keys.length * 0.95)] ?? NaN,
    max: keys[keys.length - 1] ?? NaN,
    keys: keys.length,
  };
}

// A page served once, so that each measurement below has the site's files in the cache.
await page.goto(`${url}/`);
await page.waitForSelector("html[data-hydrated]", { state: "attached" });

const rows = [];
for (const n of SIZES) {
  const id = ids[`${n} turns`];
  const step = (what) => process.env.VERBOSE && console.error(`  ${n} turns: ${what}`);
  step("the server's side");
  const server = await serverOpen(id);
  step("time to interactive");
  const tti = await interactive(id);
  const dom = await page.evaluate(() => document.getElementsByTagName("*").length);
  const messages = await page.locator("li.message").count();
  step("memory");
  const mem = await memory();
  step("a reply streaming at the end");
  const stream = await streamAtEnd();
  rows.push({ n, server, tti, dom, messages, mem, stream });
  console.error(`  measured ${n} turns`);
}

// A reader who went back to the start of a 1,000-turn conversation (every window loaded once: by
// scrolling up, or by "Show earlier messages" where the page has only that), then to its end
// (the page holds a few windows around what is seen: the newest come back on the way down).
const loadedAll = await (async () => {
  const id = ids["1000 turns"];
  await page.goto(`${url}/c/${id}`);
  await page.waitForSelector("html[data-hydrated]", { state: "attached" });
  const list = page.locator(".messages");
  // Goes one window further while `part` ("older" or "newer") is offered; a window has come when
  // the list's first (or last) message is another.
  const walk = async (part, name, edge) => {
    const button = page.getByRole("button", { name, exact: true });
    for (let i = 0; i < 400 && (await page.locator(`.${part}`).count()); i++) {
      const key = () =>
        page.evaluate((e) => {
          const items = document.querySelectorAll("li.message");
          const item = e === "first" ? items[0] : items[items.length - 1];
          return `${items.length} ${item?.textContent ?? ""}`;
        }, edge);
      const was = await key();
      await list.evaluate((el, e) => (el.scrollTop = e === "first" ? 0 : el.scrollHeight), edge);
      await button.click({ timeout: 1_000 }).catch(() => {});
      await page
        .waitForFunction(
          ([e, w]) => {
            const items = document.querySelectorAll("li.message");
            const item = e === "first" ? items[0] : items[items.length - 1];
            return `${items.length} ${item?.textContent ?? ""}` !== w;
          },
          [edge, was],
          { timeout: 10_000 },
        )
        .catch(() => {});
    }
  };
  await walk("older", "Show earlier messages", "first");
  await walk("newer", "Show later messages", "last");
  await list.evaluate((el) => (el.scrollTop = el.scrollHeight));
  const dom = await page.evaluate(() => document.getElementsByTagName("*").length);
  const messages = await page.locator("li.message").count();
  const mem = await memory();
  const stream = await streamAtEnd();
  console.error("  measured 1000 turns, every window loaded");
  return { dom, messages, mem, stream };
})();

// Switching between two long conversations by the sidebar, as a reader does.
await page.goto(`${url}/c/${ids["Switch A"]}`);
await page.waitForSelector("html[data-hydrated]", { state: "attached" });
const switches = [await memory()];
for (let i = 0; i < 5; i++) {
  for (const name of ["Switch B", "Switch A"]) {
    await page.locator(`.conversation-list a[href="/c/${ids[name]}"]`).click();
    await page.locator("li.message.user .content", { hasText: `${name}: last question` }).waitFor();
    await page.waitForURL(`**/c/${ids[name]}`);
  }
  switches.push(await memory());
}
await close();

// ---- the report ---------------------------------------------------------------------------------
const kb = (b) => `${(b / 1024).toFixed(b < 10_240 ? 1 : 0)} KB`;
const mb = (b) => `${(b / 1048576).toFixed(1)} MB`;
const col = (s) => String(s).padStart(16);
console.log(`\n${"".padEnd(38)}${rows.map((r) => col(`${r.n} turns`)).join("")}`);
const line = (label, f) => console.log(`${label.padEnd(38)}${rows.map((r) => col(f(r))).join("")}`);
line("get_conversation (server, median)", (r) => `${r.server.api.ms.toFixed(2)} ms`);
line("page /c/:id (server, median)", (r) => `${r.server.page.ms.toFixed(2)} ms`);
line("get_conversation on the wire (decoded)", (r) => `${kb(r.server.api.wire)} (${kb(r.server.api.decoded)})`);
line("page on the wire (decoded)", (r) => `${kb(r.server.page.wire)} (${kb(r.server.page.decoded)})`);
line("time to interactive (median of 3)", (r) => `${r.tti.toFixed(0)} ms`);
line("DOM elements (messages)", (r) => `${r.dom} (${r.messages})`);
line("JS heap", (r) => mb(r.mem.heap));
line("WASM memory", (r) => mb(r.mem.wasm));
line("main thread per streamed token", (r) => `${r.stream.perToken.toFixed(2)} ms`);
line("main thread busy while streaming", (r) => `${(r.stream.busy * 100).toFixed(0)} %`);
line("keydown to next frame p95 / max", (r) => `${r.stream.p95.toFixed(0)} / ${r.stream.max.toFixed(0)} ms`);
console.log(
  `\n1,000 turns with every window loaded: ${loadedAll.dom} DOM elements (${loadedAll.messages} messages), JS heap ${mb(loadedAll.mem.heap)}, WASM memory ${mb(loadedAll.mem.wasm)}; streaming at the end: ${loadedAll.stream.perToken.toFixed(2)} ms main thread per token (${(loadedAll.stream.busy * 100).toFixed(0)} % busy), keydown to next frame p95 / max ${loadedAll.stream.p95.toFixed(0)} / ${loadedAll.stream.max.toFixed(0)} ms`,
);
console.log(
  `WASM memory switching between two 1,000-turn conversations (start, then after each round trip): ${switches.map((s) => mb(s.wasm)).join(" → ")}`,
);
console.log(`JS heap over the same: ${switches.map((s) => mb(s.heap)).join(" → ")}`);

const at = (n) => rows.find((r) => r.n === n);
const budget = (label, ok, detail) => console.log(`${ok ? "met   " : "MISSED"}  ${label}: ${detail}`);
if (at(10) && at(5000) && at(3)) {
  console.log("");
  const [ten, big, three] = [at(10), at(5000), at(3)];
  budget("time to interactive at 5,000 ≤ 1.5× at 10", big.tti <= 1.5 * ten.tti, `${(big.tti / ten.tti).toFixed(2)}×`);
  budget(
    "main-thread time per token at 5,000 ≤ 1.5× at 3",
    big.stream.perToken <= 1.5 * three.stream.perToken,
    `${(big.stream.perToken / three.stream.perToken).toFixed(2)}×`,
  );
  budget("keydown to frame p95 ≤ 20 ms while streaming at 5,000", big.stream.p95 <= 20, `${big.stream.p95.toFixed(0)} ms`);
  budget("JS heap at 5,000 ≤ 2× at 10", big.mem.heap <= 2 * ten.mem.heap, `${(big.mem.heap / ten.mem.heap).toFixed(2)}×`);
}
console.log(`page errors: ${errors.length}`);
for (const e of errors) console.log(`  ${e}`);
await stop();
if (!process.env.DB) rmSync(dirname(dbPath), { recursive: true, force: true });
process.exit(errors.length ? 1 : 0);
