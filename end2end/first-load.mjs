// Measures a page's first load as a browser makes it: every response's bytes on the wire
// (compressed as sent), its encoding and cache policy, and the total, in headless Chromium with
// an empty cache. Then loads it again and counts what the cache did not answer.
//   node end2end/first-load.mjs http://127.0.0.1:3000/ [--budget 250000] [--turns 3]
// With a budget (bytes on the wire), it exits with status 1 when the first load is larger. With
// `--turns N` it first sends N messages to the server (its default model answers: serve it with
// the fake provider) and measures that conversation's page (`/c/:id`) instead. Only a
// release build's figure means anything (`bash scripts/release-build.sh`): a
// debug build's WASM is ten times the size and not optimised.
import { sendTurn } from "./bench-server.mjs";
import { launchHeadless } from "./headless.mjs";

const args = process.argv.slice(2);
const budgetAt = args.indexOf("--budget");
const budget = budgetAt >= 0 ? Number(args.splice(budgetAt, 2)[1]) : undefined;
if (budget !== undefined && !(budget > 0)) {
  console.error("--budget takes a number of bytes");
  process.exit(2);
}
const turnsAt = args.indexOf("--turns");
const turns = turnsAt >= 0 ? Number(args.splice(turnsAt, 2)[1]) : 0;
if (!Number.isInteger(turns) || turns < 0) {
  console.error("--turns takes a number of messages");
  process.exit(2);
}
let url = args[0] ?? "http://127.0.0.1:3000/";
if (turns > 0) {
  const origin = new URL(url).origin;
  let id = null;
  for (let i = 1; i <= turns; i++) id = await sendTurn(origin, `Question ${i}`, id);
  url = `${origin}/c/${id}`;
}
const { context, page, close } = await launchHeadless("first-load");
const cdp = await context.newCDPSession(page);
await cdp.send("Network.enable");

async function load() {
  const seen = new Map();
  const onResponse = ({ requestId, response }) =>
    seen.set(requestId, {
      url: response.url,
      encoding: response.headers["content-encoding"] ?? response.headers["Content-Encoding"] ?? "-",
      cache: response.headers["cache-control"] ?? response.headers["Cache-Control"] ?? "-",
      fromCache: response.fromDiskCache || response.fromMemoryCache,
      bytes: 0,
    });
  const onFinished = ({ requestId, encodedDataLength }) => {
    const entry = seen.get(requestId);
    if (entry) entry.bytes = encodedDataLength;
  };
  cdp.on("Network.responseReceived", onResponse);
  cdp.on("Network.loadingFinished", onFinished);
  await page.goto(url, { waitUntil: "load" });
  // Hydrated: the page marks itself live once the WASM has run (`lib.rs`).
  await page.waitForSelector("html[data-hydrated]", { state: "attached" });
  // Then whatever follows (a conversation's page keeps its event stream open: never idle).
  await page.waitForLoadState("networkidle", { timeout: 5000 }).catch(() => {});
  cdp.off("Network.responseReceived", onResponse);
  cdp.off("Network.loadingFinished", onFinished);
  return [...seen.values()];
}

function report(title, entries) {
  console.log(title);
  let total = 0;
  for (const e of entries) {
    const path = new URL(e.url).pathname;
    const bytes = e.fromCache ? 0 : e.bytes;
    total += bytes;
    console.log(
      `  ${String(bytes).padStart(8)} B  ${e.encoding.padEnd(5)} ${e.fromCache ? "(cache) " : ""}${path}  [${e.cache}]`,
    );
  }
  console.log(`  ${String(total).padStart(8)} B  total on the wire`);
  return total;
}

const first = report(`first load of ${url} (empty cache)`, await load());
report("second load (warm cache)", await load());
await close();
if (budget !== undefined) {
  if (first > budget) {
    console.error(`first load ${first} B is over the budget of ${budget} B`);
    process.exit(1);
  }
  console.log(`first load ${first} B is within the budget of ${budget} B`);
}
