import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { composer, configureFake, lastReply, openNewChat, send, sendTurn } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

// Rill on a phone (issue 24): installable (manifest, icons, a service worker that keeps only the
// build's static files), and comfortable at 360–430 px by touch.

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);
const small = { viewport: { width: 360, height: 740 }, hasTouch: true, isMobile: true };
const large = { viewport: { width: 430, height: 932 }, hasTouch: true, isMobile: true };

const sidebar = (page: Page) => page.locator("nav.sidebar");
const menuButton = (page: Page) => page.getByRole("button", { name: "Conversations", exact: true });
const sendButton = (page: Page) => page.getByRole("button", { name: "Send", exact: true });

/// A reply stopped after a few tokens: its row holds the model, "Stopped", the usage, Continue,
/// Copy and Regenerate.
async function stoppedReply(page: Page) {
  await configureFake(page, { tokens: 300, token_delay_ms: 40 });
  await openNewChat(page);
  await composer(page).fill("Tell me a long story");
  await sendButton(page).tap();
  await expect(lastReply(page).locator(".content")).not.toBeEmpty();
  await page.getByRole("button", { name: "Stop", exact: true }).tap();
  await expect(lastReply(page).locator(".turn-status")).toHaveText("Stopped");
  await expect(lastReply(page).getByRole("button", { name: "Continue" })).toBeVisible();
}

/// Controls a finger can hit that are smaller than 44×44 px (visible ones only; links inside a
/// reply's text are exempt, as inline links are in WCAG 2.5.8).
async function smallTargets(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const controls = document.querySelectorAll<HTMLElement>("button, select, textarea, summary, a[href]");
    const small: string[] = [];
    for (const el of controls) {
      if (el.closest(".markdown") && el.tagName === "A") continue;
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0 || getComputedStyle(el).visibility === "hidden") continue;
      if (box.width < 44 || box.height < 44) {
        small.push(`${el.tagName.toLowerCase()}.${el.className} “${(el.textContent ?? "").trim().slice(0, 20)}” ${Math.round(box.width)}×${Math.round(box.height)}`);
      }
    }
    return small;
  });
}

test.describe("installing", () => {
  test("the manifest names the app with its icons, and the service worker keeps only the build's static files, never a page or an API answer", async ({ page }) => {
    await openNewChat(page);
    const href = await page.locator('link[rel="manifest"]').getAttribute("href");
    const manifest = await (await page.request.get(href!)).json();
    expect(manifest).toMatchObject({
      name: "Rill",
      short_name: "Rill",
      start_url: "/",
      scope: "/",
      display: "standalone",
    });
    expect(manifest.theme_color).toMatch(/^#[0-9a-f]{6}$/);
    expect(manifest.background_color).toMatch(/^#[0-9a-f]{6}$/);
    const kinds = new Set<string>();
    for (const icon of manifest.icons) {
      const response = await page.request.get(icon.src);
      expect(response.status(), icon.src).toBe(200);
      expect(response.headers()["content-type"]).toBe("image/png");
      // A PNG's size is in its header: width and height at bytes 16–23.
      const png = await response.body();
      const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
      expect(`${width}x${height}`, icon.src).toBe(icon.sizes);
      kinds.add(`${icon.purpose} ${icon.sizes}`);
    }
    expect([...kinds].sort()).toEqual(["any 192x192", "any 512x512", "maskable 192x192", "maskable 512x512"]);
    // The browser bar follows the colour scheme.
    await expect(page.locator('meta[name="theme-color"][media*="light"]')).toHaveCount(1);
    await expect(page.locator('meta[name="theme-color"][media*="dark"]')).toHaveCount(1);

    // The worker registers; from the next load it serves the page's files.
    const script = await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL);
    expect(new URL(script!).pathname).toBe("/sw.js");
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);

    // A chat, a conversation opened by its address, the usage page: none of it is kept.
    await configureFake(page, { tokens: 5, token_delay_ms: 5 });
    await send(page, "Is this kept on the device?");
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    const kept = await page.evaluate(async () => {
      const paths: string[] = [];
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) paths.push(new URL(request.url).pathname);
      }
      return paths;
    });
    expect(kept.some((p) => /^\/pkg\/rill\.[\w-]{22}\.wasm$/.test(p)), `the WASM is kept: ${kept}`).toBe(true);
    for (const path of kept) {
      expect(path, "only hashed build files and icons").toMatch(/^\/pkg\/[^/]+\.[\w-]{22}\.\w+$|^\/icons\/[\w-]+\.png$/);
    }
    expect(kept.filter((p) => p.startsWith("/api/") || p === "/" || p.startsWith("/c/"))).toEqual([]);
  });
});

test.describe("on a 360 px phone", () => {
  test.use(small);

  test("the drawer closes by a tap beside it, Esc, a swipe to the left or a conversation chosen, and gives the focus back to ☰", async ({ page }) => {
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    // Two conversations: one to be on, one to choose.
    for (const name of ["first", "second"]) {
      await openNewChat(page);
      await composer(page).fill(`Drawer test, ${name} ${Date.now()}`);
      await sendButton(page).tap();
      await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    }
    await expect(sidebar(page)).toBeHidden();

    const open = async () => {
      // A tap while the last swipe's fling still runs only stops the fling, as on a phone.
      await expect(async () => {
        if (await sidebar(page).isHidden()) await menuButton(page).tap();
        await expect(sidebar(page)).toBeVisible({ timeout: 1_000 });
      }).toPass();
      await expect(page.locator(".sidebar .new-chat"), "the focus goes into the drawer").toBeFocused();
      // ☰ is not covered by the drawer: a tap on it reaches it.
      const box = (await menuButton(page).boundingBox())!;
      const onTop = await page.evaluate(
        ([x, y]) => document.elementFromPoint(x, y)?.closest("button")?.id,
        [box.x + box.width / 2, box.y + box.height / 2],
      );
      expect(onTop).toBe("menu-button");
    };
    const closed = async (how: string) => {
      await expect(sidebar(page), how).toBeHidden();
      await expect(menuButton(page), `${how}: the focus is back on ☰`).toBeFocused();
      await expect(menuButton(page)).toHaveAttribute("aria-expanded", "false");
    };

    await open();
    await page.touchscreen.tap(345, 500);
    await closed("a tap beside the drawer");

    await open();
    await page.keyboard.press("Escape");
    await closed("Esc");

    await open();
    // A finger from the middle of the drawer to its left edge.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [{ x: 220, y: 400 }] });
    for (const x of [190, 150, 110, 70]) {
      await cdp.send("Input.dispatchTouchEvent", { type: "touchMove", touchPoints: [{ x, y: 404 }] });
    }
    await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    await closed("a swipe to the left");

    // ☰ also closes what it opened.
    await open();
    await menuButton(page).tap();
    await closed("☰ again");

    await open();
    const before = page.url();
    await page.locator(".conversation-list li:not(.active) a").first().tap();
    await expect(sidebar(page), "a conversation chosen").toBeHidden();
    await expect(page).not.toHaveURL(before);
  });

  test("while the drawer is open the page behind it is inert and Tab goes round the drawer and ☰", async ({ page }) => {
    await openNewChat(page);
    const inert = (selector: string) =>
      page.evaluate((s) => !!document.querySelector(s)?.closest("[inert]"), selector);
    const focusInDrawer = () =>
      page.evaluate(() => {
        const active = document.activeElement;
        return !!active && (active.id === "menu-button" || !!active.closest(".sidebar"));
      });
    expect(await inert("textarea")).toBe(false);

    await menuButton(page).tap();
    await expect(page.locator(".sidebar .new-chat")).toBeFocused();
    // The composer, the header's other controls and the skip link are out of reach; the drawer,
    // ☰ and the backdrop are not.
    for (const behind of ["textarea", ".settings-button", ".messages", ".skip-link"]) {
      expect(await inert(behind), `${behind} is inert`).toBe(true);
    }
    for (const kept of [".sidebar .new-chat", "#menu-button", ".drawer-backdrop", "[aria-live]"]) {
      expect(await inert(kept), `${kept} is not inert`).toBe(false);
    }
    // ☰ is the last stop: Tab from it goes to the drawer's first, Shift+Tab back to it.
    await menuButton(page).focus();
    await page.keyboard.press("Tab");
    expect(await focusInDrawer()).toBe(true);
    await expect(menuButton(page)).not.toBeFocused();
    await page.keyboard.press("Shift+Tab");
    await expect(menuButton(page)).toBeFocused();
    // And round: however far Tab goes, it stays in the drawer.
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press(i % 3 === 2 ? "Shift+Tab" : "Tab");
      expect(await focusInDrawer(), `Tab ${i}`).toBe(true);
    }

    await page.keyboard.press("Escape");
    await expect(sidebar(page)).toBeHidden();
    await expect(menuButton(page)).toBeFocused();
    expect(await page.evaluate(() => document.querySelectorAll("[inert]").length)).toBe(0);
    // The backdrop closes it too, and frees the page as well.
    await menuButton(page).tap();
    await expect(sidebar(page)).toBeVisible();
    expect(await inert("textarea")).toBe(true);
    await page.touchscreen.tap(345, 500);
    await expect(sidebar(page)).toBeHidden();
    expect(await inert("textarea")).toBe(false);
    await composer(page).tap();
    await expect(composer(page)).toBeFocused();
  });

  test("Enter inserts a line on a touch screen, and Send sends", async ({ page }) => {
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    await openNewChat(page);
    await expect(composer(page)).toHaveAttribute("placeholder", "Message Rill");
    await composer(page).tap();
    await page.keyboard.type("first line");
    await page.keyboard.press("Enter");
    await page.keyboard.type("second line");
    await expect(composer(page)).toHaveValue("first line\nsecond line");
    await expect(page.locator("li.message")).toHaveCount(0);
    await sendButton(page).tap();
    await expect(page.locator("li.message.user .content")).toHaveText("first line\nsecond line");
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  });

  test("a reply with a wide code block and table scrolls only inside them: the page never scrolls sideways", async ({ page }) => {
    const wide = "x".repeat(30);
    const reply = [
      "Here is the code:",
      "",
      "```rust",
      `fn main() { let a_very_long_name_that_does_not_fit = "${wide}${wide}"; println!("{a_very_long_name_that_does_not_fit}"); }`,
      "```",
      "",
      `| ${Array.from({ length: 9 }, (_, i) => `column ${i}`).join(" | ")} |`,
      `|${" --- |".repeat(9)}`,
      `| ${Array.from({ length: 9 }, (_, i) => `value_${i}_${wide}`).join(" | ")} |`,
      "",
      "| name | value | notes |",
      "| --- | --- | --- |",
      "| alpha | 1 | the first one, with a note long enough to need the whole width of a phone |",
      "",
      `A long address: https://example.com/${wide}${wide}${wide}`,
    ].join("\n");
    const script = reply.match(/[\s\S]{1,7}/g)!;
    await configureFake(page, { tokens: script.length, token_delay_ms: 1, script });
    await openNewChat(page);
    await composer(page).fill("Show me something wide");
    await sendButton(page).tap();
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await expect(lastReply(page).locator("table")).toHaveCount(2);

    const widths = await page.evaluate(() => {
      const messages = document.querySelector(".messages")!;
      const pre = document.querySelector<HTMLElement>(".markdown pre")!;
      const table = document.querySelector<HTMLElement>(".markdown table")!;
      return {
        page: document.scrollingElement!.scrollWidth,
        window: window.innerWidth,
        messages: messages.scrollWidth - messages.clientWidth,
        pre: [pre.scrollWidth > pre.clientWidth, pre.getBoundingClientRect().right],
        table: [table.scrollWidth > table.clientWidth, table.getBoundingClientRect().right],
      };
    });
    expect(widths.page, "the page is no wider than the screen").toBeLessThanOrEqual(widths.window);
    expect(widths.messages, "the conversation does not scroll sideways").toBe(0);
    expect(widths.pre[0], "the code block scrolls inside itself").toBe(true);
    expect(widths.pre[1]).toBeLessThanOrEqual(360);
    expect(widths.table[0], "the table scrolls inside itself").toBe(true);
    expect(widths.table[1]).toBeLessThanOrEqual(360);
    // A narrow table's words stay whole: "name", not "nam" and "e".
    const heads = lastReply(page).locator("table").last().locator("th");
    await expect(heads).toHaveText(["name", "value", "notes"]);
    const lines = await heads.evaluateAll((cells) =>
      cells.map((cell) => {
        const text = document.createRange();
        text.selectNodeContents(cell);
        return text.getClientRects().length;
      }),
    );
    expect(lines, "each heading on one line").toEqual([1, 1, 1]);
  });

  test("the usage and admin pages do not scroll sideways either: their tables scroll inside themselves", async ({ page }) => {
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    await openNewChat(page);
    await composer(page).fill("Something to count");
    await sendButton(page).tap();
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    for (const path of ["/usage", "/admin"]) {
      await openNewChat(page, path);
      await expect(page.locator("table.figures").first()).toBeVisible();
      const width = await page.evaluate(() => document.scrollingElement!.scrollWidth);
      expect(width, path).toBeLessThanOrEqual(360);
    }
  });

  test("the row under a stopped reply wraps inside the screen, and every control is a 44 px touch target", async ({ page }) => {
    await stoppedReply(page);
    const row = lastReply(page).locator(".turn-info");
    for (const name of ["Continue", "Copy", "Regenerate"]) {
      const button = row.getByRole("button", { name, exact: true });
      const box = (await button.boundingBox())!;
      expect(box.x + box.width, `${name} inside the screen`).toBeLessThanOrEqual(360);
      expect(box.height, `${name} is one line tall`).toBeLessThan(60);
      expect(await button.evaluate((b) => b.scrollWidth <= b.clientWidth), `${name} is not cut`).toBe(true);
    }
    expect((await row.boundingBox())!.width).toBeLessThanOrEqual(360);
    expect(await page.evaluate(() => document.scrollingElement!.scrollWidth)).toBeLessThanOrEqual(360);

    // Nothing appears only on hover: the reply's and the question's actions are there to tap.
    await expect(lastReply(page).getByRole("button", { name: "Copy", exact: true })).toBeVisible();
    await expect(page.locator("li.message.user").getByRole("button", { name: "Edit", exact: true })).toBeVisible();
    expect(await smallTargets(page), "the chat's controls").toEqual([]);
    await menuButton(page).tap();
    await expect(sidebar(page)).toBeVisible();
    expect(await smallTargets(page), "the drawer's controls").toEqual([]);
  });

  test("Send keeps its size at the bottom of a tall draft, and Jump to latest stays above the draft", async ({ page }) => {
    await configureFake(page, { tokens: 300, token_delay_ms: 1 });
    await openNewChat(page);
    await composer(page).fill("A long reply, please");
    await sendButton(page).tap();
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await page.locator(".messages").evaluate((el) => el.scrollTo(0, 0));
    const jump = page.getByRole("button", { name: "↓ Jump to latest" });
    await expect(jump).toBeVisible();

    await composer(page).fill(Array.from({ length: 14 }, (_, i) => `line ${i}`).join("\n"));
    const field = (await composer(page).boundingBox())!;
    const send = (await sendButton(page).boundingBox())!;
    expect(field.height, "the draft is tall").toBeGreaterThan(150);
    expect(send.height, "Send does not stretch with it").toBeLessThan(60);
    expect(send.height).toBeGreaterThanOrEqual(44);
    expect(Math.abs(send.y + send.height - (field.y + field.height)), "Send sits at the bottom").toBeLessThan(4);
    const button = (await jump.boundingBox())!;
    expect(button.y + button.height, "Jump to latest is above the draft").toBeLessThanOrEqual(field.y);
  });

  test("the model picker has a row of its own: the model's name and price are not cut", async ({ page }) => {
    await openNewChat(page);
    const fit = await page.locator(".model-picker select").evaluate((select: HTMLSelectElement) => {
      const style = getComputedStyle(select);
      const context = document.createElement("canvas").getContext("2d")!;
      context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      const text = select.selectedOptions[0].text;
      // Room for the text: the box less its padding and the arrow (about 24 px).
      const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 24;
      return { text, width: context.measureText(text).width, room };
    });
    expect(fit.text).toContain("fake-model · $");
    expect(fit.width, `“${fit.text}” fits`).toBeLessThanOrEqual(fit.room);
  });

  test("the page keeps to the visible height, so the composer stays above an on-screen keyboard", async ({ page }) => {
    await openNewChat(page);
    const height = () => page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--viewport-height").trim());
    expect(await height()).toBe("740px");
    // Nothing moved the visual viewport down the page (iOS does when its keyboard opens).
    expect(await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--viewport-top").trim())).toBe("0px");
    // What a keyboard leaves of the screen.
    await page.setViewportSize({ width: 360, height: 420 });
    await expect.poll(height).toBe("420px");
    const box = (await page.locator("form.composer").boundingBox())!;
    expect(box.y + box.height).toBeLessThanOrEqual(420);
  });
});

test.describe("on a 430 px phone", () => {
  test.use(large);

  test("an empty conversation says which model answers, and an example fills the composer to adapt before sending", async ({ page }) => {
    await openNewChat(page);
    await expect(page.locator(".empty-model")).toHaveText(/Answered by fake-model/);
    const examples = page.locator(".examples button");
    await expect(examples).toHaveCount(4);
    for (const example of await examples.all()) {
      const box = (await example.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(430);
      expect(box.height).toBeGreaterThanOrEqual(44);
    }
    await examples.filter({ hasText: "Write some code" }).tap();
    await expect(composer(page)).toHaveValue(/^Write a Rust function that tells whether a string is a palindrome/);
    await expect(composer(page)).toBeFocused();
    await expect(page.locator("li.message")).toHaveCount(0);
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    await sendButton(page).tap();
    await expect(page.locator("li.message.user .content")).toHaveText(/^Write a Rust function/);
    await expect(page.locator(".empty")).toHaveCount(0);
  });

  test("New chat and the account menu stay in view above and below a long list of conversations", async ({ page }) => {
    // A server of its own, so the turns that make the list count against nobody else's limits.
    const rill = new RillProcess(base + 7, tempDatabase(), {
      RILL_TURNS_PER_MINUTE: "100000",
      RILL_WRITES_PER_MINUTE: "100000",
    });
    await rill.start();
    try {
      await configureFake(page, { tokens: 2, token_delay_ms: 0 });
      for (let i = 1; i <= 30; i++) await sendTurn(page, rill.url, `Conversation ${i}`);
      await page.goto(rill.url);
      await expect(page.locator("html[data-hydrated]")).toBeAttached();
      await menuButton(page).tap();
      await expect(page.locator(".conversation-list li")).toHaveCount(30);
      const list = page.locator(".conversation-list");
      await list.evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await sidebar(page).evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await expect(page.locator(".conversation-list li").last()).toBeInViewport();
      await expect(page.getByRole("button", { name: "New chat" })).toBeInViewport();
      const newChat = (await page.getByRole("button", { name: "New chat" }).boundingBox())!;
      expect(newChat.y, "New chat is at the top of the drawer").toBeGreaterThanOrEqual(0);
      await expect(page.locator(".sidebar .account-menu")).toBeInViewport();
    } finally {
      await rill.stop();
    }
  });
});

test("Enter still sends on a desktop", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await expect(composer(page)).toHaveAttribute("placeholder", /Enter to send/);
  await composer(page).fill("Sent by Enter");
  await composer(page).press("Enter");
  await expect(page.locator("li.message.user .content")).toHaveText("Sent by Enter");
  await expect(composer(page)).toHaveValue("");
});
