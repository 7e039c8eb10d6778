import { expect, test } from "./fixtures";
import { FakeIdpProcess, RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

test("signing in with the company's identity provider: the button, the provider's round trip, and an account made on first sign-in, with passwords off", async ({ page }) => {
  const idp = new FakeIdpProcess(base + 41, base + 42);
  await idp.start();
  const port = base + 40;
  const rill = new RillProcess(port, tempDatabase(), {
    RILL_AUTH: "accounts",
    RILL_PUBLIC_URL: `http://127.0.0.1:${port}`,
    RILL_OIDC_ISSUER: idp.issuer,
    RILL_OIDC_CLIENT_ID: "rill",
    RILL_OIDC_CLIENT_SECRET: "e2e-secret",
    RILL_OIDC_NAME: "Example ID",
    RILL_OIDC_ALLOWED_DOMAINS: "example.com",
    RILL_PASSWORD_SIGN_IN: "off",
  });
  await rill.start();
  try {
    await page.goto(`${rill.url}/`);
    await expect(page).toHaveURL(`${rill.url}/signin`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    const button = page.getByRole("link", { name: "Sign in with Example ID" });
    await expect(button).toBeVisible();
    // Only the provider signs in here: no password form.
    await expect(page.getByLabel("Password")).toHaveCount(0);
    await button.click();
    await expect(page).toHaveURL(`${rill.url}/`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(page.locator(".account-menu .who")).toHaveText("ada@example.com");
    // Her password is the provider's: she signs out here, but no password change is offered.
    await expect(page.locator(".account-menu").getByRole("button", { name: "Sign out" })).toBeVisible();
    await expect(page.locator(".account-menu").getByRole("link", { name: "Password" })).toHaveCount(0);

    // A refusal comes back as words on the sign-in page, whatever the address carried.
    await page.goto(`${rill.url}/signin?oidc=not-allowed`);
    await expect(page.getByRole("alert")).toHaveText(
      "Your Example ID account may not use Rill. Ask an admin to allow your email domain or group.",
    );
  } finally {
    await rill.stop();
    await idp.stop();
  }
});
