import { expect, test } from "./fixtures";
import { configureFake, fakeText, lastReply, openNewChat, replyText, send } from "./helpers";

const THOUGHTS = ["Let me ", "weigh ", "the options.\n", "Second ", "line ", "of <b>thought</b>."];
const WHOLE = THOUGHTS.join("");

test("a reasoning model's thinking shows live in a collapsed Thinking section, apart from the answer, and after a reload", async ({ page }) => {
  // Thinking, then the answer, 150 ms a token: slow enough to look at each state.
  await configureFake(page, { tokens: 8, token_delay_ms: 150, thinking: THOUGHTS });
  await openNewChat(page);
  await send(page, "Think first");

  const reply = lastReply(page);
  const thinking = reply.locator("details.reasoning");
  // While the model thinks: a live, collapsed section, and no answer yet.
  await expect(thinking.locator("summary")).toHaveText("Thinking…");
  await expect(thinking).not.toHaveAttribute("open", "");
  await expect(reply.locator(".pending")).toHaveCount(0);
  // Opened, it shows the thinking so far, as text (markup stays text), growing.
  await thinking.locator("summary").click();
  await expect(thinking.locator(".reasoning-text")).toContainText("Let me weigh");
  await expect(thinking.locator(".reasoning-text")).toHaveText(WHOLE);
  await expect(thinking.locator("b")).toHaveCount(0);

  // The answer follows; the section stops saying it is live, and the answer holds no thinking.
  await expect(reply).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
  await expect(thinking.locator("summary")).toHaveText("Thinking");
  expect(await replyText(page)).toBe(fakeText(8));
  await expect(reply.locator(".content")).not.toContainText("weigh");

  // After a reload: stored apart, collapsed again, the same text.
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  const stored = lastReply(page).locator("details.reasoning");
  await expect(stored.locator("summary")).toHaveText("Thinking");
  await expect(stored).not.toHaveAttribute("open", "");
  await stored.locator("summary").click();
  await expect(stored.locator(".reasoning-text")).toHaveText(WHOLE);
  expect(await replyText(page)).toBe(fakeText(8));
});

test("a long stream of thinking read live keeps every line in order, and again when reopened", async ({ page }) => {
  // 400 lines (about 16 KB): the page settles whole lines in chunks as they come.
  const lines = Array.from({ length: 400 }, (_, i) => `Line ${i + 1}: weighing option ${i + 1} é漢.\n`);
  const whole = lines.join("") + "So the answer is";
  const tokens: string[] = [];
  for (let i = 0; i < whole.length; i += 7) tokens.push(whole.slice(i, i + 7));
  await configureFake(page, { tokens: 2, token_delay_ms: 1, thinking: tokens });
  await openNewChat(page);
  await send(page, "Think at length");

  const reply = lastReply(page);
  const thinking = reply.locator("details.reasoning");
  await thinking.locator("summary").click();
  const text = thinking.locator(".reasoning-text");
  await expect(reply).toHaveAttribute("data-status", "complete", { timeout: 30_000 });
  await expect.poll(() => text.evaluate((el) => el.textContent)).toBe(whole);
  expect(await text.locator(".reasoning-chunk").count()).toBeGreaterThan(4);

  // Closed and opened again, it is chunked afresh from the whole text.
  await thinking.locator("summary").click();
  await thinking.locator("summary").click();
  await expect.poll(() => text.evaluate((el) => el.textContent)).toBe(whole);
});

test("a reply without thinking shows no Thinking section", async ({ page }) => {
  await configureFake(page, { tokens: 6, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "Quick one");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(lastReply(page).locator("details.reasoning")).toHaveCount(0);
});
