import { join } from "node:path";
import { expect, test } from "./fixtures";
import { configureFake, fakeLog, lastReply, openNewChat, send } from "./helpers";

// The fixture the HTTP tests import too: ChatGPT's export as documented and observed (a hidden
// system root, custom instructions, a regenerated answer, an image, code run by a tool, edits,
// reasoning, a conversation with two roots that is skipped).
const chatgptExport = join(__dirname, "../../tests/it/fixtures/chatgpt-conversations.json");

test("a ChatGPT export is imported with its progress and summary, and one of its conversations is continued here", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  // The account menu leads to the page.
  await page.getByRole("link", { name: "Import/export" }).click();
  await expect(page.getByRole("heading", { name: "Import and export", level: 1 })).toBeVisible();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.getByRole("link", { name: "Download all conversations (zip)" })).toHaveAttribute("href", "/export/all.zip");

  const importButton = page.getByRole("button", { name: "Import", exact: true });
  await expect(importButton).toBeDisabled();
  await page.getByLabel("Export file").setInputFiles(chatgptExport);
  await importButton.click();
  const status = page.getByRole("status").filter({ hasText: /imported/ });
  await expect(status).toHaveText("Done: 2 conversations imported, 1 skipped.");
  await page.getByText("Why some were skipped").click();
  await expect(page.locator(".import-skipped li")).toHaveText([/conversation 3 \(“Two roots”\): its message tree has 2 roots/]);
  await page.screenshot({ path: "test-results/import-done.png", fullPage: true });

  // Opened from the list: the branch ChatGPT showed, its replies marked as imported.
  await page.getByRole("link", { name: "Open your conversations" }).click();
  // Imported conversations keep their own dates, so they sit among the oldest: below the first
  // screenful when the other specs have made theirs. Scrolled to as a person would.
  const trip = page.getByRole("link", { name: "Trip to Lisbon" });
  const list = page.locator(".conversation-list:not(.pinned)");
  await expect(async () => {
    await list.evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await expect(trip).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await trip.click();
  await expect(lastReply(page).locator(".content")).toHaveText("You are welcome!");
  await expect(page.locator("li.message")).toHaveCount(6);
  await expect(page.locator("li.message.user").nth(1)).toContainText("[image, 800×600: not included in the export]");
  await expect(lastReply(page).locator(".usage.imported")).toHaveText("imported");
  await expect(lastReply(page).locator(".turn-model")).toHaveText("o3");
  // The regenerated first answer is its alternative.
  await expect(page.locator("li.message.user").first()).toContainText("1/2");

  // Continued with this server's model: the history is the imported branch, the reply costs here.
  await send(page, "And Porto?");
  await expect(page.locator("li.message.assistant")).toHaveCount(4);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(lastReply(page).locator(".usage")).not.toContainText("imported");
  const log = await fakeLog(page);
  const sent = JSON.stringify(log.requests[log.requests.length - 1].messages);
  expect(sent).toContain("You are welcome!");
  expect(sent).toContain("I live in Porto.");
  await page.screenshot({ path: "test-results/import-continued.png", fullPage: true });

  // Taken out again from its settings: Markdown as it reads.
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  const markdown = page.getByRole("link", { name: "Markdown", exact: true });
  const href = await markdown.getAttribute("href");
  expect(href).toMatch(/^\/export\/[0-9a-f-]+\/markdown$/);
  const text = await (await page.request.get(href!)).text();
  expect(text).toContain("# Trip to Lisbon");
  expect(text).toContain("## You\n\nAnd Porto?");
  expect(text).not.toContain("LX Factory");
});
