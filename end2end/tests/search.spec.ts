import { expect, test } from "./fixtures";
import { configureFake, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

test("Ctrl+K finds an old conversation by a word in an answer, and its result opens it at that message, highlighted", async ({
  page,
}) => {
  // A server of its own, whose limits let the test build a history quickly.
  const rill = new RillProcess(base + 9, tempDatabase(), {
    RILL_TURNS_PER_MINUTE: "100000",
    RILL_WRITES_PER_MINUTE: "100000",
  });
  await rill.start();
  try {
    // The old conversation: its first answer holds the word, and many turns follow it, so the
    // answer is far outside the window a conversation opens with.
    await configureFake(page, { tokens: 3, token_delay_ms: 0, script: ["The ", "platypus ", "lays eggs."] });
    const old = await sendTurn(page, rill.url, "Tell me an odd animal fact");
    await configureFake(page, { tokens: 2, token_delay_ms: 0, script: ["Noted", "."] });
    for (let i = 1; i <= 30; i++) await sendTurn(page, rill.url, `Follow-up ${i}`, old);
    // Newer conversations above it in the list.
    for (let i = 1; i <= 3; i++) await sendTurn(page, rill.url, `Newer chat ${i}`);

    await page.goto(`${rill.url}/`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    // The list is grouped by last activity (the browser's days): all of these are today's.
    const groups = page.locator(".conversation-list .conversation-group");
    await expect(groups).toHaveText(["Today"]);
    await expect(page.locator(".conversation-list li").first().locator(".conversation-group")).toHaveText("Today");
    await page.keyboard.press("Control+k");
    const box = page.getByRole("searchbox", { name: "Search conversations" });
    await expect(box).toBeFocused();
    await box.pressSequentially("platyp");

    const results = page.getByRole("list", { name: "Search results" });
    const hit = results.getByRole("link").filter({ hasText: "platypus" });
    await expect(hit).toHaveCount(1);
    await expect(hit.locator(".search-title")).toHaveText("Tell me an odd animal fact");
    // The matched word is marked, as an element around text.
    await expect(hit.locator("mark")).toHaveText("platypus");

    await hit.click();
    await expect(page).toHaveURL(new RegExp(`/c/${old}\\?at=`));
    const answer = page.locator("li.message.assistant").filter({ hasText: "The platypus lays eggs." });
    await expect(answer).toHaveCount(1);
    await expect(answer).toHaveAttribute("data-found", "");
    await expect(answer).toBeInViewport();
    // The list reaches from that answer to the newest message, in order.
    await expect(page.locator("li.message.user").last()).toContainText("Follow-up 30");
    // The highlight is brief.
    await expect(answer).not.toHaveAttribute("data-found", "", { timeout: 5_000 });
    // The address opens there too, rendered by the server.
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(answer).toBeInViewport();
    await expect(answer).toHaveAttribute("data-found", "");

    // Esc empties the box; nothing typed, no results.
    await box.focus();
    await box.press("Escape");
    await expect(box).toHaveValue("");
    await expect(results).toHaveCount(0);
    // Words found nowhere say so.
    await box.pressSequentially("zzyzx");
    await expect(page.getByText("No conversation holds those words.")).toBeVisible();

    // Pinned: listed apart, above the others, until unpinned.
    // (A row's buttons show when it is hovered or focused.)
    await page.locator(".conversation-list li", { hasText: "Newer chat 1" }).hover();
    await page.getByRole("button", { name: "Pin “Newer chat 1”" }).click();
    const pinned = page.getByRole("list", { name: "Pinned" });
    await expect(pinned.getByRole("link")).toHaveText(["Newer chat 1"]);
    await expect(page.locator(".conversation-list:not(.pinned) a", { hasText: "Newer chat 1" })).toHaveCount(0);
    await pinned.locator("li").hover();
    await pinned.getByRole("button", { name: "Unpin “Newer chat 1”" }).click();
    await expect(pinned).toHaveCount(0);
    await expect(page.locator(".conversation-list a", { hasText: "Newer chat 1" })).toHaveCount(1);
  } finally {
    await rill.stop();
  }
});
