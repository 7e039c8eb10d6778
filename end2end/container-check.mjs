// The API-level checks scripts/test-container.sh runs against a Rill container, as a browser
// would make them (JSON server functions, a session cookie, the NDJSON event stream).
//   node end2end/container-check.mjs turn-stop-metrics | data-kept | start-long-turn | drained JSON | local-model
// Settings: RILL_URL, FAKE_URL, RILL_METRICS_TOKEN, RILL_PASSWORD (the admin `root`'s).
import { Browser, conversationOf, failWith, fakeProvider, finished, sleep, textOf } from "./rill-client.mjs";

const rill = process.env.RILL_URL;
const fail = failWith("container-check");
const browser = new Browser(rill);
const fake = fakeProvider(process.env.FAKE_URL, fail);
const api = (endpoint, body) => browser.api(endpoint, body);
const send = (text, conversationId) => browser.send(text, conversationId);

async function signIn() {
  const status = await browser.signIn("root", process.env.RILL_PASSWORD);
  if (status !== 200) fail(`sign-in answered ${status}`);
}

async function metrics(token) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return fetch(`${rill}/metrics`, { headers });
}

function sample(text, name, labels) {
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

async function turnStopMetrics() {
  await signIn();
  await fake.configure({ tokens: 40, token_delay_ms: 20 });
  const turn = await send("Hello from the container test");
  if (turn.status !== 200) fail(`send answered ${turn.status}`);
  const end = await finished(turn);
  const text = textOf(turn);
  if (end?.status !== "complete" || text.length === 0) fail(`the turn ended ${JSON.stringify(end)}`);
  console.log(`streamed turn: ${turn.events.length} events, ${text.length} characters, complete`);

  await fake.configure({ tokens: 400, token_delay_ms: 30 });
  const before = (await fake.log()).disconnects.length;
  const long = await send("Stop me", conversationOf(turn));
  await long.until((e) => e.type === "delta");
  const stop = await api("stop_turn", { turn_id: long.turnId });
  if (stop.status !== 200) fail(`stop answered ${stop.status}`);
  const stopped = await finished(long);
  if (stopped?.status !== "stopped") fail(`the stopped turn ended ${JSON.stringify(stopped)}`);
  let cut = false;
  for (let i = 0; i < 40 && !cut; i++) {
    cut = (await fake.log()).disconnects.length === before + 1;
    if (!cut) await sleep(50);
  }
  if (!cut) fail("Stop did not close the upstream request");
  console.log("Stop: the reply is stopped and the provider saw the client go");

  if ((await metrics()).status !== 401) fail("/metrics answered without a token");
  const response = await metrics(process.env.RILL_METRICS_TOKEN);
  if (response.status !== 200) fail(`/metrics answered ${response.status} with the token`);
  const text2 = await response.text();
  const model = ['provider="fake"'];
  const complete = sample(text2, "rill_turns_finished_total", [...model, 'status="complete"']);
  const stoppedCount = sample(text2, "rill_turns_finished_total", [...model, 'status="stopped"']);
  if (complete < 1 || stoppedCount < 1) fail(`/metrics: complete ${complete}, stopped ${stoppedCount}`);
  console.log(`/metrics: ${complete} complete and ${stoppedCount} stopped turn(s) counted`);
}

async function dataKept() {
  await signIn();
  const list = await (await api("list_conversations", {})).json();
  if (!Array.isArray(list) || list.length < 1) fail(`conversations after replacement: ${JSON.stringify(list)}`);
  const view = await (await api("get_conversation", { id: list[0].id })).json();
  if (view.messages.length < 4) fail(`the conversation lost messages: ${view.messages.length}`);
  console.log(`after docker rm + run: ${list.length} conversation(s), ${view.messages.length} messages`);
}

async function startLongTurn() {
  await signIn();
  // Each request takes the fake's settings as it arrives: one reply inside the shipped 8 s
  // grace (2 s), one far beyond it (50 s).
  await fake.configure({ tokens: 40, token_delay_ms: 50 });
  const short = await send("A reply that fits the grace");
  await short.until((e) => e.type === "delta");
  await fake.configure({ tokens: 1000, token_delay_ms: 50 });
  const long = await send("A reply longer than the grace");
  await long.until((e) => e.type === "delta");
  // The shell stops the container once this line is out.
  console.log(JSON.stringify({ short: conversationOf(short), long: conversationOf(long) }));
  let refused = null;
  for (let i = 0; i < 200 && refused === null; i++) {
    const ready = await fetch(`${rill}/readyz`).catch(() => null);
    if (ready?.status === 503) {
      const late = await send("Too late");
      refused = late.status;
    } else {
      await sleep(25);
    }
  }
  if (refused !== 503) fail(`a send during the drain answered ${refused}`);
  const shortEnd = await finished(short);
  if (shortEnd?.status !== "complete") fail(`the reply inside the grace ended ${JSON.stringify(shortEnd)}`);
  const longEnd = await finished(long);
  if (longEnd !== null && longEnd.status !== "interrupted") fail(`the long reply ended ${JSON.stringify(longEnd)}`);
  console.error("drain: /readyz went 503, a new send got 503, the short reply completed");
}

async function drained(json) {
  const { short, long } = JSON.parse(json);
  await signIn();
  const last = async (id) => (await (await api("get_conversation", { id })).json()).messages.at(-1);
  const a = await last(short);
  const b = await last(long);
  if (a.outcome.status !== "complete") fail(`the short reply was stored ${a.outcome.status}`);
  if (b.outcome.status !== "interrupted" || b.content.length === 0) {
    fail(`the long reply was stored ${b.outcome.status} with ${b.content.length} characters`);
  }
  console.log(`after docker stop: short reply complete, long reply interrupted with ${b.content.length} characters kept`);
}

async function localModel() {
  await signIn();
  const models = await (await api("list_models", {})).json();
  const turn = await send("Say hello in five words.");
  if (turn.status !== 200) fail(`send answered ${turn.status}`);
  const end = await finished(turn);
  const text = textOf(turn);
  if (end?.status !== "complete" || text.trim().length === 0) fail(`the local reply ended ${JSON.stringify(end)}`);
  console.log(`built-in model (${JSON.stringify(models).slice(0, 80)}…) answered ${text.length} characters`);
}

const [mode, arg] = process.argv.slice(2);
const modes = {
  "turn-stop-metrics": turnStopMetrics,
  "data-kept": dataKept,
  "start-long-turn": startLongTurn,
  drained: () => drained(arg),
  "local-model": localModel,
};
if (!modes[mode]) fail(`unknown mode ${mode}`);
await modes[mode]();
