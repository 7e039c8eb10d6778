import { expect, test } from "./fixtures";
import { configureFake, lastReply, send } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

test("the model's title of the first exchange replaces the first words in the sidebar and the tab without a reload", async ({ page }) => {
  // A server of its own, with model titles (the shared one keeps first words).
  const rill = new RillProcess(base + 9, tempDatabase(), { RILL_PLAIN_TITLES: "no" });
  await rill.start();
  try {
    await configureFake(page, { tokens: 3, token_delay_ms: 5, title: "Rivers and the sea", title_delay_ms: 400 });
    await page.goto(`${rill.url}/`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await send(page, "Where do rivers go when they end?");
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    const active = page.locator(".conversation-list li.active a").first();
    // First the first words, then the model's title, without a reload.
    await expect(active).toHaveText("Rivers and the sea");
    await expect(page).toHaveTitle("Rivers and the sea");
    await expect(page.locator("#conversation-title")).toHaveText("Rivers and the sea");

    // A later turn asks no title again; the page keeps it.
    await send(page, "And lakes?");
    await expect(page.locator("li.message.assistant")).toHaveCount(2);
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(page).toHaveTitle("Rivers and the sea");
  } finally {
    await rill.stop();
  }
});
