import { expect, test } from "./fixtures";
import {
  composer, configureFake, fakeLog, fakeText, lastReply, openNewChat, replyText, send,
} from "./helpers";
import { NginxProcess, RillProcess, tempDatabase } from "./processes";

// These tests break the network on purpose: the browser reports the broken requests.
test.use({
  expectedErrors:
    /^(Failed to load resource: net::ERR_(INCOMPLETE_CHUNKED_ENCODING|CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)|Failed to load resource: the server responded with a status of 502 \(Bad Gateway\)|TypeError: network error)/,
});

const appPort = Number(process.env.E2E_APP_PORT ?? 3310);
const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

test("tokens stream one by one through a default nginx reverse proxy", async ({ page }) => {
  const nginx = new NginxProcess(base, `http://127.0.0.1:${appPort}`);
  await nginx.start();
  try {
    await configureFake(page, { tokens: 60, token_delay_ms: 40 });
    await openNewChat(page, nginx.url);
    await send(page, "Through the proxy");
    const lengths: number[] = [];
    for (let i = 0; i < 30; i++) {
      lengths.push((await replyText(page)).length);
      await page.waitForTimeout(50);
    }
    const distinct = new Set(lengths.filter((n) => n > 0));
    expect(distinct.size, `lengths seen: ${lengths.join(",")}`).toBeGreaterThanOrEqual(5);
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    // The text is drawn at the next frame, the status at once.
    await expect.poll(() => replyText(page)).toBe(fakeText(60));
  } finally {
    await nginx.kill();
  }
});

test("the network drops mid-reply and the reply completes by itself, with no gap or duplicate", async ({ page }) => {
  const nginx = new NginxProcess(base + 1, `http://127.0.0.1:${appPort}`);
  await nginx.start();
  try {
    await configureFake(page, { tokens: 150, token_delay_ms: 25 });
    await openNewChat(page, nginx.url);
    await send(page, "Keep talking while the network drops");
    await expect.poll(async () => (await replyText(page)).length).toBeGreaterThan(30);

    // The proxy goes away: every connection through it closes at once.
    await nginx.kill();
    await expect(page.locator(".connection")).toHaveText(/Reconnecting/);
    await page.waitForTimeout(800);
    await nginx.start();

    await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
    await expect(page.locator(".connection")).toHaveCount(0);
    await expect.poll(() => replyText(page)).toBe(fakeText(150));
    // And it is what the server stored.
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    expect(await replyText(page)).toBe(fakeText(150));
  } finally {
    await nginx.kill();
  }
});

test("a second tab shows a turn sent from the first, live, and Stop in either stops both", async ({ page, context }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "First question");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const conversationUrl = page.url();

  const second = await context.newPage();
  await openNewChat(second, conversationUrl);
  await expect(second.locator("li.message.user .content")).toHaveText(["First question"]);

  await configureFake(page, { tokens: 2000, token_delay_ms: 20 });
  const before = (await fakeLog(page)).disconnects.length;
  await send(page, "Second question");
  // The other tab gets the question and the reply as they happen.
  await expect(second.locator("li.message.user .content")).toHaveText(["First question", "Second question"]);
  await expect.poll(async () => (await replyText(second)).length).toBeGreaterThan(40);
  await expect(second.getByRole("button", { name: "Stop", exact: true })).toBeVisible();
  await expect(second.getByRole("button", { name: "Send", exact: true })).toHaveCount(0);

  // Stop from the second tab: both stop, with the same text, and the provider is hung up on.
  await second.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(second)).toHaveAttribute("data-status", "stopped");
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  // The same text in both (a tab renders its last tokens in the frame after the end).
  const stopped = await replyText(second);
  await expect.poll(() => replyText(page)).toBe(stopped);
  await expect.poll(() => replyText(second)).toBe(stopped);
  expect((await fakeLog(page)).disconnects.length).toBe(before + 1);
  await expect(page.getByRole("button", { name: "Send", exact: true })).toBeVisible();
  await second.close();
});

test("after the server behind nginx is killed mid-reply, the page shows it interrupted, and Continue finishes it", async ({ page }) => {
  const rill = new RillProcess(base + 2, tempDatabase());
  await rill.start();
  // nginx stays up while Rill is down: the page gets nginx's 502 pages, and keeps trying.
  const nginx = new NginxProcess(base + 3, rill.url);
  await nginx.start();
  try {
    await configureFake(page, { tokens: 3000, token_delay_ms: 10 });
    await openNewChat(page, nginx.url);
    await send(page, "A reply the server will not live to finish");
    await expect.poll(async () => (await replyText(page)).length).toBeGreaterThan(200);
    await page.waitForTimeout(400);

    await rill.kill();
    await expect(page.locator(".connection")).toHaveText(/Reconnecting/);
    // Down for a while: the page meets nginx's 502 pages, and keeps trying.
    await page.waitForTimeout(3_000);
    await expect(page.locator(".connection")).toHaveText(/Reconnecting/);
    await rill.start();
    // The page finds the reply again by itself: interrupted, with the text the server had saved.
    await expect(lastReply(page)).toHaveAttribute("data-status", "interrupted", { timeout: 20_000 });
    await expect(lastReply(page).locator(".turn-status")).toContainText("Interrupted");
    const kept = await replyText(page);
    expect(kept.length).toBeGreaterThan(150);
    expect(fakeText(3000).startsWith(kept)).toBeTruthy();

    await configureFake(page, { tokens: 12, token_delay_ms: 10 });
    await lastReply(page).getByRole("button", { name: "Continue" }).click();
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    expect(await replyText(page)).toBe(kept + fakeText(12));
    await expect(lastReply(page).getByRole("button", { name: "Continue" })).toHaveCount(0);
    await expect(composer(page)).toBeEditable();
  } finally {
    await nginx.kill();
    await rill.kill();
  }
});

test("a tab that lost its connection while another tab's reply ended shows the end, and Send, when it is back", async ({ page, browser }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "First");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const path = new URL(page.url()).pathname;

  // The second tab reaches the same server through a proxy that will go away.
  const nginx = new NginxProcess(base + 4, `http://127.0.0.1:${appPort}`);
  await nginx.start();
  const context = await browser.newContext();
  const second = await context.newPage();
  try {
    await openNewChat(second, nginx.url + path);
    await configureFake(page, { tokens: 120, token_delay_ms: 25 });
    await send(page, "Second");
    await expect.poll(async () => (await replyText(second)).length).toBeGreaterThan(20);
    await expect(second.getByRole("button", { name: "Stop", exact: true })).toBeVisible();

    await nginx.kill();
    await expect(second.locator(".connection")).toHaveText(/Reconnecting/);
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
    await nginx.start();

    await expect(lastReply(second)).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
    await expect.poll(() => replyText(second)).toBe(fakeText(120));
    await expect(second.getByRole("button", { name: "Send", exact: true })).toBeVisible();
    await expect(second.getByRole("button", { name: "Stop", exact: true })).toHaveCount(0);
  } finally {
    await context.close();
    await nginx.kill();
  }
});
