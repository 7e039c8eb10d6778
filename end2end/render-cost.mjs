// What a streaming reply costs the browser per token, along a 20,000-token reply of mixed
// markdown (the document of `examples/bench_markdown.rs`), one token every few milliseconds so
// that the page renders each on its own. Reads Chromium's own counters (CDP Performance metrics:
// main-thread task, script and layout time) at each 2,000-token stretch; flat figures mean a
// token costs the same at the end of a long reply as at its start. Near the start, middle and
// end it also records a 2-second trace and reports the browser's own work per frame (style,
// layout, pre-paint, paint), where a page's cost on a long reply shows first.
//   node end2end/render-cost.mjs http://127.0.0.1:3000/ http://127.0.0.1:4010
// With THINKING=1 the same text streams as a reasoning model's thinking, read with the Thinking
// section open and scrolled to its newest line (plain text, no markdown), and the answer is one
// word.
// against a running Rill whose default model is the fake provider's (see playwright.config.ts).
import { launchHeadless } from "./headless.mjs";

const url = process.argv[2] ?? "http://127.0.0.1:3000/";
const fakeUrl = process.argv[3] ?? "http://127.0.0.1:4010";
const TOKENS = Number(process.env.TOKENS ?? 20_000);
const STRETCH = 2_000;
const DELAY_MS = Number(process.env.DELAY_MS ?? 4);
const THINKING = process.env.THINKING === "1";

function tokens() {
  const section =
    "## Step\n\nSome prose with **bold**, `code` and a [link](https://example.com). " +
    "It goes on for a while, as explanations do, before the list.\n\n" +
    "- first point\n- second point, longer than the first\n  - a nested point\n\n" +
    "| name | size |\n|------|-----:|\n| a | 1 |\n| b | 22 |\n\n" +
    '```rust\nfn main() {\n    let total: u32 = (1..=10).sum();\n    println!("{total}");\n}\n```\n\n';
  let text = "";
  while (text.length < TOKENS * 4) text += section;
  const out = [];
  for (let i = 0; i < TOKENS; i++) out.push(text.slice(i * 4, i * 4 + 4));
  return out;
}

const script = tokens();
const configured = await fetch(`${fakeUrl}/_fake/config`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(
    THINKING
      ? { tokens: 1, token_delay_ms: DELAY_MS, script: ["Done."], thinking: script }
      : { tokens: script.length, token_delay_ms: DELAY_MS, script },
  ),
});
if (!configured.ok) throw new Error(`the fake provider refused its configuration: ${configured.status}`);

const { context, page, close } = await launchHeadless("render-cost");
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
const cdp = await context.newCDPSession(page);
await cdp.send("Performance.enable");
const metrics = async () => {
  const { metrics } = await cdp.send("Performance.getMetrics");
  return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
};

/** Main-thread time per frame, by phase, over `ms` of a CDP trace. */
const frameWork = async (ms) => {
  const events = [];
  const collect = ({ value }) => events.push(...value);
  cdp.on("Tracing.dataCollected", collect);
  const done = new Promise((resolve) => cdp.once("Tracing.tracingComplete", resolve));
  await cdp.send("Tracing.start", {
    categories: "devtools.timeline,disabled-by-default-devtools.timeline",
    transferMode: "ReportEvents",
  });
  await new Promise((r) => setTimeout(r, ms));
  await cdp.send("Tracing.end");
  await done;
  cdp.off("Tracing.dataCollected", collect);
  const phases = { UpdateLayoutTree: 0, Layout: 0, PrePaint: 0, Paint: 0 };
  let frames = 0;
  for (const e of events) {
    if (e.ph !== "X" || !(e.name in phases)) continue;
    phases[e.name] += (e.dur ?? 0) / 1000;
    if (e.name === "PrePaint") frames += 1;
  }
  const per = (k) => (phases[k] / Math.max(frames, 1)).toFixed(2).padStart(6);
  return `${String(frames).padStart(4)} frames ${per("UpdateLayoutTree")} ${per("Layout")} ${per("PrePaint")} ${per("Paint")}`;
};
// Where to trace, as shares of the reply's text shown (rendered text is shorter than markdown).
const traceAt = [0.05, 0.45, 0.8];
const traces = [];

await page.goto(url);
await page.waitForSelector("html[data-hydrated]", { state: "attached" });
await page.getByRole("textbox", { name: "Message" }).fill("A long answer, please.");
await page.keyboard.press("Enter");

// How far the reply has come, in tokens: its rendered text's share of the final text (markdown
// syntax is spread evenly through the document, so the two grow together).
const reply = page.locator("li.message.assistant").last();
if (THINKING) await reply.locator("details.reasoning summary").click();
const shown = reply.locator(THINKING ? ".reasoning-text" : ".content");
const shownChars = () => shown.evaluate((el) => el.textContent.length);
const samples = [];
const started = Date.now();
for (;;) {
  const status = await reply.getAttribute("data-status").catch(() => null);
  // A reader of the thinking keeps its box scrolled to the newest line.
  if (THINKING) await shown.evaluate((el) => el.scrollTo(0, el.scrollHeight)).catch(() => {});
  samples.push({ at: Date.now(), chars: await shownChars(), m: await metrics() });
  if (status && status !== "streaming") break;
  const chars = samples[samples.length - 1].chars;
  if (traceAt.length && chars >= traceAt[0] * TOKENS * 4 * 0.85) {
    traceAt.shift();
    traces.push({ chars, work: await frameWork(2_000) });
  }
  if (Date.now() - started > TOKENS * DELAY_MS * 4 + 60_000) throw new Error("the reply did not end");
  await new Promise((r) => setTimeout(r, 250));
}
const finalChars = samples[samples.length - 1].chars;
const tokenAt = (s) => (s.chars / finalChars) * TOKENS;

console.log(
  `${TOKENS} tokens, one every ${DELAY_MS} ms; main-thread time per token in each stretch (µs):`,
);
console.log("  tokens          task   script  layout  style");
for (let from = 0; from < TOKENS; from += STRETCH) {
  const inside = samples.filter((s) => tokenAt(s) >= from && tokenAt(s) <= from + STRETCH);
  if (inside.length < 2) continue;
  const [a, b] = [inside[0], inside[inside.length - 1]];
  const n = tokenAt(b) - tokenAt(a);
  const per = (k) => (((b.m[k] - a.m[k]) / n) * 1e6).toFixed(1).padStart(7);
  console.log(
    `  ${String(from).padStart(6)}–${String(from + STRETCH).padEnd(6)} ${per("TaskDuration")} ${per("ScriptDuration")} ${per("LayoutDuration")} ${per("RecalcStyleDuration")}`,
  );
}
console.log("per frame (ms), from a 2 s trace at:");
console.log("  tokens   frames    style layout prepaint paint");
for (const t of traces) console.log(`  ${String(Math.round(tokenAt(t))).padStart(6)}   ${t.work}`);
const last = samples[samples.length - 1];
console.log(
  `whole reply: ${(last.m.TaskDuration - samples[0].m.TaskDuration).toFixed(2)} s of main-thread time over ${((last.at - samples[0].at) / 1000).toFixed(1)} s; page errors: ${errors.length}`,
);
for (const e of errors) console.log(`  ${e}`);
await close();
if (errors.length) process.exit(1);
