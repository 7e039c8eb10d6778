import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, lastReply, openNewChat, send } from "./helpers";

const picker = (page: Page) => page.getByRole("combobox", { name: "Model" });
const scrollTop = (page: Page) => page.locator(".messages").evaluate((el) => el.scrollTop);
const atBottom = (page: Page) =>
  page.locator(".messages").evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 4);

for (const [name, viewport] of [
  ["desktop", { width: 1280, height: 800 }],
  ["phone", { width: 390, height: 844 }],
] as const) {
  test(`${name}: Jump to latest appears when the reader scrolls up, and nothing moves while they select text`, async ({ page }) => {
    await page.setViewportSize(viewport);
    await configureFake(page, { tokens: 1500, token_delay_ms: 15 });
    await openNewChat(page);
    await send(page, "A long answer please");
    await expect.poll(() => page.locator(".messages").evaluate((el) => el.scrollHeight > el.clientHeight * 2), { timeout: 20_000 }).toBe(true);
    await expect(page.getByRole("button", { name: "Jump to latest" })).toHaveCount(0);

    // The reader scrolls up: the list stays put while text arrives, and offers the way back.
    await page.locator(".messages").evaluate((el) => { el.scrollTop = 0; });
    await expect(page.getByRole("button", { name: "Jump to latest" })).toBeVisible();
    await page.waitForTimeout(300);
    expect(await scrollTop(page)).toBe(0);

    await page.getByRole("button", { name: "Jump to latest" }).click();
    await expect.poll(() => atBottom(page)).toBe(true);
    await expect(page.getByRole("button", { name: "Jump to latest" })).toHaveCount(0);
    const following = await scrollTop(page);
    await expect.poll(() => scrollTop(page)).toBeGreaterThan(following);

    // Selecting text: the list does not move under the reader's hand.
    await page.locator("li.message.user .content").evaluate((p) => {
      const range = document.createRange();
      range.selectNodeContents(p);
      getSelection()!.removeAllRanges();
      getSelection()!.addRange(range);
    });
    const held = await scrollTop(page);
    await page.waitForTimeout(400);
    expect(await scrollTop(page)).toBe(held);
    await page.evaluate(() => getSelection()!.removeAllRanges());
    await expect.poll(() => scrollTop(page)).toBeGreaterThan(held);

    // Nor while the reader drags across the reply being written.
    const box = (await lastReply(page).locator(".content").boundingBox())!;
    await page.mouse.move(box.x + 10, box.y + box.height - 10);
    await page.mouse.down();
    const dragging = await scrollTop(page);
    await page.waitForTimeout(400);
    expect(await scrollTop(page)).toBe(dragging);
    await page.mouse.up();
    await expect.poll(() => scrollTop(page)).toBeGreaterThan(dragging);
    await page.getByRole("button", { name: "Stop", exact: true }).click();
    await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  });
}

test("on a phone the conversations open from a menu button", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  const title = `From my phone ${Date.now()}`;
  await send(page, title);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(page.getByRole("navigation", { name: "Conversations" })).toBeHidden();

  const menu = page.getByRole("button", { name: "Conversations" });
  await menu.click();
  await expect(page.getByRole("navigation", { name: "Conversations" })).toBeVisible();
  await page.getByRole("button", { name: "New chat" }).click();
  await expect(page.getByRole("navigation", { name: "Conversations" })).toBeHidden();
  await expect(page.locator("li.message")).toHaveCount(0);

  await menu.click();
  await page.getByRole("link", { name: title }).click();
  await expect(page.locator("li.message.user .content")).toHaveText([title]);
  await expect(page.getByRole("navigation", { name: "Conversations" })).toBeHidden();
});

test("a continued conversation moves to the top of the list at once, and long titles have a tooltip", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  const long = `An older chat whose title is too long for the sidebar ${Date.now() % 1000}`;
  await send(page, long);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const older = page.url();
  await page.getByRole("button", { name: "New chat" }).click();
  const newer = `A newer one ${Date.now()}`;
  await send(page, newer);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const titles = page.locator(".conversation-list a");
  await expect(titles.first()).toHaveText(newer);

  await page.goto(older);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await send(page, "Back to this one");
  await expect(page.locator("li.message.assistant")).toHaveCount(2);
  await expect(titles.first()).toHaveText(long);
  await expect(titles.first()).toHaveAttribute("title", long);
  expect(await titles.first().evaluate((a) => a.scrollWidth > a.clientWidth), "the title is cut in the list").toBe(true);
});

test("the model chosen last is kept by New chat and by a reload, and named the same under the reply", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await picker(page).selectOption("anthropic/claude-fake");
  await page.getByRole("button", { name: "New chat" }).click();
  await expect(picker(page)).toHaveValue("anthropic/claude-fake");
  await page.goto("/");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(picker(page)).toHaveValue("anthropic/claude-fake");

  await send(page, "Which model is this?");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const label = await lastReply(page).locator(".turn-model").textContent();
  expect(label).toBe("claude-fake");
  await expect(picker(page).locator("option:checked")).toHaveText(/^claude-fake · /);
});

test("a model with no known price says so, in the picker and under its replies", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await expect(picker(page).locator('option[value="fake/fake-unpriced"]')).toHaveText("fake-unpriced · price unknown");
  await expect(picker(page).locator('option[value="fake/fake-model"]')).toHaveText("fake-model · $1 in / $2 out per M");
  await picker(page).selectOption("fake/fake-unpriced");
  await send(page, "What does this cost?");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(lastReply(page).locator(".usage")).toHaveText(/^[\d,]+ in · 3 out · price unknown$/);
});
