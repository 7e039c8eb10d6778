import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { composer, configureFake, fakeLog, fakeText, lastReply, openNewChat, replyText, send } from "./helpers";

type Message = { role: string; content: string };
const lastSent = async (page: Page) => {
  const log = await fakeLog(page);
  return (log.requests[log.requests.length - 1].messages as Message[]).map((m) => m.content);
};
const question = (page: Page, i: number) => page.locator("li.message.user").nth(i);

test("Regenerate asks again; both answers are kept, switchable with ‹ ›, and the choice survives a reload", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "Tell me a joke");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect.poll(() => replyText(page)).toBe(fakeText(3));

  await configureFake(page, { tokens: 5, token_delay_ms: 5 });
  await lastReply(page).getByRole("button", { name: "Regenerate" }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect.poll(() => replyText(page)).toBe(fakeText(5));
  await expect(page.locator("li.message")).toHaveCount(2);
  const versions = question(page, 0).getByRole("group", { name: "Versions of this message" });
  await expect(versions).toContainText("2/2");
  expect(await lastSent(page)).toEqual(["Tell me a joke"]);

  await expect(versions.getByRole("button", { name: "Next version" })).toBeDisabled();
  await versions.getByRole("button", { name: "Previous version" }).click();
  await expect(versions).toContainText("1/2");
  await expect.poll(() => replyText(page)).toBe(fakeText(3));
  await expect(versions.getByRole("button", { name: "Previous version" })).toBeDisabled();
  // The group reads "‹ 1/2 ›" and nothing else.
  await expect(versions).toHaveText("‹1/2›");
  await versions.getByRole("button", { name: "Next version" }).click();
  await expect(versions).toContainText("2/2");
  await expect.poll(() => replyText(page)).toBe(fakeText(5));
  await versions.getByRole("button", { name: "Previous version" }).click();
  await expect(versions).toContainText("1/2");
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(question(page, 0).getByRole("group", { name: "Versions of this message" })).toContainText("1/2");
  await expect.poll(() => replyText(page)).toBe(fakeText(3));

  // The next message follows the branch on screen.
  await send(page, "Another");
  await expect(page.locator("li.message.assistant")).toHaveCount(2);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  expect(await lastSent(page)).toEqual(["Tell me a joke", fakeText(3), "Another"]);
});

test("a question is edited in place and asked again; Up in an empty composer edits the last one, Esc cancels", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "First question");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await send(page, "Second question");
  await expect(page.locator("li.message.assistant")).toHaveCount(2);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");

  // Up edits the last question; Esc gives up and the cursor goes back to the composer.
  await composer(page).focus();
  await composer(page).press("ArrowUp");
  const field = page.getByRole("textbox", { name: "Edit message" });
  await expect(field).toBeFocused();
  await expect(field).toHaveValue("Second question");
  await field.press("Escape");
  await expect(field).toHaveCount(0);
  await expect(composer(page)).toBeFocused();

  // Edit the first question: what followed it leaves the screen, and the provider gets the edit alone.
  await question(page, 0).getByRole("button", { name: "Edit", exact: true }).click();
  await field.fill("First question, better put");
  await field.press("Enter");
  await expect(page.locator("li.message.user .content")).toHaveText(["First question, better put"]);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  expect(await lastSent(page)).toEqual(["First question, better put"]);
  await expect(question(page, 0).getByRole("group", { name: "Versions of this message" })).toContainText("2/2");

  await question(page, 0).getByRole("button", { name: "Previous version" }).click();
  await expect(page.locator("li.message.user .content")).toHaveText(["First question", "Second question"]);
});

test("a failed reply says so and Retry asks again; a whole message copies as markdown", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await configureFake(page, { tokens: 3, token_delay_ms: 5, fail_status: 400, fail_times: 1 });
  await openNewChat(page);
  await send(page, "This will fail once");
  await expect(lastReply(page)).toHaveAttribute("data-status", "failed");
  await expect(lastReply(page).locator(".turn-status")).toHaveText(/^Failed: /);
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await lastReply(page).getByRole("button", { name: "Retry" }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(page.locator("li.message")).toHaveCount(2);

  await question(page, 0).getByRole("button", { name: "Copy" }).click();
  await expect(question(page, 0).getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("This will fail once");
  await lastReply(page).getByRole("button", { name: "Copy", exact: true }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(fakeText(3));
});
