import { expect, test } from "./fixtures";
import { configureFake, lastReply, openNewChat, send, sendTurn } from "./helpers";

// The chat's first load carries only the main WASM module; the usage, account and admin pages are
// split out (`app.rs`) and fetched when first opened, by a link or by loading their address.
test("the first load fetches only the chat's WASM; the usage page loads its own when opened", async ({ page }) => {
  const wasm: string[] = [];
  page.on("response", (response) => {
    const name = new URL(response.url()).pathname.split("/").pop() ?? "";
    if (name.endsWith(".wasm")) wasm.push(name);
  });

  await openNewChat(page);
  expect(wasm).toHaveLength(1);
  expect(wasm[0]).toMatch(/^rill\./);

  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Usage" })).toBeVisible();
  expect(wasm.some((name) => name.startsWith("split___usage_route"))).toBe(true);
  expect(wasm.some((name) => name.startsWith("split___admin_route"))).toBe(false);

  // Opened directly, a split page hydrates once its module is in.
  await page.goto("/account");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.getByRole("heading", { name: "Change password" })).toBeVisible();
});

// Parts of the chat the first screen does not show are their own files too (`on_demand.rs`),
// fetched when first wanted: the conversation's settings, a question being edited, a reply's
// thinking, and a conversation's messages with the connection that streams replies.
const wasmNames = (page: import("@playwright/test").Page) => {
  const names: string[] = [];
  page.on("response", (response) => {
    const name = new URL(response.url()).pathname.split("/").pop() ?? "";
    if (name.endsWith(".wasm")) names.push(name);
  });
  return names;
};

test("Settings is fetched when first wanted, opens on a fresh page at once, and keeps every key typed", async ({ page }) => {
  const wasm = wasmNames(page);
  await openNewChat(page);
  expect(wasm).toHaveLength(1);

  await page.getByRole("button", { name: "Settings", exact: true }).click();
  const prompt = page.getByRole("textbox", { name: "System prompt" });
  // Typed key by key the moment the field is there, as a person does right after the click.
  await prompt.pressSequentially("Answer briefly, in French.");
  await expect(prompt).toHaveValue("Answer briefly, in French.");
  await expect(page.getByRole("alert")).toHaveCount(0);
  expect(wasm.some((name) => name.startsWith("split_chat_settings"))).toBe(true);
  expect(wasm.some((name) => name.startsWith("split_chat_conversation"))).toBe(false);

  // Closed and opened again: shown at once from the file already in, with what was typed.
  await page.getByRole("button", { name: "Close", exact: true }).click();
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  await expect(prompt).toBeVisible();
});

test.describe("a part whose file cannot be fetched", () => {
  test.use({ expectedErrors: /Failed to load resource|WebAssembly|TypeError/ });

  test("says so in words, and is fetched again when next opened", async ({ page }) => {
    await openNewChat(page);
    // The server answers with an error (a deploy replaced the file, a proxy failed). An aborted
    // request would do the same here, but the split loader's own script then leaves a rejected
    // promise unhandled, which the fixture counts as a page error.
    await page.route("**/split_chat_settings*", (route) => route.fulfill({ status: 503, body: "busy" }));
    await page.getByRole("button", { name: "Settings", exact: true }).click();
    await expect(page.getByRole("alert")).toHaveText(/could not be loaded/);
    await page.unroute("**/split_chat_settings*");

    await page.getByRole("button", { name: "Settings", exact: true }).click();
    await page.getByRole("button", { name: "Settings", exact: true }).click();
    await expect(page.getByRole("textbox", { name: "System prompt" })).toBeVisible();
    await expect(page.getByRole("alert")).toHaveCount(0);
  });

  test("the shortcuts' list says so in words, and is fetched again when next asked for", async ({ page }) => {
    await openNewChat(page);
    await page.route("**/split_chat_shortcuts*", (route) => route.fulfill({ status: 503, body: "busy" }));
    const button = page.getByRole("button", { name: "Keyboard shortcuts" });
    await button.click();
    await expect(page.getByRole("alert")).toHaveText(/could not be loaded/);
    await page.unroute("**/split_chat_shortcuts*");

    await button.click();
    await expect(page.getByRole("dialog", { name: "Keyboard shortcuts" })).toBeVisible();
    await expect(page.getByRole("alert")).toHaveCount(0);
  });
});

test("the keyboard shortcuts' list is fetched when first wanted: by ? on a fresh page, and ahead of a click on its button", async ({ page }) => {
  const wasm = wasmNames(page);
  const shortcutsFile = () => wasm.some((name) => name.startsWith("split_chat_shortcuts"));
  await openNewChat(page);
  expect(wasm).toHaveLength(1);

  // Straight from the keyboard: the file comes with the key, then the list opens with the focus in it.
  const settings = page.getByRole("button", { name: "Settings", exact: true });
  await settings.focus();
  await page.keyboard.press("?");
  const dialog = page.getByRole("dialog", { name: "Keyboard shortcuts" });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByRole("button", { name: "Close" })).toBeFocused();
  expect(shortcutsFile()).toBe(true);
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await expect(settings).toBeFocused();

  // On a fresh page, the pointer over the sidebar's button fetches it before any click.
  await page.goto("/");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  wasm.length = 0;
  await page.getByRole("button", { name: "Keyboard shortcuts" }).hover();
  await expect.poll(shortcutsFile).toBe(true);
  await expect(dialog).toBeHidden();
});

test("a conversation's page fetches its messages' file before it hydrates, and a new chat with its first message", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  const wasm = wasmNames(page);
  await openNewChat(page);
  expect(wasm.some((name) => name.startsWith("split_chat_conversation"))).toBe(false);
  await send(page, "Hello");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  expect(wasm.some((name) => name.startsWith("split_chat_conversation"))).toBe(true);

  // Opened by its address: the server's messages hydrate (their buttons work).
  wasm.length = 0;
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  expect(wasm.some((name) => name.startsWith("split_chat_conversation"))).toBe(true);
  await expect(page.locator("li.message")).toHaveCount(2);
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await expect(page.getByRole("textbox", { name: "Edit message" })).toHaveValue("Hello");
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
  await expect(page.getByRole("textbox", { name: "Edit message" })).toHaveCount(0);
});

// A conversation is read in its file (`ui/chat/loaded.rs`): opened from the sidebar on a page
// that has not fetched that file yet, a failed fetch is said in words, and the next conversation
// opened fetches it again.
test.describe("a conversation whose file cannot be fetched", () => {
  test.use({ expectedErrors: /Failed to load resource|WebAssembly|TypeError/ });

  test("a conversation opened from the sidebar when its file cannot be fetched says so, and the next one opens", async ({ page, baseURL }) => {
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    const stamp = Date.now() % 100000;
    const [first, second] = [`First read in its file ${stamp}`, `Second read in its file ${stamp}`];
    // Sent through the API: the page's first load is this test's only one, so no service worker
    // answers for it yet (it would serve the file from its cache, past the refusal below).
    for (const title of [first, second]) await sendTurn(page, baseURL ?? "", title);

    // `/`: its module alone, without the conversation's file.
    const wasm = wasmNames(page);
    await openNewChat(page);
    expect(wasm.some((name) => name.startsWith("split_chat_conversation"))).toBe(false);
    await page.route("**/split_chat_conversation*", (route) => route.fulfill({ status: 503, body: "busy" }));
    await page.getByRole("link", { name: first }).click();
    await expect(page.getByRole("alert")).toHaveText(/Could not load the conversation: could not reach Rill/);
    await expect(page.locator("li.message")).toHaveCount(0);

    await page.unroute("**/split_chat_conversation*");
    await page.getByRole("link", { name: second }).click();
    await expect(page.locator("li.message")).toHaveCount(2);
    await expect(page.locator("li.message.user")).toContainText(second);
    await expect(page.getByRole("alert")).toHaveCount(0);
  });
});
