/**
 * Fuzz gate: 2,000+ generated malformed or hostile requests across every route, from a seeded generator so a
 * failure reproduces. No 5xx, no crash, bounded memory; slow-loris partial bodies are cut by the request timeout.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

const SEED = 20261123;
const REQUESTS = 2_200;

function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x100000000;
  };
}

let server: TestServer;
before(async () => {
  const model = await testModel("stories260K-chatml.gguf");
  server = await startTestServer({
    models: [{ id: "chat", path: model.path, context_size: 256, parallel: 2 }],
    max_body_bytes: 512 * 1024,
    request_timeout_sec: 1,
    jit_load: false, // hostile requests must not make the server load models
  });
});
after(async () => server?.stop());

const ROUTES: Array<[string, string]> = [
  ["POST", "/v1/chat/completions"],
  ["POST", "/v1/completions"],
  ["POST", "/v1/embeddings"],
  ["GET", "/v1/models"],
  ["GET", "/v1/models/chat"],
  ["POST", "/admin/models/load"],
  ["POST", "/admin/models/unload"],
  ["POST", "/admin/models/download"],
  ["POST", "/admin/models/probe"],
  ["POST", "/admin/models/unquarantine"],
  ["GET", "/admin/models/compatibility"],
  ["GET", "/admin/models/downloads/x"],
  ["DELETE", "/admin/models/downloads/x"],
  ["PUT", "/v1/chat/completions"],
  ["POST", "/healthz"],
];

const HOSTILE_STRINGS = [
  "../../etc/passwd",
  "..%2f..%2fetc%2fpasswd",
  "chat\u0000",
  "\ud800",
  "🙂".repeat(50),
  "<script>alert(1)</script>",
  "' OR 1=1 --",
  "%00",
  "a".repeat(10_000),
  "",
  " ",
  "\n",
  "chat/../../x",
  "C:\\Windows\\system32",
  "${jndi:ldap://x}",
  "__proto__",
  "constructor",
];

/** encodeURIComponent throws on lone surrogates: send those as raw percent-escapes of their UTF-16 units. */
function safeEncode(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return [...text].map((c) => `%${(c.charCodeAt(0) & 0xff).toString(16).padStart(2, "0")}`).join("");
  }
}

function randomValue(rand: () => number, depth = 0): unknown {
  const pick = Math.floor(rand() * 12);
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor((rand() - 0.5) * 2 ** (rand() * 60));
    case 3:
      return rand() * 1e6 - 5e5;
    case 4:
      return HOSTILE_STRINGS[Math.floor(rand() * HOSTILE_STRINGS.length)];
    case 5:
      return depth > 3 ? [] : Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    case 6:
      return depth > 3 ? {} : Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, (_, i) => [`k${i}`, randomValue(rand, depth + 1)]));
    case 7:
      return Array.from({ length: 5_000 }, () => 1);
    case 8:
      return { role: "user", content: randomValue(rand, depth + 1) };
    case 9:
      return [{ role: HOSTILE_STRINGS[Math.floor(rand() * HOSTILE_STRINGS.length)], content: "x" }];
    case 10:
      return Number.NaN;
    default:
      return "chat";
  }
}

const FIELDS = [
  "model",
  "messages",
  "prompt",
  "input",
  "max_tokens",
  "temperature",
  "stop",
  "stream",
  "n",
  "model_id",
  "repo",
  "settings",
  "timeout_sec",
  "seed",
  "top_p",
  "extra",
];

function randomBody(rand: () => number): Buffer {
  const kind = Math.floor(rand() * 10);
  if (kind === 0) return Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)));
  if (kind === 1) return Buffer.from(`${"[".repeat(Math.floor(rand() * 50_000))}`);
  if (kind === 2) return Buffer.from(JSON.stringify({ model: "chat", messages: [{ role: "user", content: "x".repeat(600 * 1024) }] }));
  if (kind === 3) return Buffer.from(JSON.stringify(randomValue(rand)));
  const body: Record<string, unknown> = {};
  for (const field of FIELDS) if (rand() < 0.35) body[field] = randomValue(rand);
  if (rand() < 0.6) body["model"] = rand() < 0.5 ? "chat" : randomValue(rand);
  if (rand() < 0.3) body["model_id"] = rand() < 0.5 ? "chat" : HOSTILE_STRINGS[Math.floor(rand() * HOSTILE_STRINGS.length)];
  return Buffer.from(JSON.stringify(body));
}

test(`${REQUESTS} generated hostile requests across every route: no 5xx, no crash, bounded memory`, async (t) => {
  const rand = prng(SEED);
  const rssBefore = process.memoryUsage.rss();
  const fiveHundreds: string[] = [];
  const contentTypes = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/xml",
    "multipart/form-data; boundary=x",
    "",
  ];
  for (let i = 0; i < REQUESTS; i++) {
    const [method, route] = ROUTES[Math.floor(rand() * ROUTES.length)]!;
    const suffix = rand() < 0.1 ? `?${safeEncode(String(randomValue(rand)))}=${safeEncode(String(randomValue(rand)))}` : "";
    const init: RequestInit = { method, headers: {} };
    const contentType = contentTypes[Math.floor(rand() * contentTypes.length)]!;
    if (contentType) (init.headers as Record<string, string>)["content-type"] = contentType;
    if (method !== "GET") init.body = randomBody(rand);
    const res = await fetch(`${server.url}${route}${suffix}`, init);
    const text = await res.text();
    if (res.status >= 500) fiveHundreds.push(`#${i} ${method} ${route}${suffix.slice(0, 80)}: ${res.status} ${text.slice(0, 200)}`);
    else if (res.status >= 400) {
      let parsed: { error?: { code?: unknown } } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        // reported below with the raw text
      }
      assert.equal(
        typeof parsed.error?.code,
        "string",
        `#${i} ${method} ${route}${suffix.slice(0, 80)} (${contentType}): an OpenAI-style error body, got ${res.status} ${text.slice(0, 200)}`,
      );
    }
  }
  const rssAfter = process.memoryUsage.rss();
  t.diagnostic(`gateway process RSS ${Math.round(rssBefore / 1048576)} → ${Math.round(rssAfter / 1048576)} MiB over ${REQUESTS} requests`);
  assert.deepEqual(fiveHundreds.slice(0, 5), [], `${fiveHundreds.length} requests got a 5xx`);
  assert.ok(rssAfter - rssBefore < 200 * 1048576, "memory stayed bounded");
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
});

test("slow-loris: partial bodies are cut after request_timeout_sec, and the server keeps answering", async () => {
  const { hostname, port } = new URL(server.url);
  const answers: string[] = [];
  const sockets = Array.from({ length: 20 }, (_, i) => {
    const socket = net.connect(Number(port), hostname);
    socket.on("error", () => {});
    // a socket that is not read never notices the server's FIN: read, and keep what the server said
    socket.on("data", (chunk: Buffer) => (answers[i] = (answers[i] ?? "") + chunk.toString()));
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":"ch`,
    );
    return socket;
  });
  const closed = sockets.map((s) => new Promise<void>((resolve) => s.once("close", () => resolve())));
  const healthy = await fetch(`${server.url}/healthz`);
  assert.equal(healthy.status, 200, "answers while 20 uploads stall");
  const outcome = await Promise.race([Promise.all(closed).then(() => "closed"), new Promise((r) => setTimeout(() => r("still open"), 8_000))]);
  assert.equal(outcome, "closed", "the server cut the stalled uploads");
  assert.equal(answers.length, 20);
  for (const answer of answers) {
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /"code":"request_timeout"/);
  }
});
