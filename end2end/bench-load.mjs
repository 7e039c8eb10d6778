// Many people at once against the release build (issue 27), driven by scripts/bench.sh: at each
// level N, N sends at once through `send_message` as the page makes them (each a new
// conversation), the same N requests straight to the fake provider for its own figures, the
// server's CPU, memory and database writes read from /proc, and Stop → the provider's connection
// closed (the fake records the moment). The same again in accounts mode at the `--accounts`
// levels, each send made by a person of its own named by a trusted proxy's header (each person's
// first send signs them up). Then the chat page's first load in headless Chromium
// (end2end/first-load.mjs). Prints one table with the budgets' pass/fail and writes the figures as
// JSON.
//   node end2end/bench-load.mjs --levels 1,100,1000 --accounts 1000 --port 5830 --json bench.json
// Bounded: the levels are given, every burst has a time limit, everything is on 127.0.0.1.
import { request, Agent } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { configureFake, startFake, startRill } from "./bench-server.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const levelList = (text) => (text ? text.split(",").map(Number) : []);
const LEVELS = levelList(option("--levels", "1,100,1000"));
const ACCOUNT_LEVELS = levelList(option("--accounts", ""));
// The header a trusted proxy names the signed-in person in (accounts mode).
const PERSON_HEADER = "x-forwarded-user";
const PORT = Number(option("--port", "5830"));
const JSON_OUT = option("--json", "bench.json");
// Stop probes at a level: turns stopped one after another while the others stream.
const STOP_PROBES = 20;
// The provider: 100 tokens, 300 ms to the first, then 20 ms each.
const PACE = { tokens: 100, first_token_delay_ms: 300, token_delay_ms: 20 };
const BURST_LIMIT_MS = 180_000;
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 30_000);
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
const now = () => performance.timeOrigin + performance.now();

/** POSTs `body` as JSON and calls `onLine` for each line of the streamed answer; resolves with
 *  the status once the answer ends. */
function post(url, body, onLine, headers = {}) {
  return new Promise((resolve) => {
    const req = request(url, { method: "POST", agent, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let rest = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        rest += chunk;
        let at;
        while ((at = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, at);
          rest = rest.slice(at + 1);
          if (line) onLine(line);
        }
      });
      res.on("end", () => resolve(res.statusCode));
      res.on("error", () => resolve(0));
    });
    req.on("error", () => resolve(0));
    req.setTimeout(BURST_LIMIT_MS, () => req.destroy());
    req.end(JSON.stringify(body));
  });
}

/** One request straight to the provider: first token and whole reply, in ms from its start. */
async function providerOne(fakeUrl) {
  const started = now();
  let first;
  let done = false;
  const status = await post(
    `${fakeUrl}/v1/chat/completions`,
    { model: "fake-model", stream: true, messages: [{ role: "user", content: "hello" }] },
    (line) => {
      if (!line.startsWith("data: ")) return;
      if (line === "data: [DONE]") return void (done = true);
      const delta = JSON.parse(line.slice(6)).choices?.[0]?.delta?.content;
      if (delta && first === undefined) first = now() - started;
    },
  );
  return { ok: status === 200 && done && first !== undefined, first, whole: now() - started };
}

/** One send as the page makes it, read to `finished`. `onFirst` gets the turn (its id and who
 *  sent it, as the headers to stop it with) once its first token arrived. In accounts mode
 *  (`accounts`) send `i` is made by a person of its own. */
async function rillOne(url, i, onFirst, accounts = false) {
  const headers = accounts ? { [PERSON_HEADER]: `person-${i}` } : {};
  const turnId = crypto.randomUUID();
  const started = now();
  let first;
  let outcome;
  const status = await post(
    `${url}/api/send_message`,
    { turn_id: turnId, conversation_id: null, text: `Hello ${i}`, model: null },
    (line) => {
      const parsed = JSON.parse(line);
      if (parsed.line !== "event") return;
      const { type } = parsed.event;
      if (type === "delta" && first === undefined) {
        first = now() - started;
        onFirst?.({ turnId, headers });
      }
      if (type === "finished") outcome = parsed.event.status;
    },
    headers,
  );
  return { ok: status === 200 && outcome === "complete", outcome, status, first, whole: now() - started };
}

/** `n` of `one` at once, within the burst's time limit. */
async function burst(n, one) {
  const all = Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${n} at once did not end within ${BURST_LIMIT_MS} ms`)), BURST_LIMIT_MS);
  });
  try {
    return await Promise.race([all, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** The server's resident memory (bytes), CPU time (ms) and bytes it caused to be written to storage. */
function sample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime (fields 14 and 15 of the line; clock ticks, 100 a second on Linux).
  const cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  const written = Number(/write_bytes:\s+(\d+)/.exec(io)[1]);
  return { rss, cpuMs, written };
}

const percentile = (xs, p) => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Stops `turns` one after another (each once it has shown a token) and returns, for each, the
 *  ms from asking to stop to the provider seeing its connection closed. */
async function stopProbes(url, fakeUrl, turns) {
  const gaps = [];
  for await (const { turnId, headers } of turns) {
    const seen = await fakeDisconnects(fakeUrl);
    const asked = now();
    await post(`${url}/api/stop_turn`, { turn_id: turnId }, () => {}, headers);
    // A turn that ended before its Stop arrived closes nothing: it is not counted.
    const until = now() + 1_000;
    while (now() < until) {
      const after = await fakeDisconnects(fakeUrl);
      if (after.length > seen.length) {
        gaps.push(after[after.length - 1].at_unix_ms - asked);
        break;
      }
      await sleep(10);
    }
  }
  return gaps;
}

async function fakeDisconnects(fakeUrl) {
  const log = await (await fetch(`${fakeUrl}/_fake/log`)).json();
  return log.disconnects;
}

/** Turn ids as their first tokens arrive, `count` of them, as an async iterable. */
function firstTokens(count) {
  const queue = [];
  let wake;
  return {
    push(turn) {
      if (queue.length + this.taken >= count) return;
      queue.push(turn);
      wake?.();
    },
    taken: 0,
    async *[Symbol.asyncIterator]() {
      while (this.taken < count) {
        if (queue.length === 0) await new Promise((r) => (wake = r));
        this.taken++;
        yield queue.shift();
      }
    },
  };
}

async function level(n, fakeUrl, accounts) {
  const provider = await burst(n, () => providerOne(fakeUrl));
  // The fake's record of requests is read after each Stop: keep it to this level's.
  await fetch(`${fakeUrl}/_fake/reset_log`, { method: "POST" });
  const dir = mkdtempSync(join(tmpdir(), "rill-bench-"));
  const rill = await startRill(PORT, join(dir, "rill.db"), fakeUrl, {
    RILL_MAX_RUNNING_PER_USER: "1000000",
    RILL_MAX_STREAMS_PER_USER: "1000000",
    RILL_MAX_CONNECTIONS: "100000",
    RILL_MAX_CONNECTIONS_PER_ADDRESS: "100000",
    RILL_ALLOW_UNPRICED_MODELS: "yes",
    RUST_LOG: "error",
    ...(accounts ? { RILL_AUTH: "accounts", RILL_SSO_HEADER: PERSON_HEADER, RILL_TRUSTED_PROXIES: "127.0.0.1" } : {}),
  });
  try {
    // One turn first, so that what is measured is the burst, not the first request's set-up.
    await rillOne(rill.url, -1, undefined, accounts);
    await sleep(1_000);
    const idle = sample(rill.pid);
    let peak = idle.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, sample(rill.pid).rss)), 50);
    const before = sample(rill.pid);
    const probes = n >= 1000 ? firstTokens(STOP_PROBES) : undefined;
    const burstDone = burst(n, (i) => rillOne(rill.url, i, (t) => probes?.push(t), accounts));
    const stopsUnderLoad = probes ? stopProbes(rill.url, fakeUrl, probes) : Promise.resolve([]);
    const [sends, loadedStops] = await Promise.all([burstDone, stopsUnderLoad]);
    const after = sample(rill.pid);
    clearInterval(sampler);
    // The probes were stopped on purpose: they are neither failures nor replies measured.
    const measured = sends.filter((s) => s.outcome !== "stopped");
    const stoppedOnPurpose = sends.length - measured.length;
    const failed = measured.filter((s) => !s.ok).length;
    // Memory handed back: the lowest resident size in the 30 s after the burst, and when it was
    // first back within 1.5× idle.
    let settled = after.rss;
    let backAfter = after.rss <= 1.5 * idle.rss ? 0 : null;
    const settleFrom = now();
    const settling = [];
    while (now() < settleFrom + SETTLE_MS) {
      await sleep(500);
      const rss = sample(rill.pid).rss;
      settling.push(Math.round(rss / 1e5) / 10);
      settled = Math.min(settled, rss);
      if (backAfter === null && rss <= 1.5 * idle.rss) backAfter = now() - settleFrom;
    }
    const idleStops = n === 1 ? await stopProbes(rill.url, fakeUrl, idleProbes(rill.url, STOP_PROBES)) : [];
    const ok = (xs) => xs.filter((s) => s.ok);
    return {
      at_once: n,
      accounts,
      provider: {
        failed: provider.filter((s) => !s.ok).length,
        first_p50: percentile(ok(provider).map((s) => s.first), 50),
        first_p99: percentile(ok(provider).map((s) => s.first), 99),
        whole_p50: percentile(ok(provider).map((s) => s.whole), 50),
        whole_p99: percentile(ok(provider).map((s) => s.whole), 99),
      },
      rill: {
        sends: measured.length,
        stopped_on_purpose: stoppedOnPurpose,
        failed,
        first_failure: measured.find((s) => !s.ok) ?? null,
        first_p50: percentile(ok(measured).map((s) => s.first), 50),
        first_p99: percentile(ok(measured).map((s) => s.first), 99),
        whole_p50: percentile(ok(measured).map((s) => s.whole), 50),
        whole_p99: percentile(ok(measured).map((s) => s.whole), 99),
        cpu_ms_per_answer: (after.cpuMs - before.cpuMs) / n,
        db_bytes_per_answer: (after.written - before.written) / n,
        idle_mb: idle.rss / 1e6,
        peak_mb: peak / 1e6,
        after_30s_mb: settled / 1e6,
        back_within_ms: backAfter,
        settling_mb: settling,
        stop_idle_ms: idleStops,
        stop_loaded_ms: loadedStops,
      },
    };
  } finally {
    await rill.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The chat page's first load in bytes on the wire (end2end/first-load.mjs, headless Chromium,
 *  empty cache) from a server of its own; `null` when it could not be measured (no Chromium, no
 *  release site), which is said. */
async function firstLoadBytes(fakeUrl) {
  const dir = mkdtempSync(join(tmpdir(), "rill-bench-"));
  const rill = await startRill(PORT, join(dir, "rill.db"), fakeUrl, { RUST_LOG: "error" });
  try {
    const script = join(dirname(fileURLToPath(import.meta.url)), "first-load.mjs");
    const run = spawnSync(process.execPath, [script, `${rill.url}/`], { encoding: "utf8", timeout: 120_000 });
    const total = /^\s*(\d+) B\s+total on the wire/m.exec(run.stdout ?? "");
    if (run.status !== 0 || !total) {
      console.error(`first load not measured: ${(run.stderr || run.stdout || String(run.error)).trim().slice(0, 500)}`);
      return null;
    }
    return Number(total[1]);
  } finally {
    await rill.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Turn ids of `count` sends made one after another, each yielded once it has shown a token
 *  (the server otherwise idle). */
async function* idleProbes(url, count) {
  for (let i = 0; i < count; i++) {
    const shown = firstTokens(1);
    const send = rillOne(url, `probe ${i}`, (t) => shown.push(t));
    for await (const turn of shown) yield turn;
    await send;
  }
}

const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "—");
const pass = (ok) => (ok ? "pass" : "FAIL");

const fakePort = PORT + 1;
const fakeUrl = await startFake(fakePort);
await configureFake(fakeUrl, PACE);
const results = [];
for (const n of LEVELS) {
  console.error(`${n} at once…`);
  results.push(await level(n, fakeUrl, false));
}
for (const n of ACCOUNT_LEVELS) {
  console.error(`${n} at once, accounts mode, a person each…`);
  results.push(await level(n, fakeUrl, true));
}
const firstLoad = await firstLoadBytes(fakeUrl);

// The budgets of issue 27, each where it applies.
const budgets = [];
for (const r of results) {
  const mode = r.accounts ? " (accounts)" : "";
  const over = r.rill.first_p99 - r.provider.first_p99;
  const firstBudget = { 100: 15, 1000: 50, 5000: 250 }[r.at_once];
  if (firstBudget) budgets.push([`first token over the provider's, p99, ${r.at_once} at once${mode}`, `${fmt(over)} ms`, `≤ ${firstBudget} ms`, over <= firstBudget]);
  if (r.at_once === 5000) budgets.push([`failed sends, 5,000 at once${mode}`, `${r.rill.failed}`, "0", r.rill.failed === 0]);
  if (r.at_once === 100 || r.at_once === 1000)
    budgets.push([`server CPU per answer, ${r.at_once} at once${mode}`, `${fmt(r.rill.cpu_ms_per_answer, 1)} ms`, "≤ 3 ms", r.rill.cpu_ms_per_answer <= 3]);
  const memBudget = { 100: 40, 1000: 100, 5000: 250 }[r.at_once];
  if (memBudget) budgets.push([`memory peak, ${r.at_once} at once${mode}`, `${fmt(r.rill.peak_mb)} MB`, `≤ ${memBudget} MB`, r.rill.peak_mb <= memBudget]);
  if (r.at_once >= 100)
    budgets.push([`memory 30 s after ${r.at_once} at once${mode}`, `${fmt(r.rill.after_30s_mb)} MB (idle ${fmt(r.rill.idle_mb)})`, "≤ 1.5× idle", r.rill.after_30s_mb <= 1.5 * r.rill.idle_mb]);
  if (r.rill.stop_idle_ms.length)
    budgets.push(["Stop → provider closed, p99, idle", `${fmt(percentile(r.rill.stop_idle_ms, 99), 1)} ms`, "≤ 5 ms", percentile(r.rill.stop_idle_ms, 99) <= 5]);
  if (r.rill.stop_loaded_ms.length && r.at_once === 1000)
    budgets.push([`Stop → provider closed, p99, 1,000 at once${mode}`, `${fmt(percentile(r.rill.stop_loaded_ms, 99), 1)} ms`, "≤ 20 ms", percentile(r.rill.stop_loaded_ms, 99) <= 20]);
}

const rows = [
  ["at once", "people", "provider first p50/p99", "Rill first p50/p99", "over provider p50/p99", "whole reply p50/p99 (provider / Rill)", "failed sends", "CPU per answer", "memory idle / peak / 30 s after", "db bytes per answer", "Stop → closed p50/p99"],
  ...results.map((r) => {
    const stops = [...r.rill.stop_idle_ms, ...r.rill.stop_loaded_ms];
    return [
      fmt(r.at_once),
      r.accounts ? "one each (accounts)" : "one (single-user)",
      `${fmt(r.provider.first_p50)} / ${fmt(r.provider.first_p99)} ms`,
      `${fmt(r.rill.first_p50)} / ${fmt(r.rill.first_p99)} ms`,
      `${fmt(r.rill.first_p50 - r.provider.first_p50)} / ${fmt(r.rill.first_p99 - r.provider.first_p99)} ms`,
      `${fmt(r.provider.whole_p50)}/${fmt(r.provider.whole_p99)} / ${fmt(r.rill.whole_p50)}/${fmt(r.rill.whole_p99)} ms`,
      `${r.rill.failed}/${r.rill.sends}`,
      `${fmt(r.rill.cpu_ms_per_answer, 1)} ms`,
      `${fmt(r.rill.idle_mb)} / ${fmt(r.rill.peak_mb)} / ${fmt(r.rill.after_30s_mb)} MB`,
      fmt(r.rill.db_bytes_per_answer),
      stops.length ? `${fmt(percentile(stops, 50), 1)} / ${fmt(percentile(stops, 99), 1)} ms` : "—",
    ];
  }),
];
const table = (rs) => rs.map((r, i) => `| ${r.join(" | ")} |` + (i === 0 ? `\n|${r.map(() => "---").join("|")}|` : "")).join("\n");
console.log(table(rows));
console.log();
console.log(table([["budget", "measured", "limit", ""], ...budgets.map(([what, got, limit, ok]) => [what, got, limit, pass(ok)])]));
console.log();
console.log(firstLoad === null ? "first load: not measured (see above)" : `first load of the chat page: ${fmt(firstLoad)} B on the wire`);
writeFileSync(JSON_OUT, JSON.stringify({ pace: PACE, results, first_load_bytes: firstLoad, budgets: budgets.map(([what, measured, limit, ok]) => ({ what, measured, limit, ok })) }, null, 2));
console.error(`figures written to ${JSON_OUT}`);
process.exit(0);
