import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, fakeText, replyText, send, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

// A window is 20 turns (40 messages); the page holds at most three (`windows.rs`).
const HELD_MESSAGES = 120;

test("a long conversation loads earlier messages as the reader scrolls up and later ones as they scroll back down, keeping their place and a bounded number of messages, and the browser skips messages out of view", async ({
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
    const messagesHeld = async () => page.locator("li.message").count();
    await list.hover();
    // The fourth window lets go of the newest: the page holds three (questions 1 to 50).
    for (const [first, count] of [
      [51, 40],
      [31, 60],
      [11, 50],
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
      expect(await messagesHeld()).toBeLessThanOrEqual(HELD_MESSAGES);
    }
    await expect(questions.first()).toHaveText("Question 1");
    await expect(questions.last()).toHaveText("Question 50");
    await expect(page.getByRole("button", { name: "Show earlier messages", exact: true })).toHaveCount(0);
    await expect(page.getByRole("button", { name: "Show later messages", exact: true })).toHaveCount(1);
    expect(await skippable()).toBe(true);
    // Skipped messages are still the page's text: the oldest question can be scrolled to.
    await questions.first().scrollIntoViewIfNeeded();
    await expect(questions.first()).toBeInViewport();
    await page.screenshot({ path: "test-results/long-conversation.png" });

    // Back down: the newest window comes again before the reader reaches the end of what the
    // page holds, the oldest goes, and what they read stays where it was.
    await list.hover();
    const asked = held;
    for (let wheel = 0; held === asked; wheel++) {
      expect(wheel, "scrolling down asked for later messages").toBeLessThan(200);
      await page.mouse.wheel(0, 400);
      await page.waitForTimeout(50);
    }
    // The question the reader sees at the top of the list.
    const seen = await list.evaluate((el) => {
      const top = el.getBoundingClientRect().top;
      const items = [...el.querySelectorAll("li.message.user .content")];
      return items.find((q) => q.getBoundingClientRect().top >= top)?.textContent ?? "";
    });
    expect(seen).toMatch(/^Question \d+$/);
    const reading = page.locator("li.message.user .content", { hasText: new RegExp(`^${seen}$`) });
    const at = (await reading.boundingBox())!.y;
    release!();
    await expect(questions.last()).toHaveText("Question 70");
    await expect(questions).toHaveCount(60);
    await expect(questions.first()).toHaveText("Question 11");
    await expect.poll(async () => Math.abs((await reading.boundingBox())!.y - at)).toBeLessThan(2);
    expect(await messagesHeld()).toBeLessThanOrEqual(HELD_MESSAGES);
    await expect(page.getByRole("button", { name: "Show later messages", exact: true })).toHaveCount(0);
    await expect(page.getByRole("button", { name: "Show earlier messages", exact: true })).toHaveCount(1);

    // At the newest again, a reply streams at the end as in any conversation.
    await page.unroute("**/api/get_conversation");
    await send(page, "Question 71");
    await expect(questions.last()).toHaveText("Question 71");
    await expect.poll(() => replyText(page)).toBe(fakeText(12));
    await expect(page.locator("li.message").last()).toBeInViewport();

    // Sent from far up, where the page let go of the newest: the message goes after the newest
    // all the same, which comes back to show it and its reply.
    await list.hover();
    for (let wheel = 0; (await page.getByRole("button", { name: "Show later messages", exact: true }).count()) === 0; wheel++) {
      expect(wheel, "scrolling up let go of the newest").toBeLessThan(300);
      await page.mouse.wheel(0, -1200);
      await page.waitForTimeout(50);
    }
    expect(await messagesHeld()).toBeLessThanOrEqual(HELD_MESSAGES);
    await send(page, "Question 72");
    await expect(questions.last()).toHaveText("Question 72");
    await expect(questions.nth(-2)).toHaveText("Question 71");
    await expect.poll(() => replyText(page)).toBe(fakeText(12));
    await expect(page.getByRole("button", { name: "Show later messages", exact: true })).toHaveCount(0);
  } finally {
    await rill.stop();
  }
});
