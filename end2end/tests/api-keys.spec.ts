import { expect, test } from "./fixtures";
import { RillProcess, tempDatabase } from "./processes";

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

test("an admin makes a service account and its key in the admin page; the key works and the account cannot sign in", async ({ browser }) => {
  const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);
  const rill = new RillProcess(base + 14, tempDatabase(), { RILL_AUTH: "accounts" });
  rill.addUser("root", "root-password", true);
  await rill.start();
  try {
    const admin = await (await browser.newContext()).newPage();
    await admin.goto(`${rill.url}/signin`);
    await expect(admin.locator("html[data-hydrated]")).toBeAttached();
    await admin.getByLabel("Username").fill("root");
    await admin.getByLabel("Password").fill("root-password");
    await admin.getByRole("button", { name: "Sign in" }).click();
    await expect(admin).toHaveURL(`${rill.url}/`);
    await admin.goto(`${rill.url}/admin`);
    await expect(admin.locator("html[data-hydrated]")).toBeAttached();

    // The new-user form becomes a service account's: no password, no admin box.
    await admin.getByLabel(/^Service account/).check();
    await expect(admin.locator("input[name=new-password]")).toHaveCount(0);
    await admin.getByLabel("Username").fill("ci-bot");
    await admin.locator("input[name=new-budget]").fill("2");
    await admin.getByRole("button", { name: "Create service account" }).click();
    const row = admin.locator("tr[data-user=ci-bot]");
    await expect(row).toContainText("service account");
    await expect(row.getByPlaceholder("new password")).toHaveCount(0);

    // Its keys open under its row; a key is made there and shown once.
    await row.getByRole("button", { name: "API keys" }).click();
    const keys = admin.locator("tr[data-keys-of=ci-bot] section.api-keys");
    await expect(keys).toContainText("No API keys.");
    await keys.getByLabel("Name").fill("nightly");
    await keys.getByRole("button", { name: "Make a key" }).click();
    const shown = keys.locator(".fresh-key input");
    await expect(shown).toHaveValue(/^rill_[0-9a-f]{64}$/);
    await expect(keys.locator(".fresh-key")).toContainText("Its new key “nightly”");
    const key = await shown.inputValue();
    await expect(keys.locator(".api-key-row").filter({ hasText: "nightly" })).toContainText(key.slice(0, 13));

    // Any change redraws the users (here the account's own budget): the panel stays open and the
    // key not yet copied stays shown.
    await row.getByLabel("Monthly budget of ci-bot").fill("3");
    await row.getByRole("button", { name: "Set" }).click();
    await expect(
      admin.locator("table.audit tr").filter({ hasText: "set budget" }).filter({ hasText: "$3" }),
    ).toHaveCount(1);
    await expect(shown).toHaveValue(key);
    await expect(row.getByRole("button", { name: "Hide API keys" })).toHaveAttribute("aria-expanded", "true");

    // A key whose request ends after such a redraw is shown too.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await admin.route("**/api/create_api_key", async (route) => {
      await held;
      await route.continue();
    });
    await keys.getByLabel("Name").fill("weekly");
    await keys.getByRole("button", { name: "Make a key" }).click();
    await row.getByLabel("Monthly budget of ci-bot").fill("4");
    await row.getByRole("button", { name: "Set" }).click();
    await expect(
      admin.locator("table.audit tr").filter({ hasText: "set budget" }).filter({ hasText: "$4" }),
    ).toHaveCount(1);
    release();
    await expect(keys.locator(".fresh-key")).toContainText("Its new key “weekly”");
    await expect(shown).toHaveValue(/^rill_[0-9a-f]{64}$/);
    expect(await shown.inputValue()).not.toBe(key);
    await admin.unroute("**/api/create_api_key");
    await admin.screenshot({ path: test.info().outputPath("service-account.png"), fullPage: true });

    // A script with the key reaches /v1 as the service account (no cookie).
    const models = await admin.evaluate(
      async (key) =>
        (await fetch("/v1/models", { credentials: "omit", headers: { authorization: `Bearer ${key}` } })).status,
      key,
    );
    expect(models).toBe(200);

    // The admin's own keys are not the service account's.
    await admin.goto(`${rill.url}/usage`);
    await expect(admin.locator("html[data-hydrated]")).toBeAttached();
    await expect(admin.locator("section.api-keys")).toContainText("No API keys.");

    // Nobody signs in as it.
    const visitor = await (await browser.newContext()).newPage();
    await visitor.goto(`${rill.url}/signin`);
    await expect(visitor.locator("html[data-hydrated]")).toBeAttached();
    await visitor.getByLabel("Username").fill("ci-bot");
    await visitor.getByLabel("Password").fill("ci-bot-password");
    await visitor.getByRole("button", { name: "Sign in" }).click();
    await expect(visitor.getByRole("alert")).toContainText("wrong username or password");
    await expect(visitor).toHaveURL(`${rill.url}/signin`);
  } finally {
    await rill.stop();
  }
});
