import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

test("a long conversation loads earlier messages as the reader scrolls up, keeping their place, and the browser skips messages out of view", async ({
  page,
}) => {
  // A server of its own, whose limits let the test build a long history quickly.
  const rill = new RillProcess(base + 8, tempDatabase(), {
    RILL_TURNS_PER_MINUTE: "100000",
    RILL_WRITES_PER_MINUTE: "100000",
  });
  await rill.start();
  try {
    await configureFake(page, { tokens: 12, token_delay_ms: 0 });
    let conversation: string | null = null;
    for (let i = 1; i <= 70; i++) conversation = await sendTurn(page, rill.url, `Question ${i}`, conversation);

    // Each window's request waits until the test has noted where the reader is.
    let release: (() => void) | null = null;
    let held = 0;
    await page.route("**/api/get_conversation", async (route) => {
      held += 1;
      await new Promise<void>((resolve) => (release = resolve));
      await route.continue();
    });
    await page.goto(`${rill.url}/c/${conversation}`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    const questions = page.locator("li.message.user .content");
    await expect(questions).toHaveCount(20);
    await expect(questions.first()).toHaveText("Question 51");

    // Every message, those rendered by the server too, is skipped by the browser out of view.
    const skippable = () =>
      page
        .locator("li.message")
        .evaluateAll((items) => items.every((li) => getComputedStyle(li).contentVisibility === "auto"));
    expect(await skippable()).toBe(true);

    const list = page.locator(".messages");
    await list.hover();
    for (const [first, count] of [
      [51, 40],
      [31, 60],
      [11, 70],
    ] as const) {
      // The reader scrolls up with the wheel, towards the oldest message shown…
      const before = held;
      for (let wheel = 0; held === before; wheel++) {
        expect(wheel, "scrolling up asked for earlier messages").toBeLessThan(100);
        await page.mouse.wheel(0, -400);
        await page.waitForTimeout(50);
      }
      // …(the scroll settles while the earlier messages are on their way)…
      let top = -1;
      await expect
        .poll(async () => {
          const now = await list.evaluate((el) => el.scrollTop);
          const settled = now === top;
          top = now;
          return settled;
        })
        .toBe(true);
      const reading = page.locator("li.message.user .content", { hasText: new RegExp(`^Question ${first}$`) });
      const at = (await reading.boundingBox())!.y;
      // …and when they arrive, without a click, what they were reading stays where it was.
      release!();
      await expect(questions).toHaveCount(count);
      await expect.poll(async () => Math.abs((await reading.boundingBox())!.y - at)).toBeLessThan(2);
    }
    await expect(questions.first()).toHaveText("Question 1");
    await expect(page.getByRole("button", { name: "Show earlier messages", exact: true })).toHaveCount(0);
    expect(await skippable()).toBe(true);
    // Skipped messages are still the page's text: the oldest question can be scrolled to.
    await questions.first().scrollIntoViewIfNeeded();
    await expect(questions.first()).toBeInViewport();
    await page.screenshot({ path: "test-results/long-conversation.png" });
  } finally {
    await rill.stop();
  }
});
