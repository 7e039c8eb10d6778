import { chromium } from "@playwright/test";
const doc = ["## Sorting in Rust", "", "Use **`sort_unstable`** when order of equal items _does not matter_; see the [docs](https://doc.rust-lang.org/std/primitive.slice.html).", "", "1. Collect", "2. Sort", "   - stable: `sort`", "   - unstable: `sort_unstable`", "", "| Method | Stable | Allocates |", "|--------|:------:|----------:|", "| sort | yes | yes |", "| sort_unstable | no | no |", "", "```rust", "let mut v = vec![3, 1, 2];", "v.sort_unstable();", "assert_eq!(v, [1, 2, 3]);", "```", "", "> Tip: `<script>alert(1)</script>` stays text.", "", "![chart](https://img.example.net/chart.png?data=secret)", ""].join("\n");
const tokens = doc.match(/[\s\S]{1,4}/g);
await fetch("http://127.0.0.1:4900/_fake/config", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tokens: tokens.length, token_delay_ms: 8, script: tokens }) });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless","--no-sandbox","--disable-gpu","--disable-background-networking","--disable-component-update","--disable-sync","--no-first-run"] });
for (const scheme of ["light", "dark"]) {
  const context = await browser.newContext({ colorScheme: scheme, viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on("console", m => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", e => problems.push(String(e)));
  const wasm = [];
  page.on("response", r => { if (r.url().endsWith(".wasm")) wasm.push(r.url().split("/").pop().slice(0, 30)); });
  await page.goto("http://127.0.0.1:3900/");
  await page.waitForSelector("html[data-hydrated]", { state: "attached", timeout: 10000 }).catch(e => console.log("NOT HYDRATED", JSON.stringify(problems)));
  await page.getByRole("textbox", { name: "Message" }).fill("How do I sort a Vec?");
  await page.getByRole("textbox", { name: "Message" }).press("Enter");
  await page.waitForTimeout(700);
  await page.screenshot({ path: `/tmp/md-streaming-${scheme}.png` });
  await page.waitForSelector("li.message.assistant[data-status=complete]", { timeout: 20000 });
  await page.screenshot({ path: `/tmp/md-done-${scheme}.png` });
  await page.reload();
  await page.waitForSelector("html[data-hydrated]", { state: "attached", timeout: 10000 }).catch(e => console.log("NOT HYDRATED", JSON.stringify(problems)));
  await page.screenshot({ path: `/tmp/md-reload-${scheme}.png` });
  console.log(scheme, "wasm:", wasm.join(", "), "problems:", JSON.stringify(problems));
  await context.close();
}
await browser.close();
