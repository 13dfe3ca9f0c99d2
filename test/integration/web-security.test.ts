/**
 * Web pages must not drive a default install: bodies only as application/json (no preflight-free text/plain or
 * form bodies), the Host header must name this server (DNS rebinding), state-changing requests from foreign
 * origins are refused, and CORS is granted only to cors_origins. Checked with raw HTTP and from pages in a real
 * headless Chromium (Debian's /usr/bin/chromium; never downloaded), always asserting on the server's side that
 * nothing was loaded, downloaded or generated.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { testModel } from "../helpers/models.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const CHROMIUM = "/usr/bin/chromium";
const ALLOWED_NAME = "lmx.internal";

let server: TestServer;
let port: number;
let cacheDir: string;
/** Pages of other sites: one attacker, one origin the operator listed in cors_origins. */
let attacker: http.Server;
let friend: http.Server;
let attackerOrigin: string;
let friendOrigin: string;

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** node:http rather than fetch: fetch does not let a caller choose the Host header. */
function raw(method: string, urlPath: string, headers: Record<string, string> = {}, body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port, method, path: urlPath, headers }, (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (text += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
    });
    request.on("error", reject);
    request.end(body);
  });
}

const code = (r: Raw) => (JSON.parse(r.text) as { error: { code: string; message: string } }).error;
const chatBody = JSON.stringify({ model: "chat", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
const loadBody = JSON.stringify({ model_id: "chat" });

function pageServer(html: () => string): Promise<http.Server> {
  const s = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html());
  });
  return new Promise((resolve) => s.listen(0, "127.0.0.1", () => resolve(s)));
}

before(async () => {
  const model = await testModel("stories260K-chatml.gguf");
  attacker = await pageServer(() => "<!doctype html><title>a page on the web</title>");
  friend = await pageServer(() => "<!doctype html><title>the operator's own app</title>");
  // names resolved by Chromium's host-resolver-rules below: real cross-site origins, all on loopback
  attackerOrigin = `http://evil.example:${(attacker.address() as AddressInfo).port}`;
  friendOrigin = `http://friend.example:${(friend.address() as AddressInfo).port}`;
  cacheDir = mkdtempSync(path.join(os.tmpdir(), "lmx-websec-cache-"));
  server = await startTestServer({
    models: [{ id: "chat", path: model.path, parallel: 1, context_size: 128, threads: 1 }],
    demo_model: false,
    allowed_hosts: [ALLOWED_NAME],
    cors_origins: [friendOrigin],
    // nothing may be fetched: a download that got through would show as a job
    downloads: { hub_url: "http://127.0.0.1:9", cache_dir: cacheDir },
  });
  port = Number(new URL(server.url).port);
});

after(async () => {
  await server?.stop();
  attacker?.close();
  friend?.close();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

/** The server's own account: what is loaded, what is downloading, and whether any generation was answered. */
async function serverState(): Promise<{ loaded: number; downloads: number; answered: number }> {
  const status = JSON.parse((await raw("GET", "/admin/status")).text) as { models_loaded: unknown[] };
  const downloads = JSON.parse((await raw("GET", "/admin/models/downloads")).text) as { data: unknown[] };
  const metrics = (await raw("GET", "/metrics")).text;
  const answered = [...metrics.matchAll(/^lmx:requests_total\{[^}]*status="200"[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  return { loaded: status.models_loaded.length, downloads: downloads.data.length, answered };
}

test("JSON bodies are accepted only as application/json: text/plain and form bodies get 415 and do nothing", async () => {
  for (const [contentType, urlPath, body] of [
    ["text/plain", "/admin/models/load", loadBody],
    ["text/plain;charset=UTF-8", "/v1/chat/completions", chatBody],
    ["application/x-www-form-urlencoded", "/admin/models/load", loadBody],
    ["text/plain", "/admin/models/download", JSON.stringify({ repo: "org/model" })],
    ["multipart/form-data; boundary=x", "/admin/models/unload", loadBody],
  ] as const) {
    const r = await raw("POST", urlPath, { "content-type": contentType }, body);
    assert.equal(r.status, 415, `${contentType} to ${urlPath}: ${r.text}`);
    assert.equal(code(r).code, "unsupported_media_type");
    assert.match(code(r).message, /application\/json/);
  }
  assert.deepEqual(await serverState(), { loaded: 0, downloads: 0, answered: 0 });
});

test("a Host header that is not a name of this server is refused with 403 forbidden_host (DNS rebinding)", async () => {
  for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.nip.io:${port}`, `localhost.evil.example:${port}`, "a@127.0.0.1"]) {
    const r = await raw("GET", "/admin/status", { host });
    assert.equal(r.status, 403, `Host ${host}: ${r.text}`);
    assert.equal(code(r).code, "forbidden_host");
    assert.match(code(r).message, /allowed_hosts/);
    assert.doesNotMatch(r.text, /uptime/);
  }
  const load = await raw("POST", "/admin/models/load", { host: `evil.example:${port}`, "content-type": "application/json" }, loadBody);
  assert.equal(load.status, 403);
  // loopback names, IP addresses (which cannot be rebound) and allowed_hosts reach the server
  for (const host of [
    `127.0.0.1:${port}`,
    `localhost:${port}`,
    `[::1]:${port}`,
    `app.localhost:${port}`,
    `${ALLOWED_NAME}:${port}`,
    `192.168.1.20:${port}`,
  ]) {
    const r = await raw("GET", "/admin/status", { host });
    assert.equal(r.status, 200, `Host ${host}: ${r.text}`);
  }
  assert.equal((await serverState()).loaded, 0);
});

test("state-changing requests with a foreign Origin get 403 forbidden_origin; the server's own origin works", async () => {
  for (const [method, urlPath, body] of [
    ["POST", "/admin/models/load", loadBody],
    ["POST", "/admin/models/unload", loadBody],
    ["POST", "/v1/chat/completions", chatBody],
    ["POST", "/admin/models/download", JSON.stringify({ repo: "org/model" })],
    ["DELETE", "/admin/models/downloads/x", undefined],
  ] as const) {
    for (const origin of ["http://evil.example", "null", `http://localhost:${port}`, `http://127.0.0.1:${port + 1}`]) {
      const r = await raw(method, urlPath, { origin, ...(body ? { "content-type": "application/json" } : {}) }, body);
      assert.equal(r.status, 403, `${method} ${urlPath} from ${origin}: ${r.text}`);
      assert.equal(code(r).code, "forbidden_origin");
      assert.match(code(r).message, /cors_origins/);
      assert.equal(r.headers["access-control-allow-origin"], undefined);
    }
  }
  assert.deepEqual(await serverState(), { loaded: 0, downloads: 0, answered: 0 });
  // reads are not refused (a browser keeps the answer from a foreign page), but get no CORS header
  const read = await raw("GET", "/v1/models", { origin: "http://evil.example" });
  assert.equal(read.status, 200);
  assert.equal(read.headers["access-control-allow-origin"], undefined);
  // a page served by this server itself (a dashboard at /ui): same host and port in Origin and Host
  const own = await raw(
    "POST",
    "/v1/chat/completions",
    { origin: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, "content-type": "application/json" },
    chatBody,
  );
  assert.equal(own.status, 200, own.text);
  assert.equal((await serverState()).answered, 1);
});

test("CORS preflights are answered for cors_origins only", async () => {
  const preflight = (origin: string) =>
    raw("OPTIONS", "/v1/chat/completions", {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type, authorization",
    });
  const ok = await preflight(friendOrigin);
  assert.equal(ok.status, 204);
  assert.equal(ok.headers["access-control-allow-origin"], friendOrigin);
  assert.match(String(ok.headers["access-control-allow-methods"]), /POST/);
  assert.match(String(ok.headers["access-control-allow-headers"]), /content-type/);
  const refused = await preflight("http://evil.example");
  assert.equal(refused.status, 403);
  assert.equal(refused.headers["access-control-allow-origin"], undefined);
  assert.equal(refused.headers["access-control-allow-methods"], undefined);
  const post = await raw("POST", "/v1/chat/completions", { origin: friendOrigin, "content-type": "application/json" }, chatBody);
  assert.equal(post.status, 200, post.text);
  assert.equal(post.headers["access-control-allow-origin"], friendOrigin);
});

test(
  "from real browser pages: another site cannot load, chat or download; the server's own page and a cors_origins page can",
  { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}` },
  async () => {
    // the earlier tests served a chat: start from nothing loaded
    assert.equal((await raw("POST", "/admin/models/unload", { "content-type": "application/json" }, loadBody)).status, 200);
    const before = await serverState();
    assert.equal(before.loaded, 0);
    let browser: Browser | null = null;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        // evil.example and friend.example are other sites; rebind.example plays a DNS-rebound name for this server
        args: ["--no-sandbox", "--host-resolver-rules=MAP evil.example 127.0.0.1, MAP friend.example 127.0.0.1, MAP rebind.example 127.0.0.1"],
      });
      const page = await browser.newPage();
      const seen: Array<{ url: string; method: string; status: number }> = [];
      page.on("response", (response) => {
        const request = response.request();
        if (request.url().includes(`:${port}/`))
          seen.push({ url: new URL(request.url()).pathname, method: request.method(), status: response.status() });
      });
      const lmx = `http://127.0.0.1:${port}`;

      // 1. a page on another site: text/plain fetches (no preflight needed) and a text/plain form whose body is JSON
      await page.goto(`${attackerOrigin}/`);
      await page.evaluate(
        async ({ lmx, chatBody, loadBody }) => {
          const send = (urlPath: string, body: string) =>
            fetch(lmx + urlPath, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body }).catch(() => null);
          await send("/admin/models/load", loadBody);
          await send("/v1/chat/completions", chatBody);
          await send("/admin/models/download", JSON.stringify({ repo: "org/model" }));
          // a Blob body without a type goes out with no Content-Type at all
          await fetch(`${lmx}/admin/models/load`, { method: "POST", mode: "no-cors", body: new Blob([loadBody]) }).catch(() => null);
        },
        { lmx, chatBody, loadBody },
      );
      // the classic JSON-in-a-form trick: name + "=" + value lands inside the "user" string
      const formSent = page.waitForResponse(
        (r) => r.url().endsWith("/v1/chat/completions") && r.request().method() === "POST" && r.request().resourceType() === "document",
      );
      await page.evaluate(`(() => {
      const form = document.createElement("form");
      form.method = "POST";
      form.enctype = "text/plain";
      form.action = ${JSON.stringify(`${lmx}/v1/chat/completions`)};
      const input = document.createElement("input");
      input.name = '{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"user":"';
      input.value = '"}';
      form.appendChild(input);
      document.body.appendChild(form);
      form.submit();
    })()`);
      const form = await formSent;
      assert.notEqual(form.status(), 200, "the form post was refused");
      // the form navigated the page to its refusal: let that navigation finish before the next one starts
      await page.waitForURL((url) => url.pathname === "/v1/chat/completions");
      await page.waitForLoadState("load");
      const posts = seen.filter((s) => s.method === "POST");
      assert.equal(posts.length, 5, `the browser sent all five requests: ${JSON.stringify(seen)}`);
      for (const s of posts) assert.ok(s.status === 403 || s.status === 415, `refused: ${JSON.stringify(s)}`);
      assert.deepEqual(await serverState(), { loaded: 0, downloads: 0, answered: before.answered }, "nothing loaded, downloaded or generated");

      // 2. a DNS-rebound name for this server: the page would be same-origin, so the Host check is what stops it
      const rebound = await page.goto(`http://rebind.example:${port}/admin/status`);
      assert.equal(rebound?.status(), 403);
      assert.doesNotMatch((await rebound?.text()) ?? "", /uptime/);

      // 3. a page served by this server itself: same-origin requests work
      await page.goto(`${lmx}/healthz`);
      const own = await page.evaluate(
        async ({ chatBody }) => {
          const r = await fetch("/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: chatBody });
          return { status: r.status, body: (await r.json()) as { object?: string } };
        },
        { chatBody },
      );
      assert.equal(own.status, 200, JSON.stringify(own.body));
      assert.equal(own.body.object, "chat.completion");

      // 4. an origin in cors_origins: the preflighted JSON request works and the page can read the answer
      await page.goto(`${friendOrigin}/`);
      const friendly = await page.evaluate(
        async ({ lmx, chatBody }) => {
          const r = await fetch(`${lmx}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: chatBody });
          const models = await fetch(`${lmx}/v1/models`);
          return { status: r.status, body: (await r.json()) as { object?: string }, backend: r.headers.get("x-lmx-backend"), models: models.status };
        },
        { lmx, chatBody },
      );
      assert.equal(friendly.status, 200, JSON.stringify(friendly.body));
      assert.equal(friendly.body.object, "chat.completion");
      assert.ok(friendly.backend, "exposed headers are readable");
      assert.equal(friendly.models, 200);
    } finally {
      await browser?.close();
    }
  },
);
