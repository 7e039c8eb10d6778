import { expect, type Page } from "@playwright/test";
import { fakeUrl } from "../playwright.config";

/** What the fake provider does next (see crates/fake-provider's FakeConfig); unset fields reset. */
export type FakeConfig = {
  tokens: number;
  token_delay_ms: number;
  first_token_delay_ms?: number;
  cached_tokens?: number;
  cache_write_tokens?: number;
  /// These tokens instead of the word list (`tokens` must be their count).
  script?: string[];
  /// Reasoning tokens streamed before the text (OpenAI-compatible: `reasoning_content`).
  thinking?: string[];
  stall_after?: number;
  fail_status?: number;
  fail_times?: number;
  /// A title request's answer (default: the question's first line), its failure, its delay.
  title?: string;
  title_fail_status?: number;
  title_delay_ms?: number;
};

// The fake's reply, token by token (crates/fake-provider's `token` and `expected_text`).
const WORDS = ["Hello", " wörld", ",", " this", " is", " a", " fäke", " 日本語", " reply", " 🌍", " —", " ok."];
export function fakeToken(i: number): string {
  const word = WORDS[i % WORDS.length];
  return i % WORDS.length === WORDS.length - 1 ? `${word}[${i}]` : word;
}
export function fakeText(tokens: number): string {
  return Array.from({ length: tokens }, (_, i) => fakeToken(i)).join("");
}

export async function configureFake(page: Page, config: FakeConfig) {
  const response = await page.request.post(`${fakeUrl}/_fake/config`, { data: config });
  expect(response.ok()).toBeTruthy();
}

export type FakeLog = {
  requests: { messages?: unknown[] }[];
  calls: { path: string; protocol: string }[];
  disconnects: { tokens_sent: number }[];
};

export async function fakeLog(page: Page): Promise<FakeLog> {
  return (await page.request.get(`${fakeUrl}/_fake/log`)).json();
}

export async function openNewChat(page: Page, url = "/") {
  await page.goto(url);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
}

export const composer = (page: Page) => page.getByRole("textbox", { name: "Message" });
export const lastReply = (page: Page) => page.locator("li.message.assistant").last();
/// The reply's text as shown. The fake provider's text has no markdown syntax, so this is its
/// text, less the line end the rendered paragraph adds.
export const replyText = async (page: Page) =>
  ((await lastReply(page).locator(".content").textContent()) ?? "").trimEnd();

export async function send(page: Page, text: string) {
  await composer(page).fill(text);
  await composer(page).press("Enter");
}

/// Sends `text` through the API as the page would, to a server at `url` (a test's own), and reads
/// the turn to its end; returns its conversation.
export async function sendTurn(page: Page, url: string, text: string, conversation: string | null = null): Promise<string> {
  const response = await page.request.post(`${url}/api/send_message`, {
    data: { turn_id: crypto.randomUUID(), conversation_id: conversation, text, model: null },
  });
  expect(response.ok()).toBeTruthy();
  let started: string | null = null;
  for (const line of (await response.text()).split("\n")) {
    if (!line) continue;
    const parsed = JSON.parse(line);
    if (parsed.line === "event" && parsed.event.type === "started") started ??= parsed.event.conversation_id;
  }
  if (!started) throw new Error("the turn did not start");
  return started;
}
