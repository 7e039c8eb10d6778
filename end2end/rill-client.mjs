// Rill's page API as a browser uses it (JSON server functions, the session's cookies, the NDJSON
// event streams), for the scripts that check a built image or a set of replicas from outside.
import { randomUUID } from "node:crypto";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Prints the check's failure and exits with 1. */
export function failWith(name) {
  return (message) => {
    console.error(`${name}: ${message}`);
    process.exit(1);
  };
}

/**
 * One person's browser: every cookie the server set (the session, and the browser it now knows),
 * sent to whichever server a request names (`base`, by default the one it was made for), as a
 * browser sends them to a balancer whatever replica answers.
 */
export class Browser {
  constructor(base) {
    this.base = base;
    this.cookies = new Map();
  }

  async api(endpoint, body, base = this.base) {
    const cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
    const response = await fetch(`${base}/api/${endpoint}`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie },
      body: JSON.stringify(body),
    });
    for (const set of response.headers.getSetCookie()) {
      const pair = set.split(";")[0];
      const equals = pair.indexOf("=");
      if (equals > 0) this.cookies.set(pair.slice(0, equals), pair.slice(equals + 1));
    }
    return response;
  }

  /** The answer's status: 200 when signed in. */
  async signIn(username, password) {
    return (await this.api("sign_in", { username, password })).status;
  }

  async json(endpoint, body, base) {
    return (await this.api(endpoint, body, base)).json();
  }

  /** Sends a message; the turn's events as they come (see `events`). */
  async send(text, conversationId = null, base = this.base) {
    const turnId = randomUUID();
    const body = { turn_id: turnId, conversation_id: conversationId, text, model: null };
    return Object.assign(await events(await this.api("send_message", body, base)), { turnId });
  }

  /** Re-attaches to a turn's run after `afterSeq`, as a second tab or a reload does. */
  async attach(turnId, run, afterSeq, base = this.base) {
    const body = { turn_id: turnId, run, after_seq: afterSeq };
    return Object.assign(await events(await this.api("turn_events", body, base)), { turnId });
  }

  async continueReply(turnId, fromRun, base = this.base) {
    const body = { turn_id: turnId, from_run: fromRun };
    return Object.assign(await events(await this.api("continue_reply", body, base)), { turnId });
  }
}

/** The lines of an NDJSON stream read from `reader`, parsed, until it ends or the connection goes. */
export async function* lines(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n")) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      yield JSON.parse(line);
    }
    let chunk;
    try {
      chunk = await reader.read();
    } catch {
      return; // the connection was closed (the server went away)
    }
    if (chunk.done) return;
    buffer += decoder.decode(chunk.value, { stream: true });
  }
}

/**
 * A streamed answer's events: `next()` gives each (null once the stream is over or the
 * connection was lost), `until(predicate)` reads up to the first that matches, `events` keeps
 * every one read and `lastSeq()` the number of the last (what a re-attach starts after).
 */
async function events(response) {
  if (response.status !== 200) return { status: response.status, events: [] };
  const reader = response.body.getReader();
  const incoming = lines(reader);
  const seen = [];
  let lastSeq = 0;
  async function next() {
    for (;;) {
      const { value: line, done } = await incoming.next();
      if (done) return null;
      if (line.line === "event") {
        seen.push(line.event);
        lastSeq = line.seq;
        return line.event;
      }
    }
  }
  async function until(predicate) {
    for (let event = await next(); event; event = await next()) {
      if (predicate(event)) return event;
    }
    return null;
  }
  const cancel = () => reader.cancel().catch(() => {});
  return { status: 200, events: seen, next, until, cancel, lastSeq: () => lastSeq };
}

export const finished = (turn) => turn.until((e) => e.type === "finished");
export const conversationOf = (turn) => turn.events.find((e) => e.type === "started")?.conversation_id;
export const textOf = (turn) => turn.events.filter((e) => e.type === "delta").map((e) => e.text).join("");

/** The fake provider's control endpoints. */
export function fakeProvider(base, fail) {
  return {
    async configure(config) {
      const response = await fetch(`${base}/_fake/config`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(config),
      });
      if (!response.ok) fail(`the fake refused its config: ${response.status}`);
    },
    log: async () => (await fetch(`${base}/_fake/log`)).json(),
  };
}
