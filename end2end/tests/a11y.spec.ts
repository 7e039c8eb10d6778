import AxeBuilder from "@axe-core/playwright";
import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { composer, configureFake, lastReply, openNewChat, send, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

// axe-core (WCAG 2.0 and 2.1, levels A and AA) on every page Rill has, in light and dark, at a
// desktop and a phone size: any violation fails the test, listed rule by rule. Dark is checked
// both ways a page becomes dark: the device's preference (`prefers-color-scheme`, the theme
// switch on "System") and the theme switch set to "Dark" on a light device.

// Each state is checked four times (two schemes, two sizes): the chat's test does about forty runs.
test.setTimeout(180_000);

const WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
const SIZES = [
  { name: "desktop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];
const SCHEMES = ["light", "dark"] as const;

/** Runs axe on the page as it is now; returns its violations in words. */
async function violations(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).withTags(WCAG_AA).analyze();
  return results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`).join("; ")}`,
  );
}

/** Checks the page in both schemes at both sizes, leaving it light at desktop size. */
async function checkEverywhere(page: Page, what: string) {
  const found: string[] = [];
  for (const size of SIZES) {
    await page.setViewportSize({ width: size.width, height: size.height });
    for (const scheme of SCHEMES) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const v of await violations(page)) found.push(`${what}, ${scheme}, ${size.name}: ${v}`);
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: "light" });
  expect(found, `axe violations on ${what}`).toEqual([]);
}

test("the chat has no axe violations: empty, with a finished reply, a stopped one, an error, the settings and the shortcuts open, in light and dark, desktop and phone", async ({ page }) => {
  await openNewChat(page);
  await checkEverywhere(page, "a new chat");
  // A draft makes Send a live, filled button.
  await composer(page).fill("A draft");
  await checkEverywhere(page, "a new chat with a draft");
  await composer(page).fill("");

  await configureFake(page, { tokens: 8, token_delay_ms: 5 });
  await send(page, "A question with a finished answer");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(lastReply(page).locator(".usage")).toBeVisible();
  await checkEverywhere(page, "a finished reply");
  await lastReply(page).locator(".usage").click();
  await expect(lastReply(page).locator(".usage-breakdown")).toBeVisible();
  await checkEverywhere(page, "a reply's usage breakdown");
  // The conversation's totals say what they are on request, by keyboard as by touch.
  await page.locator(".chat-header .totals").focus();
  await page.keyboard.press("Enter");
  await expect(page.locator(".totals-note")).toHaveText("Tokens and cost of this conversation so far.");
  await checkEverywhere(page, "the conversation's totals explained");
  await page.keyboard.press("Enter");
  await expect(page.locator(".totals-note")).toBeHidden();

  await configureFake(page, { tokens: 1000, token_delay_ms: 30 });
  await send(page, "A question whose answer is stopped");
  await expect(lastReply(page).locator(".content")).not.toBeEmpty();
  await checkEverywhere(page, "a reply being written (Stop)");
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  await expect(lastReply(page).getByRole("button", { name: "Continue" })).toBeVisible();
  await checkEverywhere(page, "a stopped reply with its actions");

  await configureFake(page, { tokens: 3, token_delay_ms: 5, fail_status: 400, fail_times: 1 });
  await send(page, "A question that fails");
  await expect(lastReply(page)).toHaveAttribute("data-status", "failed");
  await checkEverywhere(page, "a failed reply");

  await page.getByRole("button", { name: "Settings" }).click();
  await expect(page.locator("#conversation-settings")).toBeVisible();
  await checkEverywhere(page, "the conversation's settings");
  // A system prompt: the next reply's `prompt v1` mark opens to say what it was.
  await page.getByRole("textbox", { name: "System prompt" }).fill("Be brief.");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByRole("button", { name: "Settings" }).click();
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await send(page, "A question with a system prompt");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await lastReply(page).locator(".turn-prompt").focus();
  await page.keyboard.press("Enter");
  await expect(lastReply(page).locator(".prompt-text")).toHaveText("Be brief.");
  await checkEverywhere(page, "a reply's system prompt shown");

  await composer(page).blur();
  await page.keyboard.press("?");
  await expect(page.getByRole("dialog", { name: "Keyboard shortcuts" })).toBeVisible();
  await checkEverywhere(page, "the shortcuts dialog");
  await page.keyboard.press("Escape");

  // Dark by the theme switch on a light device: the same colours through `data-theme`.
  await page.getByLabel("Theme").selectOption("dark");
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  expect(await violations(page), "dark by the theme switch").toEqual([]);
  await page.getByLabel("Theme").selectOption("system");
});

test("the usage page has no axe violations", async ({ page }) => {
  await page.goto("/usage");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.getByRole("heading", { level: 1 })).toBeVisible();
  await checkEverywhere(page, "the usage page");
});

test("a shared conversation's page has no axe violations", async ({ page, baseURL }) => {
  await configureFake(page, { tokens: 2, token_delay_ms: 0, script: ["Rivers **flow** to the sea.\n\n", "```rust\nfn main() {}\n```"] });
  const conversation = await sendTurn(page, baseURL ?? "", "Where do rivers go?");
  const shared = await page.request.post("/api/share_conversation", { data: { conversation_id: conversation } });
  expect(shared.ok()).toBeTruthy();
  await page.goto((await shared.json()).path);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Where do rivers go?");
  await checkEverywhere(page, "a shared conversation");
});

test("the import and export page has no axe violations", async ({ page }) => {
  await page.goto("/import-export");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Import and export");
  await checkEverywhere(page, "the import and export page");
});

test("sign-in, admin, account and usage pages with accounts have no axe violations", async ({ browser }) => {
  const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);
  const rill = new RillProcess(base + 7, tempDatabase(), { RILL_AUTH: "accounts" });
  rill.addUser("root", "root-password", true);
  await rill.start();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${rill.url}/`);
    await expect(page).toHaveURL(`${rill.url}/signin`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await checkEverywhere(page, "the sign-in page");
    // A wrong password: the page with its error.
    await page.getByLabel("Username").fill("root");
    await page.getByLabel("Password").fill("wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert")).toBeVisible();
    await checkEverywhere(page, "the sign-in page with an error");
    await page.getByLabel("Password").fill("root-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(`${rill.url}/`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await checkEverywhere(page, "the chat, signed in");
    for (const [path, heading] of [
      ["/admin", "Admin"],
      ["/account", "Change password"],
      ["/usage", "Usage"],
    ]) {
      await page.goto(`${rill.url}${path}`);
      await expect(page.locator("html[data-hydrated]")).toBeAttached();
      await expect(page.getByRole("heading", { level: 1 })).toContainText(heading);
      await checkEverywhere(page, `the ${path} page`);
    }
  } finally {
    await rill.stop();
  }
});
