import { expect, test } from "./fixtures";
import { openNewChat } from "./helpers";

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
