import { expect, test } from "./fixtures";
import { composer, configureFake, lastReply, openNewChat, send } from "./helpers";

test("the composer grows with a long paste up to a limit, and shows the length limit before sending", async ({ page }) => {
  await openNewChat(page);
  const empty = (await composer(page).boundingBox())!.height;
  await composer(page).fill(Array.from({ length: 8 }, (_, i) => `line ${i}`).join("\n"));
  const eight = (await composer(page).boundingBox())!.height;
  expect(eight, "eight lines show without scrolling").toBeGreaterThan(empty * 2);
  await composer(page).fill(Array.from({ length: 60 }, (_, i) => `line ${i}`).join("\n"));
  const sixty = (await composer(page).boundingBox())!.height;
  const viewport = page.viewportSize()!.height;
  expect(sixty).toBeGreaterThan(eight);
  expect(sixty, "it stops at 40% of the window").toBeLessThanOrEqual(viewport * 0.4 + 1);

  // Near the limit the count appears; over it Send is refused before anything is sent.
  await expect(page.locator(".composer-count")).toHaveCount(0);
  await composer(page).fill("x".repeat(29_000));
  await expect(page.locator(".composer-count")).toHaveText("29,000 / 32,000 characters");
  await expect(page.getByRole("button", { name: "Send", exact: true })).toBeEnabled();
  await composer(page).fill("x".repeat(32_750));
  await expect(page.locator(".composer-count")).toHaveText("32,750 / 32,000 characters: 750 too many to send");
  await expect(page.getByRole("button", { name: "Send", exact: true })).toBeDisabled();
  await composer(page).press("Enter");
  await expect(page.locator("li.message")).toHaveCount(0);
  await expect(composer(page)).toHaveValue("x".repeat(32_750));
});

test.describe("a send that cannot reach the server", () => {
  test.use({ expectedErrors: /^Failed to load resource: net::ERR_FAILED/ });

  test("keeps its text through a reload, and the sent text is forgotten once the server has it", async ({ page }) => {
    await configureFake(page, { tokens: 5, token_delay_ms: 10 });
    await page.route("**/api/send_message", (route) => route.abort());
    await openNewChat(page);
    await send(page, "Please do not lose this");
    await expect(page.locator(".connection")).toHaveText(/Reconnecting/);
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(composer(page)).toHaveValue("Please do not lose this");

    await page.unroute("**/api/send_message");
    await composer(page).press("Enter");
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    await page.goto("/");
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await expect(composer(page)).toHaveValue("");
  });
});

test("each conversation keeps its own draft", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  // Titles unique to this run: the database is shared by every test (and by retries).
  const firstTitle = `First conversation ${Date.now()}`;
  const secondTitle = `Second conversation ${Date.now()}`;
  await openNewChat(page);
  await send(page, firstTitle);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const first = page.url();
  await page.getByRole("button", { name: "New chat" }).click();
  await send(page, secondTitle);
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await composer(page).fill("half-written for the second");

  await page.getByRole("link", { name: firstTitle }).click();
  await expect(page.locator("li.message.user .content")).toHaveText([firstTitle]);
  await expect(composer(page)).toHaveValue("");
  await composer(page).fill("half-written for the first");
  await page.getByRole("link", { name: secondTitle }).click();
  await expect(page.locator("li.message.user .content")).toHaveText([secondTitle]);
  await expect(composer(page)).toHaveValue("half-written for the second");
  await page.goto(first);
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(composer(page)).toHaveValue("half-written for the first");
});

test("a very long message is collapsed with Show more", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  const long = Array.from({ length: 60 }, (_, i) => `pasted line ${i}`).join("\n");
  await composer(page).fill(long);
  await composer(page).press("Enter");
  const bubble = page.locator("li.message.user .content");
  await expect(bubble).toHaveClass(/collapsed/);
  expect((await bubble.boundingBox())!.height).toBeLessThan(400);
  await page.getByRole("button", { name: "Show more" }).click();
  await expect(bubble).not.toHaveClass(/collapsed/);
  expect((await bubble.boundingBox())!.height).toBeGreaterThan(800);
  await expect(bubble).toHaveText(long);
  await page.getByRole("button", { name: "Show less" }).click();
  await expect(bubble).toHaveClass(/collapsed/);
});

test("Esc stops a streaming reply", async ({ page }) => {
  await configureFake(page, { tokens: 2000, token_delay_ms: 20 });
  await openNewChat(page);
  await send(page, "Talk for a long time");
  await expect.poll(async () => ((await lastReply(page).locator(".content").textContent()) ?? "").length).toBeGreaterThan(20);
  await page.keyboard.press("Escape");
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
  await expect(composer(page)).toBeFocused();
});
