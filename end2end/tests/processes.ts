import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fakeUrl } from "../playwright.config";

/** Polls `url` until it answers (any HTTP status), for at most `ms`. */
async function waitForHttp(url: string, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await fetch(url, { method: "GET" });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not come up within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function exited(child: ChildProcess, ms: number) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await Promise.race([
    new Promise((r) => child.once("exit", r)),
    new Promise((_, reject) => setTimeout(() => reject(new Error("process did not exit")), ms)),
  ]);
}

/** Origins of servers a test has stopped or killed (until it starts them again): a page still open
 * on one may fail to reach it after that, which is the test's doing, not a fault (`fixtures.ts`). */
export const stoppedOrigins = new Set<string>();

/** A Rill server of the test's own (the debug binary), on its own port and database. */
export class RillProcess {
  private child?: ChildProcess;
  readonly url: string;

  constructor(
    readonly port: number,
    readonly database: string,
    readonly settings: Record<string, string> = {},
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  private env() {
    return {
      ...process.env,
      LEPTOS_SITE_ADDR: `127.0.0.1:${this.port}`,
      LEPTOS_SITE_ROOT: "../target/site",
      RILL_DATABASE: this.database,
      RILL_OPENAI_COMPAT_URL: `${fakeUrl}/v1`,
      RILL_OPENAI_COMPAT_NAME: "fake",
      RILL_OPENAI_COMPAT_MODELS: "fake-model",
      RILL_LOCAL_MODEL: "off",
      // As the shared server (playwright.config.ts): a test asks for model titles itself.
      RILL_PLAIN_TITLES: "yes",
      RUST_LOG: "warn",
      ...this.settings,
    };
  }

  /** `rill user add [--admin] NAME`, the password from the environment. */
  addUser(name: string, password: string, admin: boolean) {
    const args = ["user", "add", ...(admin ? ["--admin"] : []), name];
    const run = spawnSync("../target/debug/rill", args, {
      env: { ...this.env(), RILL_NEW_PASSWORD: password },
      encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`rill user add failed: ${run.stderr}`);
  }

  async start() {
    stoppedOrigins.delete(this.url);
    this.child = spawn("../target/debug/rill", [], { stdio: "ignore", env: this.env() });
    await waitForHttp(`${this.url}/`, 30_000);
  }

  /** SIGTERM: the server drains and exits. */
  async stop() {
    const child = this.child;
    if (!child) return;
    stoppedOrigins.add(this.url);
    child.kill("SIGTERM");
    await exited(child, 15_000);
  }

  /** `kill -9`: no chance to store anything. */
  async kill() {
    const child = this.child;
    if (!child) return;
    stoppedOrigins.add(this.url);
    child.kill("SIGKILL");
    await exited(child, 10_000);
  }
}

/** nginx with nothing but `proxy_pass` (its defaults: response buffering on, HTTP/1.0 upstream). */
export class NginxProcess {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(join(tmpdir(), "rill-nginx-"));
  readonly url: string;

  constructor(readonly port: number, readonly upstream: string) {
    this.url = `http://127.0.0.1:${port}`;
  }

  async start() {
    stoppedOrigins.delete(this.url);
    const d = this.dir;
    for (const sub of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(d, sub), { recursive: true });
    writeFileSync(
      join(d, "nginx.conf"),
      `daemon off; master_process off; pid ${d}/nginx.pid; error_log ${d}/error.log;
       events {}
       http {
         access_log off;
         client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fastcgi;
         uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi;
         server { listen 127.0.0.1:${this.port}; location / { proxy_pass ${this.upstream}; } }
       }`,
    );
    const binary = ["/usr/sbin/nginx", "/usr/bin/nginx"].find((p) => existsSync(p));
    if (!binary) throw new Error("nginx is not installed (scripts/install-tools.sh installs it)");
    this.child = spawn(binary, ["-c", join(d, "nginx.conf"), "-p", d], { stdio: "ignore" });
    await waitForHttp(`${this.url}/`, 10_000);
  }

  /** Stops at once, closing every connection: a network drop, as the browser sees it. */
  async kill() {
    const child = this.child;
    if (!child) return;
    stoppedOrigins.add(this.url);
    child.kill("SIGKILL");
    await exited(child, 10_000);
    // The worker goes with its master's connections; give the port a moment to be free.
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function tempDatabase(): string {
  return join(mkdtempSync(join(tmpdir(), "rill-e2e-db-")), "rill.db");
}

/** The fake provider binary with its fake identity provider (`--oidc-port`): client `rill`,
 * secret `e2e-secret`, and whoever signs in there is `ada@example.com`. */
export class FakeIdpProcess {
  private child?: ChildProcess;
  readonly issuer: string;

  constructor(readonly port: number, readonly oidcPort: number) {
    this.issuer = `http://127.0.0.1:${oidcPort}`;
  }

  async start() {
    const args = ["--port", String(this.port), "--oidc-port", String(this.oidcPort)];
    this.child = spawn("../target/debug/fake-provider", args, { stdio: "ignore" });
    await waitForHttp(`${this.issuer}/.well-known/openid-configuration`, 30_000);
  }

  async stop() {
    const child = this.child;
    if (!child) return;
    child.kill("SIGKILL");
    await exited(child, 10_000);
  }
}
