import { defineConfig } from "@playwright/test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Ports are configurable so a run never collides with a dev server on the same machine.
const appPort = Number(process.env.E2E_APP_PORT ?? 3310);
const fakePort = Number(process.env.E2E_FAKE_PORT ?? 4010);
export const fakeUrl = `http://127.0.0.1:${fakePort}`;
const dataDir = mkdtempSync(join(tmpdir(), "rill-e2e-"));
// Prices for the fake models, as a deployment would set them for its own models.
const configFile = join(dataDir, "rill.toml");
writeFileSync(
  configFile,
  [
    '[prices."fake/fake-model"]', "input = 1.0", "cached_input = 0.5", "output = 2.0",
    '[prices."anthropic/claude-fake"]', "input = 3.0", "cached_input = 0.3", "cache_write = 3.75", "output = 15.0",
  ].join("\n") + "\n",
);

export default defineConfig({
  testDir: "./tests",
  // The tests share one fake provider whose behaviour they set; run them one at a time.
  workers: 1,
  fullyParallel: false,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  use: {
    baseURL: `http://127.0.0.1:${appPort}`,
    screenshot: "only-on-failure",
    launchOptions: {
      // Debian's Chromium; Playwright's own browser download is not reachable here.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
  webServer: [
    {
      command: `../target/debug/fake-provider --port ${fakePort} --tokens 300 --delay-ms 30`,
      url: `${fakeUrl}/v1/models`,
      reuseExistingServer: false,
      timeout: 30_000,
    },
    {
      command: "../target/debug/rill",
      url: `http://127.0.0.1:${appPort}/`,
      reuseExistingServer: false,
      timeout: 60_000,
      env: {
        LEPTOS_SITE_ADDR: `127.0.0.1:${appPort}`,
        LEPTOS_SITE_ROOT: "../target/site",
        RILL_DATABASE: join(dataDir, "rill.db"),
        RILL_OPENAI_COMPAT_URL: `${fakeUrl}/v1`,
        RILL_OPENAI_COMPAT_NAME: "fake",
        RILL_OPENAI_COMPAT_MODELS: "fake-model,fake-unpriced",
        // The same fake speaking Anthropic's protocol, as a second provider for the picker.
        ANTHROPIC_API_KEY: "e2e-key",
        RILL_ANTHROPIC_BASE_URL: `${fakeUrl}/v1`,
        RILL_ANTHROPIC_MODELS: "claude-fake",
        RILL_CONFIG: configFile,
        // chat.spec.ts exercises the OpenAI-compatible path; hosted providers would come first.
        RILL_DEFAULT_MODEL: "fake/fake-model",
        // The real local model (scripts/fetch-model.sh), with short replies to bound the run.
        RILL_LOCAL_MODEL: "../models/SmolLM2-135M-Instruct.Q4_1.gguf",
        RILL_LOCAL_MAX_TOKENS: "40",
        // Titles stay the first words here, so no test sees a title's request or cost it did not
        // ask for; titles.spec.ts starts a server of its own with them.
        RILL_PLAIN_TITLES: "yes",
        RUST_LOG: "warn",
      },
    },
  ],
});
