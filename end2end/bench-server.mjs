// What the measuring scripts share: a release server and the fake provider started for the run
// (stopped when the script ends), sending a turn as the page does, one timed HTTP exchange.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliDecompressSync, gunzipSync } from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const RILL_BIN = process.env.RILL_BIN ?? join(root, "target/release/rill");
export const SITE_ROOT = process.env.SITE_ROOT ?? join(root, "target/site");
export const FAKE_BIN = process.env.FAKE_BIN ?? join(root, "target/debug/fake-provider");

const children = [];
let stopping = false;
function start(bin, args, env) {
  if (!existsSync(bin)) throw new Error(`${bin} is missing (see the comment at the top)`);
  const child = spawn(bin, args, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, ...env } });
  child.on("exit", (code, signal) => {
    if (stopping || child.stopping) return;
    console.error(`${bin} ended (${code ?? signal}) before the measurements did`);
    process.exit(1);
  });
  children.push(child);
  return child;
}
async function waitForHttp(address) {
  for (let i = 0; i < 600; i++) {
    try {
      await fetch(address);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${address} did not come up`);
}
process.on("exit", () => {
  stopping = true;
  for (const child of children) child.kill("SIGTERM");
});

/** The fake provider on `port`, answering at once. */
export async function startFake(port) {
  start(FAKE_BIN, ["--port", String(port), "--tokens", "16", "--delay-ms", "0"], {});
  await waitForHttp(`http://127.0.0.1:${port}/v1/models`);
  return `http://127.0.0.1:${port}`;
}

/** Rill on `port` with the database `db`, the fake at `fakeUrl` its only model, limits raised
 *  for building; `stop()` ends it. */
export async function startRill(port, db, fakeUrl, env = {}) {
  const child = start(RILL_BIN, [], {
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    LEPTOS_SITE_ROOT: SITE_ROOT,
    RILL_DATABASE: db,
    RILL_OPENAI_COMPAT_URL: `${fakeUrl}/v1`,
    RILL_OPENAI_COMPAT_NAME: "fake",
    RILL_OPENAI_COMPAT_MODELS: "fake-model",
    RILL_LOCAL_MODEL: "off",
    RILL_TURNS_PER_MINUTE: "1000000",
    RILL_WRITES_PER_MINUTE: "1000000",
    RILL_MAX_RUNNING_PER_USER: "16",
    // First words as titles: a benchmark measures chats, not the title requests after them.
    RILL_PLAIN_TITLES: "yes",
    RUST_LOG: "warn",
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/healthz`);
  const stop = () =>
    new Promise((done) => {
      child.stopping = true;
      child.once("exit", done);
      child.kill("SIGTERM");
    });
  return { url, stop, pid: child.pid };
}

export async function configureFake(fakeUrl, config) {
  const answer = await fetch(`${fakeUrl}/_fake/config`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(config),
  });
  if (!answer.ok) throw new Error(`the fake provider refused its configuration: ${answer.status}`);
}

/** Sends one turn as the page does and reads it to its end; the conversation's id. */
export async function sendTurn(url, text, conversation) {
  const answer = await fetch(`${url}/api/send_message`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ turn_id: crypto.randomUUID(), conversation_id: conversation, text, model: null }),
  });
  if (!answer.ok) throw new Error(`send_message answered ${answer.status}: ${await answer.text()}`);
  let id = conversation;
  let finished = false;
  for (const line of (await answer.text()).split("\n")) {
    if (!line) continue;
    const parsed = JSON.parse(line);
    if (parsed.line !== "event") continue;
    if (parsed.event.type === "started") id = parsed.event.conversation_id;
    if (parsed.event.type === "finished") finished = true;
  }
  if (!id || !finished) throw new Error("a turn did not run to its end");
  return id;
}

/** One HTTP exchange: milliseconds to the whole body, bytes on the wire and decoded. */
export function exchange(url, method, path, body) {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const req = request(
      `${url}${path}`,
      {
        method,
        headers: {
          "accept-encoding": "br, gzip",
          ...(body ? { "content-type": "application/json" } : { accept: "text/html" }),
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const ms = performance.now() - started;
          const raw = Buffer.concat(chunks);
          const encoding = res.headers["content-encoding"];
          const decoded =
            encoding === "br" ? brotliDecompressSync(raw) : encoding === "gzip" ? gunzipSync(raw) : raw;
          if (res.statusCode !== 200) reject(new Error(`${path} answered ${res.statusCode}`));
          else resolvePromise({ ms, wire: raw.length, decoded: decoded.length, body: decoded });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
