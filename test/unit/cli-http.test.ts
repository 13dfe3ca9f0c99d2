/** How the CLI turns HTTP failures into messages and exit codes, and how it reads SSE streams. */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { CliError, EXIT } from "../../src/cli/exit.js";
import { httpError, LmxClient } from "../../src/cli/http.js";
import { sseData } from "../../src/cli/sse.js";
import type { Target } from "../../src/cli/target.js";

const target = (over: Partial<Target> = {}): Target => ({
  url: "http://127.0.0.1:1",
  adminKey: null,
  apiKey: null,
  from: { url: "--url", adminKey: null, apiKey: null },
  ...over,
});

const openAiError = (code: string, message: string) => JSON.stringify({ error: { message, type: "x", param: null, code } });

test("a 401 on an admin route is an auth error that names the admin setting, and says which key was refused", () => {
  const none = httpError(401, openAiError("unauthorized", "this route needs the admin key"), "admin", target(), "/admin/status");
  assert.equal(none.exitCode, EXIT.auth);
  assert.equal(none.fix, "set LMX_ADMIN_KEY or --admin-key to the server's admin_key");
  const sent = httpError(
    401,
    openAiError("unauthorized", "wrong"),
    "admin",
    target({ adminKey: "x", from: { url: "--url", adminKey: "LMX_ADMIN_KEY", apiKey: null } }),
    "/admin/status",
  );
  assert.match(sent.fix ?? "", /^the admin key from LMX_ADMIN_KEY was refused: set LMX_ADMIN_KEY/);
  const api = httpError(401, openAiError("invalid_api_key", "needs a key"), "v1", target(), "/v1/models");
  assert.equal(api.exitCode, EXIT.auth);
  assert.match(api.fix ?? "", /set LMX_API_KEY or --api-key/);
});

test("other server errors print the code and message (exit 1); a body that is not OpenAI-shaped says so", () => {
  const oom = httpError(507, openAiError("insufficient_memory", "needs 9 GiB, 2 GiB free"), "admin", target(), "/admin/models/load");
  assert.equal(oom.exitCode, EXIT.failed);
  assert.equal(oom.message, "insufficient_memory (HTTP 507): needs 9 GiB, 2 GiB free");
  assert.equal(oom.code, "insufficient_memory");
  assert.match(oom.fix ?? "", /lmx unload/);
  const html = httpError(502, "<html><body>Bad gateway</body></html>", "admin", target(), "/admin/status");
  assert.match(html.message, /^HTTP 502 from http:\/\/127\.0\.0\.1:1\/admin\/status: <html>/);
  assert.match(html.fix ?? "", /Opta LMX server/);
});

test("a closed port is 'nothing listens' with exit 3; a server that hangs times out with exit 3", async () => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const closed = new LmxClient(target({ url: `http://127.0.0.1:${port}` }));
  await assert.rejects(closed.get("/healthz", "open"), (e: unknown) => {
    assert.ok(e instanceof CliError);
    assert.equal(e.exitCode, EXIT.unreachable);
    assert.match(e.message, new RegExp(`nothing listens on 127\\.0\\.0\\.1:${port} — is \`lmx serve\` running\\?`));
    return true;
  });
  const silent = net.createServer(() => {}).listen(0, "127.0.0.1");
  await new Promise((r) => silent.once("listening", r));
  try {
    const hanging = new LmxClient(target({ url: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}` }));
    await assert.rejects(
      hanging.get("/healthz", "open", { timeoutMs: 300 }),
      (e: unknown) => e instanceof CliError && e.exitCode === EXIT.unreachable && /did not answer within/.test(e.message),
    );
    await hanging.close();
  } finally {
    silent.close();
  }
  await closed.close();
});

test("the client sends the admin key to admin routes and the API key to /v1 only", async () => {
  const seen: Array<{ url: string; admin: string | undefined; auth: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? "", admin: req.headers["x-admin-key"] as string | undefined, auth: req.headers.authorization });
    res.setHeader("content-type", "application/json");
    res.end("{}");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const client = new LmxClient(target({ url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, adminKey: "adm", apiKey: "api" }));
  try {
    await client.get("/admin/status", "admin");
    await client.get("/v1/models", "v1");
    await client.get("/healthz", "open");
    assert.deepEqual(seen, [
      { url: "/admin/status", admin: "adm", auth: undefined },
      { url: "/v1/models", admin: undefined, auth: "Bearer api" },
      { url: "/healthz", admin: undefined, auth: undefined },
    ]);
  } finally {
    await client.close();
    server.close();
  }
});

test("SSE: events split anywhere across chunks, CRLF, comments, multi-line data, [DONE] ends", async () => {
  const text = ': keep-alive\r\ndata: {"a":1}\r\n\r\ndata: line one\ndata: line two\n\nevent: x\ndata: {"b":"ü"}\n\ndata: [DONE]\n\ndata: after\n\n';
  const bytes = new TextEncoder().encode(text);
  async function* split(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i += 3) yield bytes.subarray(i, i + 3);
  }
  const events: string[] = [];
  for await (const data of sseData(split())) events.push(data);
  assert.deepEqual(events, ['{"a":1}', "line one\nline two", '{"b":"ü"}']);
});
