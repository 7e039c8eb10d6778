import AxeBuilder from "@axe-core/playwright";
import { type Browser, type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { configureFake, fakeLog, lastReply, send } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);
const picker = (page: Page) => page.getByRole("combobox", { name: "Model" });

async function signIn(page: Page, url: string, username: string, password: string) {
  await page.goto(`${url}/`);
  await expect(page).toHaveURL(`${url}/signin`);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(`${url}/`);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
}

/** The admin page, signed in as root (password `root-password`) in a browser context of its own. */
async function adminPage(browser: Browser, rill: RillProcess): Promise<Page> {
  const admin = await (await browser.newContext()).newPage();
  await signIn(admin, rill.url, "root", "root-password");
  await admin.goto(`${rill.url}/admin`);
  await expect(admin.locator("html[data-hydrated]")).toBeAttached();
  return admin;
}

/** axe (WCAG 2.1 A and AA) on the page as it is, light and dark. */
async function axe(page: Page, what: string) {
  const found: string[] = [];
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const results = await new AxeBuilder({ page })
      .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"])
      .analyze();
    for (const v of results.violations) {
      found.push(`${what}, ${scheme}: ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join("; ")}`);
    }
  }
  await page.emulateMedia({ colorScheme: "light" });
  expect(found, `axe violations on ${what}`).toEqual([]);
}

test("an admin gives a group a budget and a model; a member sees only that model, a warning, and a refusal in words", async ({ browser }) => {
  const database = tempDatabase();
  const prices = join(dirname(database), "rill.toml");
  writeFileSync(prices, '[prices."fake/fake-model"]\ninput = 1.0\noutput = 2.0\n');
  // Replies capped at 100 tokens ($0.0002 at these prices): the group's $0.00025 holds one
  // reply's worst case, and one reply spends 80 % of it.
  const rill = new RillProcess(base + 13, database, {
    RILL_AUTH: "accounts",
    RILL_CONFIG: prices,
    RILL_MAX_OUTPUT_TOKENS: "100",
    RILL_OPENAI_COMPAT_MODELS: "fake-model,other-model",
    RILL_ALLOW_UNPRICED_MODELS: "yes",
  });
  rill.addUser("root", "root-password", true);
  rill.addUser("mia", "mia-password", false);
  await rill.start();
  try {
    const admin = await adminPage(browser, rill);
    await admin.getByLabel("Group name").fill("Research");
    await admin.getByLabel("Monthly budget shared by its members").fill("0.00025");
    await admin.getByRole("button", { name: "Create group" }).click();
    const group = admin.locator('section.group[data-group="Research"]');
    await expect(group).toBeVisible();
    await group.getByLabel("Username to add to Research").fill("mia");
    await group.getByRole("button", { name: "Add member" }).click();
    await expect(group.locator(".group-members")).toContainText("mia");
    await group.locator('input[value="fake/fake-model"]').check();
    // The groups are read again after the change: wait for that before looking.
    const reloaded = admin.waitForResponse((r) => r.url().endsWith("/api/admin_groups"));
    await group.getByRole("button", { name: "Save models" }).click();
    await reloaded;
    await expect(group.locator('input[value="fake/fake-model"]')).toBeChecked();
    await expect(group.locator('input[value="fake/other-model"]')).not.toBeChecked();
    // The month at a glance: a described chart, its figures in text beside it.
    await expect(admin.locator(".group-chart svg title")).toHaveText(/Spending by group/);
    await expect(admin.locator(".chart-figures")).toContainText("Research: $0 of");
    await axe(admin, "the admin page with a group");

    const mia = await (await browser.newContext()).newPage();
    await signIn(mia, rill.url, "mia", "mia-password");
    await expect(picker(mia).locator("option")).toHaveCount(1);
    await expect(picker(mia).locator('option[value="fake/fake-model"]')).toBeAttached();
    await configureFake(mia, { tokens: 100, token_delay_ms: 2 });
    await send(mia, "Hello");
    await expect(lastReply(mia)).toHaveAttribute("data-status", "complete");
    // 80 % of the group's budget is spent: the composer says so before the next send.
    await expect(mia.locator("div.budget-warning")).toContainText("The group Research has used");
    const requests = (await fakeLog(mia)).requests.length;
    await send(mia, "Once more");
    await expect(lastReply(mia)).toHaveAttribute("data-status", "failed");
    await expect(lastReply(mia)).toContainText("the group Research");
    await expect(lastReply(mia)).toContainText("left of it");
    expect((await fakeLog(mia)).requests.length, "no provider request").toBe(requests);
    await mia.screenshot({ path: "test-results/group-budget-refused.png" });
    // The admin's chart shows the group near its limit.
    await admin.reload();
    await expect(admin.locator(".chart-figures")).toContainText(/Research: \$0\.000\d of \$0\.0003 \(\d+ %\)/);
  } finally {
    await rill.stop();
  }
});

test("what an admin types in one group's fields outlasts a change saved in another", async ({ browser }) => {
  const rill = new RillProcess(base + 15, tempDatabase(), { RILL_AUTH: "accounts" });
  rill.addUser("root", "root-password", true);
  rill.addUser("mia", "mia-password", false);
  await rill.start();
  try {
    const admin = await adminPage(browser, rill);
    for (const name of ["Lab", "Sales"]) {
      await admin.getByLabel("Group name").fill(name);
      await admin.getByRole("button", { name: "Create group" }).click();
      await expect(admin.locator(`section.group[data-group="${name}"]`)).toBeVisible();
    }
    const lab = admin.locator('section.group[data-group="Lab"]');
    const sales = admin.locator('section.group[data-group="Sales"]');
    // Half-typed in Lab, not saved…
    await lab.getByLabel("Monthly budget of the group Lab").fill("12.5");
    await lab.getByLabel("Identity provider group whose members join Lab (empty: none)").fill("lab-staff");
    // …when a member is added to Sales, which reloads every group.
    const reloaded = admin.waitForResponse((r) => r.url().endsWith("/api/admin_groups"));
    await sales.getByLabel("Username to add to Sales").fill("mia");
    await sales.getByRole("button", { name: "Add member" }).click();
    await reloaded;
    await expect(sales.locator(".group-members")).toContainText("mia");
    await expect(sales.getByLabel("Username to add to Sales")).toHaveValue("");
    await expect(lab.getByLabel("Monthly budget of the group Lab")).toHaveValue("12.5");
    await expect(lab.getByLabel("Identity provider group whose members join Lab (empty: none)")).toHaveValue("lab-staff");
    // Saved, the budget shows as stored.
    await lab.getByRole("button", { name: "Set budget" }).click();
    await expect(lab).toContainText("of $12.50");
    await expect(lab.getByLabel("Monthly budget of the group Lab")).toHaveValue("12.5");
  } finally {
    await rill.stop();
  }
});
