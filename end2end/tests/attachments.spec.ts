import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "@playwright/test";
import { expect, test } from "./fixtures";
import { composer, configureFake, fakeLog, lastReply, openNewChat, send } from "./helpers";
import { RillProcess, tempDatabase } from "./processes";

const base = Number(process.env.E2E_EXTRA_PORT_BASE ?? 3320);

// A 24 × 16 PNG.
const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAABgAAAAQCAIAAACDRijCAAACn0lEQVR4nA3MkRqFMACA0XEyicdJEo+TSTxOJvHw/5JJPE4m8TiZxONk0nPcex7gCCHoBL1ACQbBJNCCWbAIrGAVbAIv2AWHIApOwSXIglvwCKrgFXwCISSdpJcoySCZJFoySxaJlaySTeIlu+SQRMkpuSRZckseSZW8kk/+I0Wn6BVKMSgmhVbMikVhFatiU3jFrjgUUXEqLkVW3IpHURWv4lP/aKQb6UfUyDAyjeiReWQZsSPryDbiR/aRYySOnCPXSB65R56ROvKOfOM/0nSaXqM0g2bSaM2sWTRWs2o2jdfsmkMTNafm0mTNrXk0VfNqPv2PDJ2hNyjDYJgM2jAbFoM1rIbN4A274TBEw2m4DNlwGx5DNbyGz/wjS2fpLcoyWCaLtsyWxWItq2WzeMtuOSzRclouS7bclsdSLa/ls//I0Tl6h3IMjsmhHbNjcVjH6tgc3rE7Dkd0nI7LkR2343FUx+v43D/ydJ7eozyDZ/Joz+xZPNazejaP9+yewxM9p+fyZM/teTzV83o+/48CXaAPqMAQmAI6MAeWgA2sgS3gA3vgCMTAGbgCOXAHnkANvIEv/KNIF+kjKjJEpoiOzJElYiNrZIv4yB45IjFyRq5IjtyRJ1Ijb+SL/yjRJfqESgyJKaETc2JJ2MSa2BI+sSeOREyciSuRE3fiSdTEm/jSP8p0mT6jMkNmyujMnFkyNrNmtozP7JkjEzNn5srkzJ15MjXzZr78jwpdoS+owlCYCrowF5aCLayFreALe+EoxMJZuAq5cBeeQi28ha/8o0pX6SuqMlSmiq7MlaViK2tlq/jKXjkqsXJWrkqu3JWnUitv5av/qNE1+oZqDI2poRtzY2nYxtrYGr6xN45GbJyNq5Ebd+Np1Mbb+Bo/5nEVX8BSaqMAAAAASUVORK5CYII=";

/// Pastes the PNG above into the composer as `screenshot.png`, as the clipboard gives it.
async function pasteScreenshot(page: Page) {
  await composer(page).focus();
  await page.evaluate((data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "screenshot.png", { type: "image/png" }));
    const paste = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
    document.querySelector("textarea")!.dispatchEvent(paste);
  }, PNG_BASE64);
}

test("a pasted screenshot and a picked file go with a message, show in it after a reload, open full size and download", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  // The limits asked for the paste come back after those asked for the pick: the chips still
  // keep the order the files were added in.
  let asked = 0;
  await page.route("**/api/file_limits", async (route) => {
    asked += 1;
    if (asked === 1) await new Promise((resolve) => setTimeout(resolve, 700));
    await route.continue();
  });

  // A screenshot pasted into the composer, as the clipboard gives it.
  await pasteScreenshot(page);
  // A file picked with the Attach button's picker.
  await page.locator('.composer input[type="file"]').setInputFiles({
    name: "notes.md",
    mimeType: "text/markdown",
    buffer: Buffer.from("# Notes\nThe build fails on line 3.\n"),
  });
  const tray = page.locator(".file-tray");
  await expect(tray.locator(".file-chip")).toHaveCount(2);
  await expect(tray.locator(".file-chip").first().locator("img.file-thumb")).toBeVisible();
  await expect(tray.locator(".file-chip").nth(1)).toContainText("notes.md");
  // Each chip says its size.
  await expect(tray.locator(".file-chip").nth(1).locator(".file-size")).toHaveText("35 bytes");
  await expect(tray.locator("progress")).toHaveCount(0);
  await page.screenshot({ path: test.info().outputPath("composer-files.png") });

  // A file taken off the message before sending is not sent.
  await page.locator('.composer input[type="file"]').setInputFiles({
    name: "unwanted.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("not this one"),
  });
  await expect(tray.locator(".file-chip")).toHaveCount(3);
  await page.getByRole("button", { name: "Remove unwanted.txt" }).click();
  await expect(tray.locator(".file-chip")).toHaveCount(2);

  await send(page, "What went wrong?");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  await expect(page.locator(".file-tray")).toHaveCount(0);
  // The model got the file as text and the image beside it.
  const log = await fakeLog(page);
  const body = JSON.stringify(log.requests[log.requests.length - 1]);
  expect(body).toContain('<file name=\\"notes.md\\">');
  expect(body).toContain("data:image/png;base64,");
  expect(body).not.toContain("unwanted.txt");

  // After a reload the question still shows its files.
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  const question = page.locator("li.message.user").last();
  const thumbnail = question.getByRole("button", { name: "Open screenshot.png" });
  await expect(thumbnail.locator("img")).toBeVisible();
  const chip = question.locator("a.file-chip");
  await expect(chip).toContainText("notes.md");
  await expect(chip).toHaveAttribute("download", "notes.md");
  const download = await page.request.get((await chip.getAttribute("href"))!);
  expect(download.status()).toBe(200);
  expect(download.headers()["content-disposition"]).toMatch(/^attachment;/);
  expect(await download.text()).toBe("# Notes\nThe build fails on line 3.\n");

  // The image opens full size over the page and Esc closes it.
  await thumbnail.click();
  const overlay = page.getByRole("dialog", { name: "screenshot.png" });
  await expect(overlay).toBeVisible();
  await expect(overlay.getByRole("button", { name: "Close" })).toBeFocused();
  await page.screenshot({ path: test.info().outputPath("overlay.png") });
  await page.keyboard.press("Escape");
  await expect(overlay).toHaveCount(0);
});

// A one-page PDF printed by Chromium (the Rust tests' fixture): "42 blue whales in October."
const REPORT_PDF = readFileSync(join(__dirname, "../../tests/it/fixtures/report.pdf"));

/// Drops `name` (its bytes `bytes`) onto the composer, as a file dragged from the desktop.
async function dropFile(page: Page, name: string, type: string, bytes: Buffer) {
  await page.evaluate(
    ([name, type, data]) => {
      const raw = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([raw], name, { type }));
      const target = document.querySelector("form.composer")!;
      target.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    },
    [name, type, bytes.toString("base64")],
  );
}

/// Drops a PDF, sends it, sees its chip, reloads, downloads it; `tap` sends with the button (a
/// phone), else Enter.
async function pdfRoundTrip(page: Page, tap: boolean) {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  await dropFile(page, "report.pdf", "application/pdf", REPORT_PDF);
  const tray = page.locator(".file-tray");
  await expect(tray.locator(".file-chip")).toContainText("report.pdf");
  await expect(tray.locator("progress")).toHaveCount(0);
  await expect(tray.locator(".file-error")).toHaveCount(0);
  // The server's limits are shown with the files.
  await expect(page.locator(".file-limits")).toContainText(/^Up to 20\.0 MB a file, 50\.0 MB a message; [\d.]+ MB left today$/);
  await composer(page).fill("How many whales?");
  if (tap) {
    await page.getByRole("button", { name: "Send", exact: true }).tap();
  } else {
    await composer(page).press("Enter");
  }
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  // The model read the PDF's text.
  const log = await fakeLog(page);
  const body = JSON.stringify(log.requests[log.requests.length - 1]);
  expect(body).toContain('<file name=\\"report.pdf\\">');
  expect(body).toContain("42 blue whales in October.");

  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  const chip = page.locator("li.message.user").last().locator("a.file-chip");
  await expect(chip).toContainText("report.pdf");
  await expect(chip).toBeVisible();
  await page.screenshot({ path: test.info().outputPath(tap ? "pdf-phone.png" : "pdf.png") });
  const download = await page.request.get((await chip.getAttribute("href"))!);
  expect(download.status()).toBe(200);
  expect(download.headers()["content-type"]).toBe("application/pdf");
  expect(Buffer.compare(await download.body(), REPORT_PDF)).toBe(0);
}

test("a dropped PDF goes with a message as its text, shows as a chip after a reload and downloads", async ({ page }) => {
  await pdfRoundTrip(page, false);
});

test("a file beyond the server's limit is refused in words before a byte is uploaded", async ({ page }) => {
  await openNewChat(page);
  const uploads: string[] = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/attachments") uploads.push(r.url());
  });
  await page.locator('.composer input[type="file"]').setInputFiles({
    name: "huge.bin",
    mimeType: "application/octet-stream",
    buffer: Buffer.alloc(21 * 1024 * 1024, 7),
  });
  const chip = page.locator(".file-tray .file-chip");
  await expect(chip.locator(".file-error")).toHaveText(
    "Not sent: 21.0 MB is larger than the 20.0 MB this server takes for one file",
  );
  await expect(page.locator(".file-limits")).toBeVisible();
  expect(uploads).toEqual([]);
  // Taking it off leaves nothing.
  await page.getByRole("button", { name: "Remove huge.bin" }).click();
  await expect(page.locator(".file-tray")).toHaveCount(0);
});

test("Send waits while a file is uploading, which shows its progress, and sends it once it is in", async ({ page }) => {
  await configureFake(page, { tokens: 3, token_delay_ms: 5 });
  await openNewChat(page);
  // The upload is held at the network until the test lets it go.
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route((url) => url.pathname === "/attachments", async (route) => {
    await held;
    await route.continue();
  });
  await composer(page).fill("Read it when it is here");
  await page.locator('.composer input[type="file"]').setInputFiles({
    name: "slow.txt",
    mimeType: "text/plain",
    buffer: Buffer.from("arrived late"),
  });
  const sendButton = page.getByRole("button", { name: "Send", exact: true });
  await expect(page.getByRole("progressbar", { name: "Uploading slow.txt" })).toBeVisible();
  await expect(sendButton).toBeDisabled();
  await composer(page).press("Enter");
  await expect(page.locator("li.message.user")).toHaveCount(0);
  release();
  await expect(page.locator(".file-tray progress")).toHaveCount(0);
  await expect(sendButton).toBeEnabled();
  await sendButton.click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
  const log = await fakeLog(page);
  expect(JSON.stringify(log.requests[log.requests.length - 1])).toContain('<file name=\\"slow.txt\\">\\narrived late');
});

test.describe("on a 360 px phone", () => {
  test.use({ viewport: { width: 360, height: 740 }, hasTouch: true, isMobile: true });

  test("a dropped PDF is sent with the Send button, and its chip fits and downloads", async ({ page }) => {
    // The picker is the plain file input, so a phone offers its camera and photos beside files.
    const picker = page.locator('.composer input[type="file"]');
    await pdfRoundTrip(page, true);
    await expect(picker).not.toHaveAttribute("accept", /.+/);
    await expect(picker).not.toHaveAttribute("capture", /.*/);
    const chip = page.locator("li.message.user").last().locator("a.file-chip");
    const box = (await chip.boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(360);
  });
});

test("a conversation's image and PDF go with its archive into a fresh database, show there and are sent again on Continue; its share link shows the image", async ({ page, browser }) => {
  test.setTimeout(120_000);
  await configureFake(page, { tokens: 1000, token_delay_ms: 30 });
  await openNewChat(page);
  await pasteScreenshot(page);
  await dropFile(page, "report.pdf", "application/pdf", REPORT_PDF);
  const tray = page.locator(".file-tray");
  await expect(tray.locator(".file-chip")).toHaveCount(2);
  await expect(tray.locator("progress")).toHaveCount(0);
  await send(page, "Describe both files");
  await expect.poll(async () => ((await lastReply(page).locator(".content").textContent()) ?? "").length).toBeGreaterThan(20);
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");

  // Its archive, from its settings, and a share link.
  await page.getByRole("button", { name: "Settings", exact: true }).click();
  const archiveLink = page.getByRole("link", { name: "Archive", exact: true });
  const href = await archiveLink.getAttribute("href");
  expect(href).toMatch(/^\/export\/[0-9a-f-]+\/zip$/);
  const archive = await page.request.get(href!);
  expect(archive.status()).toBe(200);
  const zip = await archive.body();
  await page.getByRole("button", { name: "Share a snapshot" }).click();
  const address = page.locator(".share-url").first();
  await expect(address).toHaveValue(/\/s\/[0-9a-f]{64}$/);
  const link = await address.inputValue();
  await page.getByRole("button", { name: "Close", exact: true }).click();

  // Someone with the link, in a browser of their own, sees the image and the PDF's chip.
  const context = await browser.newContext();
  const visitor = await context.newPage();
  expect((await visitor.goto(link))?.status()).toBe(200);
  const thumbnail = visitor.locator("li.message.user img.file-thumb");
  await expect(thumbnail).toHaveAttribute("alt", "screenshot.png");
  await expect.poll(() => thumbnail.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBe(24);
  await expect(visitor.locator("li.message.user a.file-chip")).toContainText("report.pdf");
  await visitor.screenshot({ path: test.info().outputPath("shared-files.png"), fullPage: true });
  // The thumbnail links to the image itself, through the link. (Fetched rather than opened:
  // Chromium's own image viewer styles itself inline, which the file's policy blocks, loudly.)
  const opens = await visitor.getByRole("link", { name: "Open screenshot.png" }).getAttribute("href");
  expect(opens).toMatch(/^\/s\/[0-9a-f]{64}\/files\/[0-9a-f-]{36}$/);
  expect(link.endsWith(opens!.split("/files/")[0])).toBe(true);
  const full = await visitor.request.get(opens!);
  expect(full.status()).toBe(200);
  expect(full.headers()["content-type"]).toBe("image/png");
  await context.close();

  // A fresh server on an empty database imports the archive.
  const rill = new RillProcess(base + 30, tempDatabase());
  await rill.start();
  try {
    await page.goto(`${rill.url}/import-export`);
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await page.getByLabel("Export file").setInputFiles({ name: "conversation.zip", mimeType: "application/zip", buffer: zip });
    await page.getByRole("button", { name: "Import", exact: true }).click();
    await expect(page.getByRole("status").filter({ hasText: /imported/ })).toHaveText("Done: 1 conversation imported.");
    await page.getByRole("link", { name: "Open your conversations" }).click();
    await page.getByRole("link", { name: /Describe both files/ }).click();
    const question = page.locator("li.message.user").last();
    const image = question.getByRole("button", { name: "Open screenshot.png" }).locator("img");
    await expect(image).toBeVisible();
    await expect.poll(() => image.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBe(24);
    await expect(question.locator("a.file-chip")).toContainText("report.pdf");
    await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");
    await page.screenshot({ path: test.info().outputPath("imported-files.png") });

    // Continued there: the provider is sent the image and the PDF's text again.
    await configureFake(page, { tokens: 3, token_delay_ms: 5 });
    await lastReply(page).getByRole("button", { name: "Continue" }).click();
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");
    const log = await fakeLog(page);
    const body = JSON.stringify(log.requests[log.requests.length - 1]);
    expect(body).toContain('<file name=\\"report.pdf\\">');
    expect(body).toContain("42 blue whales in October.");
    expect(body).toContain("data:image/png;base64,");
  } finally {
    await rill.stop();
  }
});
