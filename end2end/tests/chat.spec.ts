import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { composer, configureFake, fakeLog, fakeText, lastReply, openNewChat, replyText, send } from "./helpers";

/// Samples the reply's length every 50 ms for `ms`.
async function sampleLengths(page: Page, ms: number): Promise<number[]> {
  const lengths: number[] = [];
  for (let waited = 0; waited < ms; waited += 50) {
    lengths.push(((await lastReply(page).locator(".content").textContent()) ?? "").length);
    await page.waitForTimeout(50);
  }
  return lengths;
}

test("a reply streams in token by token after a thinking indicator, with Send replaced by Stop", async ({ page }) => {
  await configureFake(page, { tokens: 120, token_delay_ms: 30, first_token_delay_ms: 800 });
  await openNewChat(page);
  await send(page, "Hello there");

  await expect(page.locator("li.message.user .content").first()).toHaveText("Hello there");
  await expect(lastReply(page).locator(".pending")).toBeVisible();
  await expect(page.getByRole("button", { name: "Stop", exact: true })).toBeVisible();
  await expect(page.getByRole("button", { name: "Send", exact: true })).toHaveCount(0);

  // Enter while streaming does not send a second message.
  await composer(page).fill("Second message");
  await composer(page).press("Enter");
  await expect(page.locator("li.message.user")).toHaveCount(1);

  const lengths = await sampleLengths(page, 1_800);
  const distinct = new Set(lengths.filter((n) => n > 0));
  expect(distinct.size, `lengths seen: ${lengths.join(",")}`).toBeGreaterThanOrEqual(5);
  for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeGreaterThanOrEqual(lengths[i - 1]);

  await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
  await expect(lastReply(page).locator(".usage")).toContainText("120 out");
  await expect(page.getByRole("button", { name: "Send", exact: true })).toBeEnabled();
  await expect(composer(page)).toHaveValue("Second message");
  await expect(page).toHaveURL(/\/c\/[0-9a-f-]{36}$/);
});

test("Stop halts the reply, cuts the provider request, and a reload shows the same stopped text", async ({ page }) => {
  await configureFake(page, { tokens: 2000, token_delay_ms: 20 });
  await openNewChat(page);
  const before = (await fakeLog(page)).disconnects.length;
  await send(page, "Write a long essay");
  await expect.poll(async () => ((await lastReply(page).locator(".content").textContent()) ?? "").length).toBeGreaterThan(40);

  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  await expect(lastReply(page).locator(".turn-status")).toHaveText("Stopped");
  await expect(page.getByRole("button", { name: "Send", exact: true })).toBeVisible();
  const shown = await lastReply(page).locator(".content").textContent();
  await page.waitForTimeout(600);
  expect(await lastReply(page).locator(".content").textContent()).toBe(shown);
  expect((await fakeLog(page)).disconnects.length).toBe(before + 1);

  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.locator("li.message.user .content")).toHaveText(["Write a long essay"]);
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  expect(await lastReply(page).locator(".content").textContent()).toBe(shown);
  await expect(lastReply(page).locator(".usage")).toContainText("≈");

  // Continue goes on from the stopped text, in the same reply.
  const kept = await replyText(page);
  await configureFake(page, { tokens: 6, token_delay_ms: 5 });
  await lastReply(page).getByRole("button", { name: "Continue" }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect.poll(() => replyText(page)).toBe(kept + fakeText(6));
  await expect(page.locator("li.message.assistant")).toHaveCount(1);
  await expect(lastReply(page).getByRole("button", { name: "Continue" })).toHaveCount(0);
});

test("a reader near the bottom is followed, one who scrolled up is left where they are", async ({ page }) => {
  await configureFake(page, { tokens: 1500, token_delay_ms: 8 });
  await page.setViewportSize({ width: 1000, height: 600 });
  await openNewChat(page);
  await send(page, "Fill the screen");
  const scroller = page.locator(".messages");
  const metrics = () =>
    scroller.evaluate((el) => ({ top: el.scrollTop, height: el.scrollHeight, client: el.clientHeight }));

  await expect.poll(async () => { const m = await metrics(); return m.height - m.client; }).toBeGreaterThan(400);
  // Following: the view stays at the bottom as text arrives.
  const followed = await metrics();
  expect(followed.height - followed.top - followed.client).toBeLessThanOrEqual(100);

  await scroller.evaluate((el) => { el.scrollTop = 0; });
  const heightBefore = (await metrics()).height;
  await expect.poll(async () => (await metrics()).height).toBeGreaterThan(heightBefore + 100);
  expect((await metrics()).top).toBe(0);
  await page.getByRole("button", { name: "Stop", exact: true }).click();
});

test("Shift+Enter adds a line and Enter sends the whole message", async ({ page }) => {
  await configureFake(page, { tokens: 5, token_delay_ms: 5 });
  await openNewChat(page);
  await composer(page).fill("first line");
  await composer(page).press("Shift+Enter");
  await composer(page).pressSequentially("second line");
  await expect(composer(page)).toHaveValue("first line\nsecond line");
  await expect(page.locator("li.message")).toHaveCount(0);
  await composer(page).press("Enter");
  await expect(page.locator("li.message.user .content")).toHaveText("first line\nsecond line");
  // Shown on two lines (toHaveText alone would pass with the break collapsed to a space).
  expect(await page.locator("li.message.user .content").evaluate((el) => (el as HTMLElement).innerText)).toBe(
    "first line\nsecond line",
  );
  await expect(composer(page)).toHaveValue("");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
});

test("a conversation survives a reload and appears in the sidebar", async ({ page }) => {
  await configureFake(page, { tokens: 8, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "Remember me");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  // The markdown renderer's module may still be arriving: wait for the text, then take it.
  await expect.poll(() => replyText(page)).toBe(fakeText(8));
  const reply = await lastReply(page).locator(".content").textContent();
  const url = page.url();

  await page.goto("/");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.locator("li.message")).toHaveCount(0);
  await page.getByRole("link", { name: "Remember me" }).first().click();
  await expect(page).toHaveURL(url);
  await expect(lastReply(page).locator(".content")).toHaveText(reply ?? "");
});

test("switching conversations while a reply streams leaves the page working, with no error", async ({ page }) => {
  await configureFake(page, { tokens: 6, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "First conversation");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");

  await configureFake(page, { tokens: 400, token_delay_ms: 20 });
  await page.getByRole("button", { name: "New chat" }).click();
  await send(page, "Second conversation, a long reply");
  await expect.poll(async () => ((await lastReply(page).locator(".content").textContent()) ?? "").length).toBeGreaterThan(20);

  // Away while it streams, and back.
  await page.locator(".sidebar a", { hasText: "First conversation" }).first().click();
  await expect(page.locator("li.message.user .content")).toHaveText(["First conversation"]);
  await page.waitForTimeout(300);
  await page.locator(".sidebar a", { hasText: "Second conversation" }).first().click();
  await expect(page.locator("li.message.user .content")).toHaveText(["Second conversation, a long reply"]);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 20_000 });
  // The fixture fails the test on any console or page error (a WASM panic prints one).
});

test("a conversation opens at its latest message, on reload and from the sidebar", async ({ page }) => {
  await page.setViewportSize({ width: 1000, height: 600 });
  await configureFake(page, { tokens: 600, token_delay_ms: 0 });
  await openNewChat(page);
  await send(page, "A long answer, please");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const scroller = page.locator(".messages");
  const distanceFromBottom = () => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  const tall = () => scroller.evaluate((el) => el.scrollHeight - el.clientHeight);

  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  expect(await tall()).toBeGreaterThan(400);
  await expect.poll(distanceFromBottom).toBeLessThanOrEqual(1);

  // From another conversation, by the sidebar.
  await page.getByRole("button", { name: "New chat" }).click();
  await page.locator(".sidebar a", { hasText: "A long answer, please" }).first().click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect.poll(distanceFromBottom).toBeLessThanOrEqual(1);
});

test("Stop pressed before the server has the message stops the reply as soon as it starts", async ({ page }) => {
  await configureFake(page, { tokens: 2000, token_delay_ms: 20 });
  await openNewChat(page);
  // The send reaches the server well after the Stop is pressed: the Stop must not overtake it.
  await page.route("**/api/send_message", async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 800));
    await route.continue();
  });
  await send(page, "Stop me at once");
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  await expect(page.getByText("Could not stop the reply")).toHaveCount(0);
  const shown = await lastReply(page).locator(".content").textContent();
  await page.waitForTimeout(600);
  expect(await lastReply(page).locator(".content").textContent()).toBe(shown);
});

test("the cursor is in the composer on the first load, after Stop, after a turn and after New chat", async ({ page }) => {
  await openNewChat(page);
  await expect(composer(page)).toBeFocused();

  await configureFake(page, { tokens: 400, token_delay_ms: 20 });
  await send(page, "Start, then stop");
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  await expect(composer(page)).toBeFocused();

  await configureFake(page, { tokens: 10, token_delay_ms: 5 });
  await page.getByRole("button", { name: "Send", exact: true }).focus();
  await send(page, "A short one");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(composer(page)).toBeFocused();

  await page.getByRole("button", { name: "New chat" }).click();
  await expect(page.locator("li.message")).toHaveCount(0);
  await expect(composer(page)).toBeFocused();
});
