/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against a real gateway with an
 * admin key and API keys, a real model and the local fake hub. Every step waits for a condition in the page
 * (no sleeps). With LMX_UI_SCREENSHOTS=1 the run also writes docs/images/ui-*.png (the checked-in screenshots).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { startFakeHub, type FakeHub } from "../helpers/fake-hub.js";
import { PROJECT_ROOT, testModel } from "../helpers/models.js";
import { getJson, showLogsOnFailure, startTestServer, type TestServer } from "../helpers/server.js";

const ADMIN_KEY = "dashboard-admin-key";
const API_KEY = "sk-dashboard-api-key";
const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = process.env["LMX_UI_SCREENSHOTS"] === "1";
const WAIT = { timeout: 60_000 };

let hub: FakeHub;
let server: TestServer;
let cache: string;
let browser: Browser;
let page: Page;
/** Every URL the page asked for, and those that went anywhere but the gateway. */
const requested: string[] = [];
const foreign: string[] = [];

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`the dashboard tests need Debian's chromium at ${CHROMIUM} (.ci/debian-packages installs it)`);
  const model = await testModel("stories260K-chatml.gguf");
  const gguf = readFileSync((await testModel("stories260K.gguf")).path);
  // slow enough that the page sees the download running before it completes
  hub = await startFakeHub({
    repos: { "tiny/stories-GGUF": { files: { "stories260K.gguf": gguf, "config.json": Buffer.from("{}") } } },
    faults: { "tiny/stories-GGUF": { "stories260K.gguf": { chunkBytes: 64 * 1024, chunkDelayMs: 100 } } },
  });
  cache = mkdtempSync(path.join(os.tmpdir(), "lmx-ui-cache-"));
  server = await startTestServer({
    admin_key: ADMIN_KEY,
    api_keys: [API_KEY],
    models: [{ id: "stories", path: model.path, context_size: 512, parallel: 1, threads: 1 }],
    discovery: { hf_cache: cache, lmstudio: false, ollama: false },
    downloads: { hub_url: hub.url, min_free_bytes: 0 },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
  page = await context.newPage();
  // nothing may leave for another host: such a request is recorded and refused
  await page.route("**/*", (route) => {
    const url = route.request().url();
    requested.push(url);
    if (url.startsWith(`${server.url}/`) || url.startsWith("data:")) return route.continue();
    foreign.push(url);
    return route.abort();
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await hub?.close();
  if (cache) rmSync(cache, { recursive: true, force: true });
});

async function screenshot(name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await page.screenshot({ path: path.join(PROJECT_ROOT, "docs", "images", `ui-${name}.png`) });
}

async function go(hash: string): Promise<void> {
  await page.click(`nav a[href="#${hash}"]`);
  await page.waitForSelector(`#page-${hash}:not([hidden])`, WAIT);
}

test("API clients get the same answers as before; browsers are sent to /ui; the session cookie is guarded", async () => {
  const json = await fetch(`${server.url}/`, { headers: { accept: "application/json" }, redirect: "manual" });
  assert.equal(json.status, 404);
  const html = await fetch(`${server.url}/`, { headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" }, redirect: "manual" });
  assert.deepEqual([html.status, html.headers.get("location")], [302, "/ui/"]);
  const csp = (await fetch(`${server.url}/ui/`)).headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.equal((await fetch(`${server.url}/ui/static/../../../package.json`)).status, 404);

  const login = await fetch(`${server.url}/ui/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key: ADMIN_KEY }),
  });
  assert.equal(login.status, 204);
  const setCookie = login.headers.get("set-cookie") ?? "";
  assert.match(setCookie, /^lmx_session=[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict/);
  assert.ok(!setCookie.includes(ADMIN_KEY), "the cookie is a session id, not the key");
  const cookie = setCookie.split(";")[0]!;
  assert.equal((await fetch(`${server.url}/admin/status`)).status, 401);
  assert.equal((await fetch(`${server.url}/admin/status`, { headers: { cookie } })).status, 200);
  assert.equal((await fetch(`${server.url}/metrics`, { headers: { cookie } })).status, 200);
  // a state change with the cookie must come from the dashboard's own origin: another port of the same host
  // (the same *site*, so SameSite does not stop it) and a request without Origin are both refused
  const unload = (headers: Record<string, string>) =>
    fetch(`${server.url}/admin/models/unload`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, ...headers },
      body: JSON.stringify({ model_id: "stories" }),
    });
  assert.equal((await unload({ origin: "http://127.0.0.1:1" })).status, 403);
  assert.equal((await unload({})).status, 401);
  assert.equal((await unload({ origin: server.url })).status, 200);
  const wrong = await getJson<{ error: { code: string } }>(`${server.url}/ui/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key: "not-the-key" }),
  });
  assert.deepEqual([wrong.status, wrong.body.error.code], [401, "unauthorized"]);
  const logout = await fetch(`${server.url}/ui/logout`, { method: "POST", headers: { cookie, origin: server.url } });
  assert.equal(logout.status, 204);
  assert.equal((await fetch(`${server.url}/admin/status`, { headers: { cookie } })).status, 401, "logging out ends the session");
});

test("a wrong admin key shows a clear message; the right one, typed and sent with Enter, opens the dashboard", { timeout: 120_000 }, () =>
  showLogsOnFailure(server, async () => {
    await page.goto(`${server.url}/`);
    assert.equal(new URL(page.url()).pathname, "/ui/");
    await page.waitForSelector("#login:not([hidden])", WAIT);
    await page.fill("#login-key", "definitely-wrong");
    await page.press("#login-key", "Enter");
    await page.waitForSelector('#login-error:has-text("Wrong admin key")', WAIT);
    await page.fill("#login-key", ADMIN_KEY);
    await page.press("#login-key", "Enter");
    await page.waitForSelector("#nav:not([hidden])", WAIT);
    assert.equal(await page.evaluate("document.cookie"), "", "the session cookie is HttpOnly: scripts cannot read it");
    assert.ok(!page.url().includes(ADMIN_KEY));
  }),
);

test("the on-disk model is listed and Load turns it to loaded without a reload", { timeout: 120_000 }, () =>
  showLogsOnFailure(server, async () => {
    const row = 'tr[data-model="stories"]';
    await page.waitForSelector(`${row} td[data-status="available"]`, WAIT);
    await page.evaluate("window.stillHere = true");
    await page.click(`${row} button:has-text("Load")`);
    await page.waitForSelector(`${row} td[data-status="loaded"]`, WAIT);
    // the runner's facts (backend, slots) arrive after the lifecycle event, from /admin/models/loaded
    await page.waitForSelector(`${row}:has-text("0/1")`, WAIT);
    assert.equal(await page.evaluate("window.stillHere"), true, "the page was not reloaded");
    await screenshot("models");
  }),
);

test("the playground streams an answer token by token, with its counts and timings", { timeout: 120_000 }, () =>
  showLogsOnFailure(server, async () => {
    await go("playground");
    await page.waitForSelector('#pg-model option[value="stories"]', { ...WAIT, state: "attached" });
    await page.selectOption("#pg-model", "stories");
    await page.fill("#pg-temperature", "0");
    await page.fill("#pg-seed", "7");
    await page.fill("#pg-max_tokens", "24");
    await page.fill("#pg-system", "You tell short stories.");
    // count the separate pieces of text the answer receives while it streams
    await page.evaluate(`
      window.pieces = 0;
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) if (n.nodeType === Node.TEXT_NODE && n.parentElement?.classList.contains("content")) window.pieces++;
      }).observe(document.getElementById("pg-transcript"), { subtree: true, childList: true });
    `);
    await page.fill("#pg-message", "Once upon a time");
    await page.click('button:has-text("Send")');
    await page.waitForSelector('.msg.assistant .stats[data-done="true"]', WAIT);
    const answer = await page.textContent('.msg.assistant [data-testid="answer"]');
    const pieces = (await page.evaluate("window.pieces")) as number;
    const stats = (await page.textContent(".msg.assistant .stats")) ?? "";
    assert.ok((answer ?? "").length > 0, "the answer has text");
    assert.ok(pieces >= 2, `the answer arrived in ${pieces} piece(s), not streamed`);
    assert.match(stats, /prompt \d+ tokens/);
    assert.match(stats, /completion \d+ tokens/);
    assert.match(stats, /TTFT \d+ ms/);
    await screenshot("playground");
  }),
);

test("the live page charts throughput, latency and queue, and shows memory per model", { timeout: 120_000 }, () =>
  showLogsOnFailure(server, async () => {
    await go("live");
    await page.locator("#page-live canvas").nth(2).waitFor(WAIT);
    await page.waitForSelector('#live-memory:has-text("stories:")', WAIT);
    // two samples make the first point of every chart
    await page.locator("#page-live .u-legend").nth(2).waitFor(WAIT);
    // traffic while the page samples: requests until a sample with generated tokens is drawn
    const traffic = page.locator('#page-live .chart[data-traffic="true"]');
    while ((await traffic.count()) === 0) {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify({ model: "stories", prompt: "Once upon a time", max_tokens: 32 }),
      });
      assert.equal(res.status, 200, await res.text());
    }
    await screenshot("live");
  }),
);

test("a download against the fake hub shows progress up to 100% and the model appears", { timeout: 120_000 }, () =>
  showLogsOnFailure(server, async () => {
    await go("downloads");
    await page.fill("#download-repo", "tiny/stories-GGUF");
    await page.press("#download-repo", "Enter");
    const row = 'tr[data-repo="tiny/stories-GGUF"]';
    await page.waitForSelector(`${row} td[data-status="running"]`, WAIT);
    await page.waitForSelector(`${row} td[data-status="completed"]`, WAIT);
    await page.waitForSelector(`${row} .pct[data-pct="100"]`, WAIT);
    assert.equal(await page.getAttribute(`${row} progress`, "value"), "100");
    await screenshot("downloads");
    await go("models");
    await page.waitForSelector('tr[data-model="tiny/stories-GGUF"]', WAIT);
  }),
);

test("the compatibility page shows the load in the registry and a stored benchmark", { timeout: 180_000 }, () =>
  showLogsOnFailure(server, async () => {
    const bench = await fetch(`${server.url}/admin/benchmark`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-admin-key": ADMIN_KEY },
      body: JSON.stringify({ model: "stories", concurrency: [1], requests: 3, warmup: 0, rounds: 1, prompt_tokens: 16, max_tokens: 8 }),
    });
    assert.equal(bench.status, 200, await bench.clone().text());
    await go("compatibility");
    await page.waitForSelector('#page-compatibility tr:has(th:text-is("stories")):has(td:text-is("success"))', WAIT);
    await page.waitForSelector('#page-compatibility tr:has(th:text-is("stories")):has(td:text-is("admin"))', WAIT);
    await page.locator("#page-compatibility canvas").first().waitFor(WAIT);
    await screenshot("compatibility");
  }),
);

test("Unload returns the model to available; on a narrow window nothing overflows the page", { timeout: 120_000 }, () =>
  showLogsOnFailure(server, async () => {
    await go("models");
    const row = 'tr[data-model="stories"]';
    await page.click(`${row} button:has-text("Unload")`);
    await page.waitForSelector(`${row} td[data-status="available"]`, WAIT);
    await page.setViewportSize({ width: 390, height: 800 });
    for (const hash of ["models", "live", "downloads", "compatibility", "playground"]) {
      await go(hash);
      const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
      assert.ok(overflow <= 1, `#${hash} is ${overflow}px wider than a 390px window`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  }),
);

test("every request the page made went to the gateway", () => {
  assert.ok(requested.length > 10, `the page made ${requested.length} requests`);
  assert.deepEqual(foreign, []);
});
