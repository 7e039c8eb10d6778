import { type Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { configureFake, fakeLog, lastReply, send } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

/** Collects what the browser says about the page: CSP violations, errors, uncaught exceptions. */
async function watch(page: Page): Promise<string[]> {
  const problems: string[] = [];
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  return problems;
}

async function signIn(page: Page, url: string, username: string, password: string) {
  await page.goto(`${url}/`);
  await expect(page).toHaveURL(`${url}/signin`);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(`${url}/`);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(page.locator(".account-menu .who")).toHaveText(username);
}

test("a team: the admin creates a user with a budget, who chats until the budget refuses, sees nobody else's conversations and signs out, all under the CSP", async ({ browser }) => {
  const database = tempDatabase();
  const prices = join(dirname(database), "rill.toml");
  writeFileSync(prices, '[prices."fake/fake-model"]\ninput = 1.0\noutput = 2.0\n');
  // Replies capped at 100 tokens: a budget reserves a reply's worst case before it is sent.
  const rill = new RillProcess(base + 5, database, {
    RILL_AUTH: "accounts",
    RILL_CONFIG: prices,
    RILL_MAX_OUTPUT_TOKENS: "100",
  });
  rill.addUser("root", "root-password", true);
  await rill.start();
  try {
    const admin = await (await browser.newContext()).newPage();
    const adminProblems = await watch(admin);
    await signIn(admin, rill.url, "root", "root-password");
    await configureFake(admin, { tokens: 5, token_delay_ms: 5 });
    await send(admin, "The admin's private plans");
    await expect(lastReply(admin)).toHaveAttribute("data-status", "complete");

    await admin.getByRole("link", { name: "Admin", exact: true }).click();
    await expect(admin).toHaveURL(`${rill.url}/admin`);
    await admin.getByLabel("Username", { exact: true }).fill("alice");
    await admin.getByLabel("Password", { exact: true }).fill("alice-password");
    await admin.getByLabel("Monthly budget ($, empty: no limit)").fill("0.0003");
    await admin.getByRole("button", { name: "Create user" }).click();
    const aliceRow = admin.locator('tr[data-user="alice"]');
    await expect(aliceRow).toBeVisible();
    await expect(aliceRow.getByLabel("Monthly budget of alice")).toHaveValue("0.0003");
    await admin.screenshot({ path: "test-results/admin-page.png", fullPage: true });
    // A search and a change: the list stays as searched, with the change in it.
    await admin.getByLabel("Username", { exact: true }).fill("bob");
    await admin.getByLabel("Password", { exact: true }).fill("bob-password");
    await admin.getByRole("button", { name: "Create user" }).click();
    await expect(admin.locator('tr[data-user="bob"]')).toBeVisible();
    await admin.getByLabel("Find users by name").fill("ali");
    await admin.getByLabel("Find users by name").press("Enter");
    await expect(admin.locator("table.users tbody tr")).toHaveCount(1);
    // The row is drawn again from the server's answer: its button says what it now does.
    await aliceRow.getByRole("button", { name: "Disable" }).click();
    await expect(aliceRow.getByRole("button", { name: "Enable" })).toBeVisible();
    await expect(admin.locator("table.users tbody tr")).toHaveCount(1);
    await aliceRow.getByRole("button", { name: "Enable" }).click();
    await expect(aliceRow.getByRole("button", { name: "Disable" })).toBeVisible();
    await expect(admin.locator("table.users tbody tr")).toHaveCount(1);

    const alice = await (await browser.newContext()).newPage();
    const aliceProblems = await watch(alice);
    await signIn(alice, rill.url, "alice", "alice-password");
    await expect(alice.locator(".conversation-list li")).toHaveCount(0);
    // 100 output tokens cost $0.0002: the first reply's worst case fits the budget; with it
    // spent, the second's does not.
    await configureFake(alice, { tokens: 100, token_delay_ms: 2 });
    await send(alice, "Hello");
    await expect(lastReply(alice)).toHaveAttribute("data-status", "complete");
    const requests = (await fakeLog(alice)).requests.length;
    await send(alice, "Once more");
    await expect(lastReply(alice)).toHaveAttribute("data-status", "failed");
    await expect(lastReply(alice)).toContainText("budget");
    expect((await fakeLog(alice)).requests.length, "no provider request").toBe(requests);
    await expect(alice.locator(".conversation-list li")).toHaveCount(1);
    await expect(alice.locator(".conversation-list")).not.toContainText("private plans");
    await alice.screenshot({ path: "test-results/budget-refused.png" });

    await alice.getByRole("link", { name: "Usage", exact: true }).click();
    await expect(alice.locator(".usage-total")).toContainText("alice");
    await expect(alice.locator("table.figures tbody tr")).toHaveCount(1);

    await alice.goto(`${rill.url}/`);
    await expect(alice.locator("html[data-hydrated]")).toBeAttached();
    await alice.getByRole("button", { name: "Sign out" }).click();
    await expect(alice).toHaveURL(`${rill.url}/signin`);

    // The admin sees her spending and the audit log.
    await admin.reload();
    await expect(admin.locator('tr[data-user="alice"] td.num')).not.toHaveText("$0");
    await expect(admin.locator("table.audit")).toContainText("signed out");

    expect(adminProblems).toEqual([]);
    expect(aliceProblems).toEqual([]);
  } finally {
    await rill.stop();
  }
});
