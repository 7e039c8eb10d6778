import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { composer, configureFake, fakeText, lastReply, openNewChat, send } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

// What a person using a keyboard or a screen reader relies on: the live region, who wrote each
// message, the tab title, aria-current, the skip link, one Tab stop per conversation, the
// shortcuts and their dialog, and the theme remembered without a flash.

const announcer = (page: Page) => page.getByTestId("announcer");
const conversationLinks = (page: Page) => page.locator(".conversation-list li a");

/** Puts the keyboard at the start of the page, as a fresh load with nothing focused would (a
 *  blur alone leaves Chromium's Tab starting point where the focus was). */
async function focusNothing(page: Page) {
  await page.evaluate(() => {
    const start = document.createElement("div");
    start.tabIndex = -1;
    document.body.prepend(start);
    start.focus();
  });
}

test("the live region says when a reply starts, ends, is stopped or fails, never its tokens", async ({ page }) => {
  await openNewChat(page);
  await expect(announcer(page)).toHaveText("");
  await expect(announcer(page)).toHaveAttribute("aria-live", "polite");
  await configureFake(page, { tokens: 30, token_delay_ms: 40 });
  await send(page, "Tell me something");
  await expect(announcer(page)).toHaveText("Writing a reply…");
  await expect(lastReply(page).locator(".content")).not.toBeEmpty();
  // Text streaming in does not reach the region.
  await expect(announcer(page)).toHaveText("Writing a reply…");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(announcer(page)).toHaveText("The reply is complete.");

  await configureFake(page, { tokens: 300, token_delay_ms: 30 });
  await send(page, "Something long");
  await expect(announcer(page)).toHaveText("Writing a reply…");
  await expect(lastReply(page).locator(".content")).not.toBeEmpty();
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(announcer(page)).toHaveText("The reply was stopped.");

  await configureFake(page, { tokens: 3, token_delay_ms: 5, fail_status: 400, fail_times: 1 });
  await send(page, "This fails");
  await expect(lastReply(page)).toHaveAttribute("data-status", "failed");
  await expect(announcer(page)).toHaveText(/^The reply failed: /);
});

test("each message says who wrote it, the conversation has a heading and its title is the tab's; the open one is aria-current", async ({ page }) => {
  await openNewChat(page);
  await expect(page).toHaveTitle("Rill");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("New chat");
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await send(page, "First conversation\nwith a second line");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(page.locator("li.message.user h2")).toHaveText("You said:");
  await expect(lastReply(page).locator("h2")).toHaveText("fake-model said:");
  await expect(page).toHaveTitle("First conversation");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("First conversation");
  const firstUrl = page.url();

  await page.getByRole("button", { name: "New chat" }).click();
  await expect(page).toHaveTitle("Rill");
  await send(page, "Second conversation");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(page).toHaveTitle("Second conversation");
  await expect(page.locator('.conversation-list a[aria-current="page"]')).toHaveText("Second conversation");
  await expect(page.locator(".conversation-list a[aria-current]")).toHaveCount(1);

  // Opening the other one by its link moves aria-current and the title with it.
  await page.getByRole("link", { name: "First conversation" }).click();
  await expect(page).toHaveURL(firstUrl);
  await expect(page.locator('.conversation-list a[aria-current="page"]')).toHaveText("First conversation");
  await expect(page).toHaveTitle("First conversation");
  // A rename is the tab's title at once.
  await page.getByRole("link", { name: "First conversation" }).focus();
  await page.keyboard.press("F2");
  await page.getByLabel("Conversation title").fill("Renamed by keyboard");
  await page.keyboard.press("Enter");
  await expect(page).toHaveTitle("Renamed by keyboard");
  // Loaded by its address, the page has the same title and heading.
  await page.goto(firstUrl);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page).toHaveTitle("Renamed by keyboard");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Renamed by keyboard");
});

test("a reply's usage breakdown opens by keyboard and by a tap or click", async ({ page }) => {
  await configureFake(page, { tokens: 6, token_delay_ms: 5, cached_tokens: 4 });
  await openNewChat(page);
  await send(page, "Count my tokens");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const summary = lastReply(page).locator("summary.usage");
  const breakdown = lastReply(page).locator(".usage-breakdown");
  await expect(breakdown).toBeHidden();
  await summary.focus();
  await page.keyboard.press("Enter");
  await expect(breakdown).toBeVisible();
  await expect(breakdown).toContainText("Input:");
  await expect(breakdown).toContainText("Output: 6 tokens");
  await page.keyboard.press("Enter");
  await expect(breakdown).toBeHidden();
  await summary.dispatchEvent("click");
  await expect(breakdown).toBeVisible();
});

test("the skip link is the first Tab stop and takes the focus past the sidebar to the conversation", async ({ page }) => {
  await openNewChat(page);
  await focusNothing(page);
  await page.keyboard.press("Tab");
  const skip = page.getByRole("link", { name: "Skip to the conversation" });
  await expect(skip).toBeFocused();
  await expect(skip).toBeInViewport();
  await page.keyboard.press("Enter");
  await expect(page.locator("main#conversation")).toBeFocused();
  // The next Tab is inside the conversation, not in the sidebar.
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => !!document.activeElement?.closest("main#conversation"))).toBe(true);
});

test("ten conversations take one Tab each; F2, Delete and the arrows reach a row's Rename and Delete", async ({ page }) => {
  await configureFake(page, { tokens: 2, token_delay_ms: 1 });
  await openNewChat(page);
  // Other tests' conversations are older: these ten are the top of the list.
  const before = await conversationLinks(page).count();
  for (let i = 1; i <= 10; i++) {
    await page.getByRole("button", { name: "New chat" }).click();
    await send(page, `Conversation ${i}`);
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await expect(conversationLinks(page)).toHaveCount(before + i);
  }
  await focusNothing(page);
  // Skip link, New chat, the search box, then each conversation's link once: the tenth is the
  // 13th stop.
  let tabs = 0;
  const tenth = conversationLinks(page).nth(9);
  await expect(tenth).toHaveText("Conversation 1");
  while (tabs < 60) {
    await page.keyboard.press("Tab");
    tabs++;
    if (await tenth.evaluate((el) => el === document.activeElement)) break;
  }
  expect(tabs, "Tabs to reach the tenth conversation").toBe(13);
  // The next Tab goes on to the next conversation or past the list, not to a button of the row.
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement?.tagName)).not.toBe("BUTTON");

  // From a link: → reaches Rename, → Delete, ← back, Esc to the link.
  const row = page.locator(".conversation-list li").nth(9);
  await tenth.focus();
  await expect(row.getByRole("button", { name: /^Rename/ })).toBeVisible();
  await page.keyboard.press("ArrowRight");
  await expect(row.getByRole("button", { name: /^Rename/ })).toBeFocused();
  await page.keyboard.press("ArrowRight");
  await expect(row.getByRole("button", { name: /^Delete/ })).toBeFocused();
  await page.keyboard.press("ArrowLeft");
  await expect(row.getByRole("button", { name: /^Rename/ })).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(tenth).toBeFocused();
  // Delete on the link deletes it; the focus goes to Undo, which Enter presses.
  await page.keyboard.press("Delete");
  await expect(page.locator(".undo-toast")).toContainText("Conversation 1");
  await expect(page.getByRole("button", { name: "Undo" })).toBeFocused();
  await expect(conversationLinks(page)).toHaveCount(before + 9);
  await page.keyboard.press("Enter");
  await expect(conversationLinks(page)).toHaveCount(before + 10);
  // F2 renames from the keyboard too.
  await conversationLinks(page).first().focus();
  await page.keyboard.press("F2");
  await expect(page.getByLabel("Conversation title")).toBeFocused();
  await page.keyboard.press("Escape");
  // Delete again, for the count below.
  await tenth.focus();
  await page.keyboard.press("Delete");
  await expect(conversationLinks(page)).toHaveCount(before + 9);
});

test("shortcuts: Ctrl+Shift+O a new chat, Shift+Esc the message box, Ctrl+Shift+C copies the last answer", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await configureFake(page, { tokens: 4, token_delay_ms: 5 });
  await openNewChat(page);
  await send(page, "Something to copy");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(page).toHaveURL(/\/c\//);

  await focusNothing(page);
  await page.keyboard.press("Control+Shift+C");
  await expect(announcer(page)).toHaveText("Copied the last answer.");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(fakeText(4));

  await page.getByRole("button", { name: "Settings" }).focus();
  await page.keyboard.press("Shift+Escape");
  await expect(composer(page)).toBeFocused();

  await page.keyboard.press("Control+Shift+O");
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator("li.message")).toHaveCount(0);
  await expect(composer(page)).toBeFocused();
  await expect(page).toHaveTitle("Rill");
});

test("? opens the shortcuts in a modal dialog: the focus stays inside, Esc closes it and the focus goes back; typed in the message box it is a character", async ({ page }) => {
  await openNewChat(page);
  await composer(page).press("?");
  await expect(composer(page)).toHaveValue("?");
  await expect(page.getByRole("dialog")).toBeHidden();
  await composer(page).fill("");

  const settings = page.getByRole("button", { name: "Settings" });
  await settings.focus();
  await page.keyboard.press("?");
  const dialog = page.getByRole("dialog", { name: "Keyboard shortcuts" });
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText("New chat");
  await expect(dialog.getByRole("button", { name: "Close" })).toBeFocused();
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("Tab");
    expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  }
  await page.keyboard.press("Shift+Tab");
  expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(settings).toBeFocused();

  // The sidebar's button opens it too, and Close gives the focus back to it.
  const button = page.getByRole("button", { name: "Keyboard shortcuts" });
  await button.click();
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: "Close" }).click();
  await expect(dialog).toBeHidden();
  await expect(button).toBeFocused();
});

test("the theme switch: dark survives a reload, is in the server's HTML (no flash, even without scripts), and System follows the device", async ({ page, browser, context }) => {
  await page.emulateMedia({ colorScheme: "light" });
  await openNewChat(page);
  const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const light = await background();
  await page.getByLabel("Theme").selectOption("dark");
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  const dark = await background();
  expect(dark).not.toBe(light);

  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  await expect(page.getByLabel("Theme")).toHaveValue("dark");
  expect(await background()).toBe(dark);
  const html = await (await page.request.get("/")).text();
  expect(html).toMatch(/<html lang="en" data-theme="dark"/);
  // Without any script the first paint is already dark.
  const bare = await browser.newContext({ javaScriptEnabled: false, colorScheme: "light" });
  await bare.addCookies(await context.cookies());
  const barePage = await bare.newPage();
  await barePage.goto(page.url());
  expect(await barePage.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).toBe(dark);
  await bare.close();

  await page.getByLabel("Theme").selectOption("system");
  await expect(page.locator("html")).not.toHaveAttribute("data-theme", /.*/);
  expect(await background()).toBe(light);
  await page.emulateMedia({ colorScheme: "dark" });
  expect(await background()).toBe(dark);
  await page.reload();
  await expect(page.getByLabel("Theme")).toHaveValue("system");
  expect(await background()).toBe(dark);
});

test("with accounts, the theme is kept with the account: another browser gets it at sign-in", async ({ browser }) => {
  const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);
  const rill = new RillProcess(base + 8, tempDatabase(), { RILL_AUTH: "accounts" });
  rill.addUser("tess", "tess-password", false);
  await rill.start();
  const signIn = async (page: Page) => {
    await page.goto(`${rill.url}/signin`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await page.getByLabel("Username").fill("tess");
    await page.getByLabel("Password").fill("tess-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page).toHaveURL(`${rill.url}/`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
  };
  try {
    const laptop = await (await browser.newContext()).newPage();
    await signIn(laptop);
    await expect(laptop.locator("html")).not.toHaveAttribute("data-theme", /.*/);
    await laptop.getByLabel("Theme").selectOption("light");
    await expect(laptop.locator("html")).toHaveAttribute("data-theme", "light");
    // Kept by the server before another browser signs in.
    await expect.poll(async () => (await laptop.context().cookies()).find((c) => c.name === "rill_theme")?.value).toBe("light");
    const phone = await (await browser.newContext({ colorScheme: "dark" })).newPage();
    await signIn(phone);
    await expect(phone.locator("html")).toHaveAttribute("data-theme", "light");
    await expect(phone.getByLabel("Theme")).toHaveValue("light");
  } finally {
    await rill.stop();
  }
});
