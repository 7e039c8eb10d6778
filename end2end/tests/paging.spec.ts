import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

test("a long conversation opens at its newest messages, and earlier messages come as the reader scrolls up, older conversations on request", async ({ page }) => {
  // A server of its own, whose limits let the test build a long history quickly.
  const rill = new RillProcess(base + 6, tempDatabase(), {
    RILL_TURNS_PER_MINUTE: "100000",
    RILL_WRITES_PER_MINUTE: "100000",
  });
  await rill.start();
  try {
    await configureFake(page, { tokens: 2, token_delay_ms: 0 });
    // 105 short conversations, then one of 25 turns: the newest.
    const oldest = await sendTurn(page, rill.url, "Conversation 1", null);
    for (let i = 2; i <= 105; i++) await sendTurn(page, rill.url, `Conversation ${i}`, null);
    let conversation: string | null = null;
    for (let i = 1; i <= 25; i++) conversation = await sendTurn(page, rill.url, `Question ${i}`, conversation);

    await page.goto(`${rill.url}/c/${conversation}`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    const questions = page.locator("li.message.user .content");
    // The newest 40 messages: whole turns, from the 6th question.
    await expect(questions).toHaveCount(20);
    await expect(questions.first()).toHaveText("Question 6");
    await expect(questions.last()).toHaveText("Question 25");

    // Earlier messages come above as the reader scrolls up (long-conversation.spec.ts checks
    // that the reader keeps their place).
    const list = page.locator(".messages");
    await list.evaluate((el) => (el.scrollTop = 0));
    await expect(questions).toHaveCount(25);
    await expect(questions.first()).toHaveText("Question 1");
    await expect(page.getByRole("button", { name: "Show earlier messages", exact: true })).toHaveCount(0);

    // The sidebar lists a screenful of conversations, and the rest on request (or as it is
    // scrolled: sidebar.spec.ts).
    const items = page.locator(".conversation-list li");
    await expect(items).toHaveCount(30);
    await page.getByRole("button", { name: "Show older conversations", exact: true }).click();
    await expect(items).toHaveCount(106);
    await expect(page.locator(".conversation-list li a", { hasText: /^Conversation 1$/ })).toHaveCount(1);
    await expect(page.getByRole("button", { name: "Show older conversations", exact: true })).toHaveCount(0);
    await page.screenshot({ path: "test-results/paging.png" });

    // A conversation the sidebar's first page does not list still names the tab and the page.
    await page.goto(`${rill.url}/c/${oldest}`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(items).toHaveCount(30);
    await expect(page).toHaveTitle("Conversation 1");
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Conversation 1");
  } finally {
    await rill.stop();
  }
});
