import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, fakeLog, lastReply, openNewChat, send } from "./helpers";

const picker = (page: Page) => page.getByRole("combobox", { name: "Model" });

test("the picker lists each configured provider with prices, and the local model", async ({ page }) => {
  await openNewChat(page);
  const groups = await picker(page).locator("optgroup").evaluateAll((els) => els.map((e) => e.getAttribute("label")));
  expect(groups).toEqual(["anthropic", "fake", "local"]);
  await expect(picker(page).locator('option[value="anthropic/claude-fake"]')).toHaveText(/\$3 in \/ \$15 out per M/);
  await expect(picker(page).locator('option[value="local/smollm2-135m"]')).toHaveText(/free/);
});

test("a second provider picked from the dropdown answers, with its tokens and cost under the reply", async ({ page }) => {
  // 9 plain prompt tokens (5 words + 4), 1,000 read from the cache, 200 written to it; 6 out.
  await configureFake(page, { tokens: 6, token_delay_ms: 20, cached_tokens: 1000, cache_write_tokens: 200 });
  await openNewChat(page);
  await picker(page).selectOption("anthropic/claude-fake");
  await send(page, "Hello Claude from the browser");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(lastReply(page).locator(".content")).toHaveText("Hello wörld, this is a");
  // (9 × $3 + 1,000 × $0.30 + 200 × $3.75 + 6 × $15) per million = $0.001167
  const usage = lastReply(page).locator(".usage");
  await expect(usage).toHaveText("1,209 in · 6 out · $0.0012");
  // The breakdown opens from the figures (a disclosure, for keyboard and touch alike).
  await usage.click();
  await expect(lastReply(page).locator(".usage-breakdown")).toContainText("1,000 from cache, 200 written to cache");
  await expect(page.locator(".chat-header .totals")).toHaveText("1,209 in · 6 out · $0.0012");

  // The choice is stored on the conversation: a reload keeps it, and the next turn uses it.
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(picker(page)).toHaveValue("anthropic/claude-fake");
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await send(page, "Again");
  await expect(page.locator("li.message.assistant")).toHaveCount(2);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  // "Again" is 1 word + 4; the history (2 messages of 5 and 6 words, + 4 each) is resent too.
  await expect(lastReply(page).locator(".usage")).toHaveText(/^[\d,]+ in · 3 out · \$0\.0\d{3}$/);
  const log = await fakeLog(page);
  const last = log.calls[log.calls.length - 1];
  expect(last.protocol).toBe("anthropic");
  expect(log.requests[log.requests.length - 1].messages).toHaveLength(3);
});

test("the local model answers in the browser with no key and no network", async ({ page }) => {
  await openNewChat(page);
  await picker(page).selectOption("local/smollm2-135m");
  const before = (await fakeLog(page)).requests.length;
  await send(page, "Say hello.");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const text = (await lastReply(page).locator(".content").textContent()) ?? "";
  expect(text.trim().length).toBeGreaterThan(0);
  await expect(lastReply(page).locator(".usage")).toHaveText(/^[\d,]+ in · [\d,]+ out · \$0$/);
  expect((await fakeLog(page)).requests.length, "nothing went to a provider").toBe(before);
});
