import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, fakeLog, lastReply, openNewChat, send } from "./helpers";

type Message = { role: string; content: string };
const lastRequestMessages = async (page: Page) => {
  const log = await fakeLog(page);
  return log.requests[log.requests.length - 1].messages as Message[];
};
const promptBox = (page: Page) => page.getByRole("textbox", { name: "System prompt" });

test("the system prompt is set in the conversation's settings, applies from the next reply, and each reply says which it had", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  // Before the first message: the first reply uses it.
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await expect(promptBox(page)).toHaveValue("");
  await promptBox(page).fill("Answer like a pirate.");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await expect(page.locator(".settings-status")).toHaveText("Saved: the first reply uses it.");
  await page.getByRole("button", { name: "Close", exact: true }).click();
  await send(page, "Hello");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  expect((await lastRequestMessages(page))[0]).toEqual({ role: "system", content: "Answer like a pirate." });
  const firstMark = lastReply(page).locator(".turn-prompt");
  await expect(firstMark).toHaveText("prompt v1");
  // What it was is a disclosure, open by keyboard (and touch), not a tooltip.
  await firstMark.focus();
  await page.keyboard.press("Enter");
  await expect(lastReply(page).locator(".prompt-text")).toHaveText("Answer like a pirate.");
  await page.keyboard.press("Enter");
  await expect(lastReply(page).locator(".prompt-text")).toBeHidden();

  // Changed: the next reply has revision 2; the first still says what it had.
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await expect(promptBox(page)).toHaveValue("Answer like a pirate.");
  await promptBox(page).fill("Answer in one word.");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await expect(page.locator(".settings-status")).toHaveText("Saved as revision 2: the next reply uses it.");
  await send(page, "Again");
  await expect(page.locator("li.message.assistant")).toHaveCount(2);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const messages = await lastRequestMessages(page);
  expect(messages[0]).toEqual({ role: "system", content: "Answer in one word." });
  expect(messages.filter((m) => m.role === "system")).toHaveLength(1);

  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  const marks = page.locator(".turn-prompt");
  await expect(marks).toHaveText(["prompt v1", "prompt v2"]);
  for (const mark of await marks.all()) await mark.click();
  await expect(page.locator(".prompt-text")).toHaveText(["Answer like a pirate.", "Answer in one word."]);
  await expect(page.locator("li.message")).toHaveCount(4);
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await expect(promptBox(page)).toHaveValue("Answer in one word.");
});

test.describe("a save that cannot reach the server", () => {
  test.use({ expectedErrors: /^Failed to load resource: net::ERR_FAILED/ });

  test("says so in words and keeps the text", async ({ page }) => {
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    await openNewChat(page);
    await send(page, "Hello");
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await page.route("**/api/set_system_prompt", (route) => route.abort());
    await page.getByRole("button", { name: "Settings", exact: true }).click();
    await promptBox(page).fill("Be brief.");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    const status = page.locator(".settings-status");
    await expect(status).toHaveText("Not saved: could not reach Rill; check the connection and try again");
    await expect(status).not.toContainText("Error");
    await expect(promptBox(page)).toHaveValue("Be brief.");
  });
});

test("a conversation is renamed in place, and the name stays", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  const title = `To be renamed ${Date.now()}`;
  await send(page, title);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await page.getByRole("button", { name: `Rename “${title}”` }).click();
  const field = page.getByRole("textbox", { name: "Conversation title" });
  await expect(field).toBeFocused();
  // Typed as a person types: the old title is selected, so typing replaces it.
  await page.keyboard.type(`Renamed ${title}`);
  await field.press("Enter");
  await expect(page.getByRole("link", { name: `Renamed ${title}` })).toBeVisible();

  // Esc gives up an edit.
  await page.getByRole("button", { name: `Rename “Renamed ${title}”` }).click();
  await field.fill("Not this");
  await field.press("Escape");
  await expect(page.getByRole("link", { name: `Renamed ${title}` })).toBeVisible();

  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.getByRole("link", { name: `Renamed ${title}` })).toBeVisible();
});

test("a deleted conversation can be undone for a few seconds, then is gone everywhere", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  const title = `To be deleted ${Date.now()}`;
  await send(page, title);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const address = page.url();

  await page.getByRole("button", { name: `Delete “${title}”` }).click();
  await expect(page.getByRole("link", { name: title })).toHaveCount(0);
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator("li.message")).toHaveCount(0);
  await expect(page.locator(".undo-toast")).toContainText(`Deleted “${title}”.`);
  await page.getByRole("button", { name: "Undo", exact: true }).click();
  await expect(page.getByRole("link", { name: title })).toBeVisible();
  await expect(page).toHaveURL(address);
  await expect(page.locator("li.message.user .content")).toHaveText([title]);

  await page.getByRole("button", { name: `Delete “${title}”` }).click();
  await expect(page.locator(".undo-toast")).toBeVisible();
  await expect(page.locator(".undo-toast")).toHaveCount(0, { timeout: 12_000 });
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.getByRole("link", { name: title })).toHaveCount(0);
  await page.goto(address);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.locator(".notice")).toHaveText(/does not exist/);
});

test("what is typed into the settings is kept when the server's default arrives later", async ({ page }) => {
  await page.route("**/api/default_system_prompt", async (route) => {
    await new Promise((done) => setTimeout(done, 600));
    await route.continue();
  });
  await openNewChat(page);
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await promptBox(page).fill("Typed before the default came");
  await page.waitForTimeout(1_000);
  await expect(promptBox(page)).toHaveValue("Typed before the default came");
});

test("Esc closes the settings, leaves a reply being written alone, and gives the focus back to Settings", async ({ page }) => {
  await configureFake(page, { tokens: 40, token_delay_ms: 50 });
  await openNewChat(page);
  await send(page, "A long one, please");
  await expect(page.getByRole("button", { name: "Stop", exact: true })).toBeVisible();
  const settings = page.getByRole("button", { name: "Settings", exact: true });
  await settings.click();
  await promptBox(page).click();
  await page.keyboard.press("Escape");
  await expect(promptBox(page)).toBeHidden();
  await expect(settings).toBeFocused();
  await expect(settings).toHaveAttribute("aria-expanded", "false");
  // The Esc was the panel's: the reply goes on to its end.
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 15_000 });
});
