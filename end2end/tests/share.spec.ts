import { expect, test } from "./fixtures";
import { configureFake, lastReply, openNewChat, send } from "./helpers";

// The revoked link's page answers 404, which the browser reports in its console.
test.use({ expectedErrors: /status of 404/ });

test("a conversation is shared by link, read in a fresh browser with nothing else of its owner, and revoked", async ({ page, browser }) => {
  await configureFake(page, { tokens: 2, token_delay_ms: 5, script: ["**Rivers** flow ", "to the <b>sea</b>."] });
  await openNewChat(page);
  await send(page, "Where do rivers go?");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");

  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await page.getByRole("button", { name: "Share a snapshot" }).click();
  const address = page.locator(".share-url").first();
  await expect(address).toHaveValue(/\/s\/[0-9a-f]{64}$/);
  const link = await address.inputValue();
  await expect(page.locator(".shared-links [role=status]")).toContainText("Link made");
  await page.getByRole("button", { name: "Close", exact: true }).click();
  // Said after sharing: not part of the link.
  await send(page, "A later question");
  await expect(page.locator("li.message.assistant")).toHaveCount(2);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");

  // Someone else, with no cookie of the owner's.
  const visitor = await (await browser.newContext()).newPage();
  const shown = await visitor.goto(link);
  expect(shown?.status()).toBe(200);
  expect(shown?.headers()["x-robots-tag"]).toBe("noindex, nofollow");
  await expect(visitor.locator('meta[name="robots"]')).toHaveAttribute("content", "noindex, nofollow");
  await expect(visitor.locator(".shared-mark")).toContainText("Shared conversation");
  await expect(visitor.locator("li.message.user .content")).toHaveText(["Where do rivers go?"]);
  await expect(visitor.locator("li.message.assistant .content strong")).toHaveText("Rivers");
  // Raw HTML from the model is text, as in the chat.
  await expect(visitor.locator("li.message.assistant b")).toHaveCount(0);
  await expect(visitor.getByText("A later question")).toHaveCount(0);
  await expect(visitor.locator(".sidebar, .conversation-list, .account-menu, textarea, script")).toHaveCount(0);
  await visitor.screenshot({ path: test.info().outputPath("shared.png"), fullPage: true });

  // The usage page lists every link; Revoke there ends it.
  await page.goto("/usage");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  // Other specs on this server share links of their own: this one is found by its address.
  const links = () =>
    page.locator(".share-row .share-url").evaluateAll((inputs) => inputs.map((i) => (i as HTMLInputElement).value));
  await expect.poll(async () => (await links()).includes(link)).toBe(true);
  const row = page.locator(".share-row").nth((await links()).indexOf(link));
  await row.getByRole("button", { name: "Revoke" }).click();
  await expect.poll(async () => (await links()).includes(link)).toBe(false);
  const gone = await visitor.goto(link);
  expect(gone?.status()).toBe(404);
  await expect(visitor.getByRole("heading", { level: 1 })).toHaveText("Not found");
  await expect(visitor.getByText("Where do rivers go?")).toHaveCount(0);
});
