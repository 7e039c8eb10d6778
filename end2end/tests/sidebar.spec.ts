import AxeBuilder from "@axe-core/playwright";
import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { configureFake, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

// The sidebar with a long list: the page comes with its first screenful, older conversations
// come as the reader scrolls, and a row's actions (their code fetched on demand) still work on
// rows that came later.

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);
const COUNT = 160;
const FIRST_PAGE = 30;
const OLDER_PAGE = 100;

const list = (page: Page) => page.locator(".conversation-list:not(.pinned)");
const titles = (page: Page) => list(page).locator("li a");
const scrollToEnd = (page: Page) => list(page).evaluate((el) => el.scrollTo(0, el.scrollHeight));
/** axe (WCAG 2.0/2.1 A and AA) on the page as it is, in light and dark: violations in words. */
async function violations(page: Page): Promise<string[]> {
  const found: string[] = [];
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const results = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
    for (const v of results.violations) found.push(`${scheme}: ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join("; ")}`);
  }
  await page.emulateMedia({ colorScheme: "light" });
  return found;
}
const expected = (from: number, to: number) =>
  Array.from({ length: from - to + 1 }, (_, i) => `Conversation ${from - i}`);

test.describe("a long list of conversations", () => {
  // A failed page and a failed file are answered with a 503 on purpose below.
  test.use({ expectedErrors: /Failed to load resource|WebAssembly|TypeError/ });
  let rill: RillProcess;

  test.beforeAll(async ({ browser }) => {
    // A server of its own, whose limits let the test build a long list quickly.
    rill = new RillProcess(base + 10, tempDatabase(), {
      RILL_TURNS_PER_MINUTE: "100000",
      RILL_WRITES_PER_MINUTE: "100000",
    });
    await rill.start();
    const page = await browser.newPage();
    await configureFake(page, { tokens: 2, token_delay_ms: 0 });
    for (let i = 1; i <= COUNT; i++) await sendTurn(page, rill.url, `Conversation ${i}`);
    await page.close();
  });

  test.afterAll(async () => {
    await rill?.stop();
  });

  test("older conversations arrive as the reader scrolls, in order and each once", async ({ page }) => {
    await page.goto(rill.url);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    // The page comes with a screenful, whatever the count.
    await expect(titles(page)).toHaveCount(FIRST_PAGE);
    await expect(titles(page)).toHaveText(expected(COUNT, COUNT - FIRST_PAGE + 1));

    // Scrolled to its end, the list goes on by itself; where the reader was stays put.
    await scrollToEnd(page);
    await expect(titles(page)).toHaveCount(FIRST_PAGE + OLDER_PAGE);
    await scrollToEnd(page);
    await expect(titles(page)).toHaveCount(COUNT);
    await expect(titles(page)).toHaveText(expected(COUNT, 1));
    // The whole list is in: nothing more is offered.
    await expect(page.getByRole("button", { name: "Show older conversations" })).toHaveCount(0);
    await page.screenshot({ path: "test-results/sidebar-scrolled.png" });

    // A row that came later is renamed and deleted as any other; the list keeps its length
    // (less the one deleted) and the reader's place.
    await titles(page).filter({ hasText: /^Conversation 5$/ }).focus();
    await page.keyboard.press("F2");
    const input = page.getByLabel("Conversation title");
    await expect(input).toBeFocused();
    await input.fill("Renamed far down");
    await input.press("Enter");
    await expect(list(page).locator("li a", { hasText: "Renamed far down" })).toHaveCount(1);
    const scrolled = await list(page).evaluate((el) => el.scrollTop);
    await list(page).locator("li a", { hasText: "Renamed far down" }).focus();
    await page.keyboard.press("Delete");
    await expect(page.locator(".undo-toast")).toContainText("Renamed far down");
    await expect(titles(page)).toHaveCount(COUNT - 1);
    expect(Math.abs((await list(page).evaluate((el) => el.scrollTop)) - scrolled)).toBeLessThan(80);
    await page.getByRole("button", { name: "Undo" }).click();
    await expect(titles(page)).toHaveCount(COUNT);
    await expect(titles(page).nth(COUNT - 5)).toHaveText("Renamed far down");
    const all = await titles(page).allTextContents();
    expect(new Set(all).size, "no conversation twice").toBe(COUNT);
  });

  test("the keyboard asks for older ones with the button under the list", async ({ page }) => {
    await page.goto(rill.url);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(titles(page)).toHaveCount(FIRST_PAGE);
    const more = page.getByRole("button", { name: "Show older conversations" });
    expect(await violations(page), "axe violations with the button under the list").toEqual([]);
    await more.focus();
    await page.keyboard.press("Enter");
    await expect(titles(page)).toHaveCount(FIRST_PAGE + OLDER_PAGE);
    await expect(titles(page)).toHaveText(expected(COUNT, COUNT - FIRST_PAGE - OLDER_PAGE + 1));
    await expect(more).toBeFocused();
  });

  test("a page that fails says so, and Try again brings it", async ({ page }) => {
    await page.goto(rill.url);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(titles(page)).toHaveCount(FIRST_PAGE);
    // The server is unreachable for a moment (only the list's next pages: those name a cursor).
    let failed = 0;
    await page.route("**/api/list_conversations", (route) => {
      if (!route.request().postData()?.includes('"after":{')) return route.fallback();
      failed++;
      return route.fulfill({ status: 503, body: "busy" });
    });
    await scrollToEnd(page);
    const alert = page.locator(".older-conversations [role=alert]");
    await expect(alert).toHaveText(/^Could not load older conversations/);
    await expect(titles(page)).toHaveCount(FIRST_PAGE);
    expect(await violations(page), "axe violations with a page failed").toEqual([]);
    // Scrolling on does not ask again by itself; Try again does.
    await list(page).evaluate((el) => el.scrollTo(0, 0));
    await scrollToEnd(page);
    await page.waitForTimeout(300);
    expect(failed, "pages asked for while one had failed").toBe(1);
    await page.unroute("**/api/list_conversations");
    await page.getByRole("button", { name: "Try again" }).click();
    await expect(titles(page)).toHaveCount(FIRST_PAGE + OLDER_PAGE);
    await expect(alert).toHaveCount(0);
    await expect(titles(page)).toHaveText(expected(COUNT, COUNT - FIRST_PAGE - OLDER_PAGE + 1));
  });

  test("a row's actions whose file cannot be fetched say so in words, and it is fetched again with the next", async ({ page }) => {
    await page.route("**/split_sidebar_actions*", (route) => route.fulfill({ status: 503, body: "busy" }));
    await page.goto(rill.url);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    const row = list(page).locator("li").first();
    const title = await row.locator("a").textContent();
    await row.hover();
    await page.getByRole("button", { name: `Pin “${title}”` }).click();
    await expect(page.getByRole("alert")).toHaveText(/^Could not pin the conversation: this part of the page could not be loaded/);
    await page.unroute("**/split_sidebar_actions*");

    await row.hover();
    await page.getByRole("button", { name: `Pin “${title}”` }).click();
    const pinned = page.getByRole("list", { name: "Pinned" });
    await expect(pinned.getByRole("link")).toHaveText([title!]);
    await expect(page.getByRole("alert")).toHaveCount(0);
    await pinned.locator("li").hover();
    await pinned.getByRole("button", { name: `Unpin “${title}”` }).click();
    await expect(pinned).toHaveCount(0);
    await expect(titles(page).first()).toHaveText(title!);
  });
});
