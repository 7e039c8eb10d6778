// The checks scripts/test-replicas.sh runs against compose.replicas.yaml brought up on loopback:
// a person using Rill through the balancer while its replicas are stopped, killed and restarted.
//   node end2end/replicas-check.mjs use | start-long N | after-kill JSON | page PNG | rejoined N
//                                   | start-drain N | drained JSON
// Settings: RILL_URL (the balancer), REPLICA_URLS (each replica, comma-separated, in order),
// FAKE_URL, RILL_PASSWORD (the admin `root`'s), RILL_METRICS_TOKEN, RILL_COOKIE_JAR (a file
// that keeps the session between checks).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { launchHeadless } from "./headless.mjs";
import { Browser, conversationOf, failWith, fakeProvider, finished, lines, sleep, textOf } from "./rill-client.mjs";

const fail = failWith("replicas-check");
const balancer = process.env.RILL_URL;
const replicas = process.env.REPLICA_URLS.split(",");
const fake = fakeProvider(process.env.FAKE_URL, fail);
const browser = new Browser(balancer);

/** Signs in once; each later check goes on with that session, as one browser would. */
async function signIn() {
  const jar = process.env.RILL_COOKIE_JAR;
  if (existsSync(jar)) {
    browser.cookies = new Map(JSON.parse(readFileSync(jar, "utf8")));
    return;
  }
  const status = await browser.signIn("root", process.env.RILL_PASSWORD);
  if (status !== 200) fail(`sign-in through the balancer answered ${status}`);
  writeFileSync(jar, JSON.stringify([...browser.cookies]));
}

/** Sends and reads to the end; fails unless the reply is complete with text. */
async function turn(text, conversationId = null, base = balancer) {
  const started = performance.now();
  const sent = await browser.send(text, conversationId, base);
  if (sent.status !== 200) fail(`a send through ${base} answered ${sent.status}`);
  await sent.until((e) => e.type === "delta");
  const firstText = performance.now() - started;
  const end = await finished(sent);
  if (end?.status !== "complete" || textOf(sent).length === 0) {
    fail(`a reply through ${base} ended ${JSON.stringify(end)}`);
  }
  return { conversation: conversationOf(sent), firstText, whole: performance.now() - started };
}

const lastMessage = async (id) => (await browser.json("get_conversation", { id })).messages.at(-1);

async function turnsFinishedBy(base) {
  const response = await fetch(`${base}/metrics`, {
    headers: { authorization: `Bearer ${process.env.RILL_METRICS_TOKEN}` },
  });
  if (response.status !== 200) fail(`${base}/metrics answered ${response.status}`);
  return (await response.text())
    .split("\n")
    .filter((l) => l.startsWith("rill_turns_finished_total{"))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

async function use() {
  await signIn();
  await fake.configure({ tokens: 20, token_delay_ms: 10 });

  // One conversation of nine turns through the balancer: round-robin gives each replica three,
  // and each rebuilds the whole history from the shared store.
  const first = await turn("The first question");
  const timings = [first];
  for (let i = 2; i <= 9; i++) timings.push(await turn(`Question ${i}`, first.conversation));
  const view = await browser.json("get_conversation", { id: first.conversation });
  if (view.messages.length !== 18) fail(`the conversation holds ${view.messages.length} messages, not 18`);
  const requests = (await fake.log()).requests;
  const sentHistory = requests.at(-1).messages.filter((m) => m.role !== "system").length;
  if (sentHistory !== 17) fail(`the ninth turn sent ${sentHistory} messages to the provider, not 17`);
  const served = await Promise.all(replicas.map(turnsFinishedBy));
  if (served.some((n) => n < 1)) fail(`turns finished per replica: ${served.join(", ")}`);
  const ms = (x) => `${x.toFixed(0)} ms`;
  console.log(
    `9 turns of one conversation through the balancer, all complete; turns per replica ${served.join(", ")}; ` +
      `first text p50 ${ms(percentile(timings.map((t) => t.firstText), 50))}, ` +
      `whole reply p50 ${ms(percentile(timings.map((t) => t.whole), 50))}; the last turn sent all 17 earlier messages`,
  );

  // A second tab on another replica follows the conversation while a reply runs on the first.
  await fake.configure({ tokens: 60, token_delay_ms: 20 });
  const follow = await browser.api(
    "conversation_events",
    { conversation_id: first.conversation, from_turn: null },
    replicas[1],
  );
  if (follow.status !== 200) fail(`following through the second replica answered ${follow.status}`);
  const followed = readLines(follow);
  const running = await browser.send("Followed from another replica", first.conversation, replicas[0]);
  const mine = await finished(running);
  const seen = await followed.untilFinished(running.turnId);
  if (mine?.status !== "complete" || seen?.status !== "complete" || followed.text(running.turnId) !== textOf(running)) {
    fail(`the second tab saw ${JSON.stringify(seen)} with other text than the sender's`);
  }
  followed.cancel();
  console.log("a tab on the second replica followed a reply written by the first, word for word");

  // Started through the first replica, re-attached through the second, stopped through the third.
  await fake.configure({ tokens: 400, token_delay_ms: 30 });
  const before = (await fake.log()).disconnects.length;
  const long = await browser.send("Stop me from elsewhere", first.conversation, replicas[0]);
  await long.until((e) => e.type === "delta");
  const run = long.events[0].run;
  const attached = await browser.attach(long.turnId, run, 0, replicas[1]);
  if (attached.status !== 200) fail(`re-attaching through the second replica answered ${attached.status}`);
  await attached.until((e) => e.type === "delta");
  const stopAt = performance.now();
  const stop = await browser.api("stop_turn", { turn_id: long.turnId }, replicas[2]);
  if (stop.status !== 200) fail(`Stop through the third replica answered ${stop.status}`);
  const [a, b] = await Promise.all([finished(long), finished(attached)]);
  if (a?.status !== "stopped" || b?.status !== "stopped") fail(`after Stop: ${JSON.stringify([a, b])}`);
  let closedAfter = null;
  for (let i = 0; i < 100 && closedAfter === null; i++) {
    const log = await fake.log();
    if (log.disconnects.length > before) closedAfter = performance.now() - stopAt;
    else await sleep(20);
  }
  if (closedAfter === null) fail("Stop through the third replica did not close the provider request");
  console.log(
    `a reply started through the first replica, re-attached through the second and stopped through ` +
      `the third: both streams ended stopped, the provider's connection closed ${ms(closedAfter)} after Stop was sent`,
  );
}

/** A conversation's event stream read in the background: each turn's text and end. */
function readLines(response) {
  const reader = response.body.getReader();
  const turns = new Map(); // turn id → { text, end }
  let done = false;
  (async () => {
    let current = null;
    for await (const line of lines(reader)) {
      if (line.line === "turn") {
        current = line.user.turn_id;
        turns.set(current, { text: "", end: null });
      } else if (line.line === "event" && current) {
        const turn = turns.get(current);
        if (line.event.type === "delta") turn.text += line.event.text;
        if (line.event.type === "finished") turn.end = line.event;
      }
    }
    done = true;
  })();
  return {
    async untilFinished(turnId) {
      for (let i = 0; i < 600; i++) {
        const turn = turns.get(turnId);
        if (turn?.end) return turn.end;
        if (done) return null;
        await sleep(50);
      }
      return null;
    },
    text: (turnId) => turns.get(turnId)?.text,
    cancel: () => reader.cancel().catch(() => {}),
  };
}

/**
 * Starts a reply on replica N with the fake set to `config`, prints it once its text flows (the
 * shell then kills or stops that replica), and gives how it ended (null: the connection went).
 */
async function startOn(n, text, config) {
  await signIn();
  await fake.configure(config);
  const turn = await browser.send(text, null, replicas[n]);
  if (turn.status !== 200) fail(`a send through replica ${n + 1} answered ${turn.status}`);
  await turn.until((e) => e.type === "delta");
  console.log(JSON.stringify({ turn: turn.turnId, conversation: conversationOf(turn), run: turn.events[0].run }));
  return finished(turn);
}

async function startLong(n) {
  const end = await startOn(n, "A reply its replica will not finish", { tokens: 2000, token_delay_ms: 20 });
  if (end !== null) fail(`the reply on the killed replica ended ${JSON.stringify(end)} instead of losing its connection`);
}

async function afterKill(json) {
  const { turn: turnId, conversation, run } = JSON.parse(json);
  const killedAt = performance.now();
  await signIn();
  await fake.configure({ tokens: 20, token_delay_ms: 10 });
  // Any replica marks the dead one's reply interrupted once its lease runs out.
  let last = null;
  for (let i = 0; i < 300; i++) {
    last = await lastMessage(conversation);
    if (last.outcome.status !== "streaming") break;
    await sleep(100);
  }
  const interruptedAfter = (performance.now() - killedAt) / 1000;
  if (last.outcome.status !== "interrupted" || last.content.length === 0) {
    fail(`the killed replica's reply is ${last.outcome.status} with ${last.content.length} characters`);
  }
  const kept = last.content.length;
  const continued = await browser.continueReply(turnId, run);
  if (continued.status !== 200) fail(`Continue through the balancer answered ${continued.status}`);
  const end = await finished(continued);
  if (end?.status !== "complete") fail(`the continued reply ended ${JSON.stringify(end)}`);
  const stored = await lastMessage(conversation);
  if (!stored.content.startsWith(last.content.slice(0, kept)) || stored.content.length <= kept) {
    fail("the continued reply does not go on from the interrupted text");
  }
  // Keep chatting: the balancer skips the dead replica.
  for (let i = 1; i <= 9; i++) await turn(`After the kill, question ${i}`);
  console.log(
    `after kill -9 of a replica mid-reply: its reply was interrupted with ${kept} characters ` +
      `${interruptedAfter.toFixed(1)} s later (checked through the balancer), Continue through the balancer ` +
      `completed it, and 9 more turns through the balancer all completed`,
  );
}

/**
 * A person in Chromium, through the balancer: signs in, sends, reads the reply as it streams,
 * reloads (another replica answers) and finds the conversation as it was; a screenshot to `png`.
 */
async function page(png) {
  const { page, close } = await launchHeadless("replicas");
  try {
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`${balancer}/`);
    await page.waitForURL(`${balancer}/signin`);
    await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
    await page.getByLabel("Username").fill("root");
    await page.getByLabel("Password").fill(process.env.RILL_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${balancer}/`);
    await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
    await fake.configure({ tokens: 40, token_delay_ms: 20 });
    const composer = page.getByRole("textbox", { name: "Message" });
    await composer.fill("Hello through the balancer");
    await composer.press("Enter");
    const reply = page.locator("li.message.assistant").last();
    await reply.and(page.locator('[data-status="complete"]')).waitFor({ timeout: 30_000 });
    const text = (await reply.locator(".content").textContent()) ?? "";
    await page.waitForURL(/\/c\//);
    await page.reload();
    await page.locator("html[data-hydrated]").waitFor({ state: "attached" });
    const again = (await page.locator("li.message.assistant").last().locator(".content").textContent()) ?? "";
    if (text.trim().length === 0 || again.trim() !== text.trim()) {
      fail(`the page showed ${JSON.stringify(text)} and after a reload ${JSON.stringify(again)}`);
    }
    if (errors.length > 0) fail(`errors in the page: ${errors.join("; ")}`);
    await page.screenshot({ path: png });
    console.log(`in Chromium through the balancer: signed in, a reply of ${text.trim().length} characters streamed, the same after a reload`);
  } finally {
    await close();
  }
}

async function rejoined(n) {
  await signIn();
  await fake.configure({ tokens: 20, token_delay_ms: 10 });
  const list = await browser.json("list_conversations", {}, replicas[n]);
  if (!Array.isArray(list) || list.length < 11) fail(`the restarted replica lists ${list.length} conversations`);
  for (let i = 1; i <= 3; i++) await turn(`On the restarted replica, question ${i}`, null, replicas[n]);
  console.log(`the restarted replica ${n + 1} lists all ${list.length} conversations and answers again`);
}

async function startDrain(n) {
  const end = await startOn(n, "A reply that fits the grace", { tokens: 60, token_delay_ms: 50 });
  if (end?.status !== "complete") fail(`the reply running at docker stop ended ${JSON.stringify(end)}`);
}

async function drained(json) {
  const { conversation } = JSON.parse(json);
  await signIn();
  const last = await lastMessage(conversation);
  if (last.outcome.status !== "complete") fail(`the drained replica's reply was stored ${last.outcome.status}`);
  await turn("After the drain");
  console.log("a replica stopped with a reply running finished it first; the balancer kept answering");
}

const [mode, arg] = process.argv.slice(2);
const modes = {
  use,
  "start-long": () => startLong(Number(arg)),
  "after-kill": () => afterKill(arg),
  page: () => page(arg),
  rejoined: () => rejoined(Number(arg)),
  "start-drain": () => startDrain(Number(arg)),
  drained: () => drained(arg),
};
if (!modes[mode]) fail(`unknown mode ${mode}`);
await modes[mode]();
