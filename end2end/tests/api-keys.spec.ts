import { expect, test } from "./fixtures";

// The revoked key's request answers 401 (the page's own fetch below), which the console reports.
test.use({ expectedErrors: /status of 401/ });

test("an API key is made in the page, shown once, works against /v1, and is revoked", async ({ page }) => {
  await page.goto("/usage");
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  const section = page.locator("section.api-keys");
  await expect(section.getByRole("heading", { name: "API keys" })).toBeVisible();
  await expect(section.locator("code")).toHaveText(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);

  // Other specs on this server may make keys of their own: this one is found by its name.
  const name = `e2e key ${Date.now()}`;
  await section.getByLabel("Name").fill(name);
  await section.getByLabel(/Monthly budget/).fill("1.5");
  await section.getByLabel(/Expires after/).fill("30");
  await section.getByRole("button", { name: "Make a key" }).click();
  await expect(section.getByRole("status")).toContainText("copy it now");
  const shown = section.locator(".fresh-key input");
  await expect(shown).toHaveValue(/^rill_[0-9a-f]{64}$/);
  const key = await shown.inputValue();
  const row = section.locator(".api-key-row").filter({ hasText: name });
  await expect(row).toContainText(key.slice(0, 13));
  await expect(row).toContainText("$1.50");
  await expect(row).toContainText("never used");
  await expect(row).not.toContainText(key.slice(13));

  // The key works from a script (no cookie: `fetch` with credentials omitted).
  const status = (auth: string) =>
    page.evaluate(
      async (auth) =>
        (await fetch("/v1/models", { credentials: "omit", headers: { authorization: auth } })).status,
      auth,
    );
  expect(await status(`Bearer ${key}`)).toBe(200);

  // Shown once: after a reload the list has the key's name and first characters only.
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(row).toContainText(name);
  await expect(row).toContainText("last used");
  await expect(section.locator(".fresh-key")).toHaveCount(0);
  expect(await page.content()).not.toContain(key.slice(13));

  await row.getByRole("button", { name: `Revoke ${name}` }).click();
  await expect(section.getByRole("status")).toContainText("Key revoked");
  await expect(row).toHaveCount(0);
  expect(await status(`Bearer ${key}`)).toBe(401);
});
