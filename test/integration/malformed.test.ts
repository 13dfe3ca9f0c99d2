/** Hostile and broken requests: every one gets a 4xx OpenAI-style error, and the server keeps serving. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { testModel } from "../helpers/models.js";

let server: TestServer;

before(async () => {
  const model = await testModel("stories260K-chatml.gguf");
  server = await startTestServer({
    models: [{ id: "chat", path: model.path, parallel: 2, context_size: 256 }],
    max_body_bytes: 256 * 1024,
  });
});

after(async () => {
  await server?.stop();
});

interface Case {
  name: string;
  method?: string;
  path?: string;
  contentType?: string;
  body: string | Buffer;
}

const goodMessages = [{ role: "user", content: "hi" }];
const json = (value: unknown) => JSON.stringify(value);

function cases(): Case[] {
  const out: Case[] = [];
  const chat = (name: string, body: unknown) => out.push({ name, body: json(body) });
  // not JSON at all
  for (const raw of ["", "{", "}", "[", "nul", "{'model': 'chat'}", '{"model":"chat",}', "\u0000\u0001", '{"model":"chat","messages":[', "<xml/>"]) {
    out.push({ name: `broken JSON ${JSON.stringify(raw)}`, body: raw });
  }
  // JSON that is not an object
  for (const value of [null, 1, "chat", true, [], [1, 2], [{ model: "chat" }]]) chat(`non-object body ${json(value)}`, value);
  // wrong types for every field
  const wrongTypes: Record<string, unknown[]> = {
    model: [1, null, true, {}, [], ""],
    messages: ["hi", 1, null, {}, [], [1], ["hi"], [null]],
    max_tokens: [-1, 0, 1.5, "10", true, {}, -1e9],
    max_completion_tokens: [-5, 0, "x"],
    temperature: [-1, 3, "hot", {}, []],
    top_p: [-0.1, 1.1, "x"],
    top_k: [-1, 1.5, "x"],
    min_p: [-1, 2, "x"],
    seed: [1.5, "x", {}],
    stop: [1, [1], {}, "", [""], Array.from({ length: 40 }, (_, i) => `s${i}`)],
    presence_penalty: [-3, 3, "x"],
    frequency_penalty: [-3, 3, "x"],
    n: [0, -1, "1", 17, 1.5],
    stream: ["yes", 1, {}],
    stream_options: ["x", 1, { include_usage: "yes" }, { unknown: true }],
    user: [1, {}],
    logprobs: ["x", 1],
    top_logprobs: [21, -1, "5"],
    response_format: [{ type: "json" }, "json", 1, { type: "json_schema" }, { type: "json_schema", json_schema: { name: "a b" } }],
    tools: [1, "x", [{ type: "function" }], [{ type: "web_search" }], [{ type: "function", function: { name: "has space" } }]],
    tool_choice: ["always", 1, { type: "function" }, { type: "function", function: { name: "missing" } }],
    parallel_tool_calls: ["yes"],
    metadata: ["x", { k: 1 }],
    service_tier: ["fastest"],
    reasoning_effort: ["extreme"],
  };
  for (const [field, values] of Object.entries(wrongTypes)) {
    for (const value of values) chat(`${field}=${json(value)?.slice(0, 40)}`, { model: "chat", messages: goodMessages, [field]: value });
  }
  // broken messages
  const badMessages: unknown[] = [
    [{ role: "robot", content: "hi" }],
    [{ role: "user" }],
    [{ content: "hi" }],
    [{ role: "user", content: 1 }],
    [{ role: "user", content: [{ type: "image_url", image_url: { url: "http://x" } }] }],
    [{ role: "user", content: [{ type: "text" }] }],
    [{ role: "user", content: [] }],
    [{ role: "user", content: "hi", extra: 1 }],
    [{ role: "system", content: null }],
    [{ role: "tool", content: "x", tool_call_id: "1" }],
    [{ role: "tool", content: "x" }],
    [{ role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "not json" } }] }],
    [{ role: "assistant", tool_calls: [{ id: "c1", type: "function", function: { name: "f" } }] }],
  ];
  badMessages.forEach((messages, i) => chat(`bad messages #${i}`, { model: "chat", messages }));
  // unknown and unsupported fields
  for (const field of ["foo", "functions", "logit_bias", "__proto__x", "constructor", "prompt"]) {
    chat(`unknown field ${field}`, { model: "chat", messages: goodMessages, [field]: 1 });
  }
  // tool schemas that are not JSON Schema, or that a grammar cannot enforce where one applies
  const tool = (parameters: unknown) => [{ type: "function", function: { name: "f", parameters } }];
  chat("tool schema with a bad type", { model: "chat", messages: goodMessages, tools: tool({ type: "strng" }) });
  chat("tool schema required not a list", { model: "chat", messages: goodMessages, tools: tool({ type: "object", required: "a" }) });
  chat("forced tool with a pattern", {
    model: "chat",
    messages: goodMessages,
    tools: tool({ type: "object", properties: { a: { type: "string", pattern: "^x$" } } }),
    tool_choice: "required",
  });
  chat("json_schema with not", {
    model: "chat",
    messages: goodMessages,
    response_format: { type: "json_schema", json_schema: { name: "x", schema: { not: { type: "string" } } } },
  });
  chat("two tools of one name", { model: "chat", messages: goodMessages, tools: [...tool({}), ...tool({})] });
  chat("top_logprobs without logprobs", { model: "chat", messages: goodMessages, top_logprobs: 2 });
  // missing pieces
  chat("missing model", { messages: goodMessages });
  chat("missing messages", { model: "chat" });
  chat("empty messages", { model: "chat", messages: [] });
  chat("empty object", {});
  // unknown or hostile model ids
  for (const model of ["nope", "../../etc/passwd", "chat/../../x", "%2e%2e%2f", "a".repeat(600), "chat\u0000", " chat"]) {
    chat(`model ${json(model).slice(0, 30)}`, { model, messages: goodMessages });
  }
  // a prompt larger than the context, a body larger than max_body_bytes
  chat("prompt over context", { model: "chat", messages: [{ role: "user", content: "story ".repeat(600) }] });
  chat("max_tokens over context", { model: "chat", messages: goodMessages, max_tokens: 100_000 });
  out.push({ name: "body over max_body_bytes", body: json({ model: "chat", messages: [{ role: "user", content: "x".repeat(400 * 1024) }] }) });
  // deep nesting and huge arrays
  const deep = `${"[".repeat(20_000)}"x"${"]".repeat(20_000)}`;
  out.push({ name: "deeply nested content", body: `{"model":"chat","messages":[{"role":"user","content":${deep}}]}` });
  out.push({ name: "deeply nested object", body: `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}` });
  chat("huge messages array", { model: "chat", messages: Array.from({ length: 20_000 }, () => ({ role: "user" })) });
  // invalid UTF-8 and odd content types
  out.push({ name: "invalid UTF-8", body: Buffer.from([0x7b, 0x22, 0x6d, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) });
  out.push({ name: "xml content type", contentType: "application/xml", body: "<a/>" });
  out.push({ name: "form body that is not JSON", contentType: "application/x-www-form-urlencoded", body: "model=chat&messages=hi" });
  // completions and embeddings routes
  const completion = (name: string, body: unknown) => out.push({ name: `completions: ${name}`, path: "/v1/completions", body: json(body) });
  completion("no prompt", { model: "chat" });
  completion("prompt number", { model: "chat", prompt: 1 });
  completion("prompt list of two", { model: "chat", prompt: ["a", "b"] });
  completion("echo", { model: "chat", prompt: "a", echo: true });
  completion("best_of", { model: "chat", prompt: "a", best_of: 3 });
  completion("negative max_tokens", { model: "chat", prompt: "a", max_tokens: -1 });
  const embedding = (name: string, body: unknown) => out.push({ name: `embeddings: ${name}`, path: "/v1/embeddings", body: json(body) });
  embedding("chat model", { model: "chat", input: "a" });
  embedding("no input", { model: "chat" });
  embedding("input number", { model: "chat", input: 5 });
  embedding("bad encoding", { model: "chat", input: "a", encoding_format: "hex" });
  embedding("empty list", { model: "chat", input: [] });
  // routes and methods that do not exist
  out.push({ name: "unknown route", path: "/v1/nothing", body: "{}" });
  out.push({ name: "GET on a POST route", method: "GET", path: "/v1/chat/completions", body: "" });
  out.push({ name: "path traversal route", method: "GET", path: "/v1/models/..%2f..%2fetc%2fpasswd", body: "" });
  out.push({ name: "admin load unknown", path: "/admin/models/load", body: json({ model_id: "../../etc/passwd" }) });
  out.push({ name: "admin load wrong type", path: "/admin/models/load", body: json({ model_id: 5 }) });
  // fill up to 200 with generated combinations of wrong field values
  let i = 0;
  const fields = Object.keys(wrongTypes);
  while (out.length < 200) {
    const field = fields[i % fields.length]!;
    const values = wrongTypes[field]!;
    chat(`combo ${i}`, { model: "chat", messages: goodMessages, [field]: values[i % values.length], extra_param: i });
    i++;
  }
  return out;
}

test("200+ malformed requests each get a 4xx OpenAI error; the server stays up and serves", async () => {
  const all = cases();
  assert.ok(all.length >= 200, `have ${all.length} cases`);
  for (const c of all) {
    const init: RequestInit = { method: c.method ?? "POST", headers: { "content-type": c.contentType ?? "application/json" } };
    if (init.method !== "GET") init.body = c.body;
    const res = await fetch(`${server.url}${c.path ?? "/v1/chat/completions"}`, init);
    const text = await res.text();
    assert.ok(res.status >= 400 && res.status < 500, `${c.name}: expected a 4xx, got ${res.status} ${text.slice(0, 200)}`);
    let body: { error?: { message?: unknown; type?: unknown; code?: unknown } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      assert.fail(`${c.name}: error body is not JSON: ${text.slice(0, 200)}`);
    }
    assert.equal(typeof body.error?.message, "string", `${c.name}: has a message`);
    assert.equal(typeof body.error?.type, "string", `${c.name}: has a type`);
    assert.equal(typeof body.error?.code, "string", `${c.name}: has a code`);
  }
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  const ok = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: json({ model: "chat", messages: goodMessages, max_tokens: 4 }),
  });
  assert.equal(ok.status, 200);
});

test("errors name the parameter and use OpenAI's codes", async () => {
  const post = async (body: unknown) => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: json(body),
    });
    return { status: res.status, body: (await res.json()) as { error: { code: string; param: string | null; type: string; message: string } } };
  };
  const unknown = await post({ model: "chat", messages: goodMessages, foo: 1 });
  assert.deepEqual([unknown.status, unknown.body.error.code, unknown.body.error.param], [400, "unknown_parameter", "foo"]);
  const negative = await post({ model: "chat", messages: goodMessages, max_tokens: -1 });
  assert.deepEqual([negative.status, negative.body.error.code, negative.body.error.param], [400, "invalid_value", "max_tokens"]);
  const role = await post({ model: "chat", messages: [{ role: "robot", content: "x" }] });
  assert.equal(role.body.error.param, "messages[0].role");
  const missing = await post({ model: "nope", messages: goodMessages });
  assert.deepEqual([missing.status, missing.body.error.code, missing.body.error.type], [404, "model_not_found", "invalid_request_error"]);
  const big = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: json({ model: "chat", messages: [{ role: "user", content: "x".repeat(400 * 1024) }] }),
  });
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { error: { code: string } }).error.code, "request_too_large");
});
