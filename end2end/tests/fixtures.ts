import { expect, test as base } from "@playwright/test";
import { stoppedOrigins } from "./processes";

/** A request refused by a server the test itself stopped (a page left open on it reconnects). */
function refusedByStoppedServer(m: import("@playwright/test").ConsoleMessage, pageUrl: string) {
  if (!m.text().includes("net::ERR_CONNECTION_REFUSED")) return false;
  try {
    return stoppedOrigins.has(new URL(m.location().url || pageUrl).origin);
  } catch {
    return false;
  }
}

/// Every browser test fails on a console error, an uncaught page error or a dialog in any page it
/// opens, in its own context or in another it makes with `browser.newContext()` (a second person)
/// (a WASM panic prints one, then throws `RuntimeError: unreachable`). A test that breaks the
/// network on purpose says what breaking it may print in `expectedErrors`.
export const test = base.extend<{ expectedErrors: RegExp | null }>({
  expectedErrors: [null, { option: true }],
  context: async ({ context, browser, expectedErrors }, use) => {
    const problems: string[] = [];
    stoppedOrigins.clear();
    const watch = (page: import("@playwright/test").Page) => {
      page.on("console", (m) => {
        if (m.type() === "error" && !expectedErrors?.test(m.text()) && !refusedByStoppedServer(m, page.url())) {
          problems.push(`console error on ${page.url()}: ${m.text()}`);
        }
      });
      page.on("pageerror", (e) => problems.push(`page error on ${page.url()}: ${e}`));
      page.on("dialog", async (d) => {
        problems.push(`dialog on ${page.url()}: ${d.message()}`);
        await d.dismiss();
      });
    };
    const watchAll = (c: import("@playwright/test").BrowserContext) => {
      c.pages().forEach(watch);
      c.on("page", watch);
    };
    watchAll(context);
    // Contexts the test makes itself are watched too, for this test only.
    const newContext = browser.newContext.bind(browser);
    browser.newContext = async (...args) => {
      const made = await newContext(...args);
      watchAll(made);
      return made;
    };
    try {
      await use(context);
    } finally {
      browser.newContext = newContext;
    }
    expect(problems, "console errors, page errors and dialogs").toEqual([]);
  },
});

export { expect };
