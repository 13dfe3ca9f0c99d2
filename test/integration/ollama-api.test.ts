/**
 * Ollama's API (/api/*) with the official `ollama` npm client against a real server and real runners: the
 * stories260K ChatML model, the same file as an embedding model, and a random-weight model carrying a Hermes
 * template (tools and `format` with a bounded JSON schema: the grammar makes the output valid whatever the
 * weights). Pulls go to the local fake hub. Token counts are compared with the OpenAI dialect's.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Ollama, type ChatResponse, type ProgressResponse } from "ollama";
import { writeChatFamilyModel } from "../../src/gguf/chat-families.js";
import { startFakeHub, type FakeHub } from "../helpers/fake-hub.js";
import { NO_LLAMA_SERVER, testLlamaServerBinary } from "../helpers/llama-server.js";
import { testModel } from "../helpers/models.js";
import { getJson, startTestServer, waitFor, type TestServer } from "../helpers/server.js";

const json = { "content-type": "application/json" };
const binary = testLlamaServerBinary();

/** A bounded schema: an enum and a small integer range, so the grammar finishes without num_predict. */
const ANSWER_SCHEMA = {
  type: "object",
  properties: { city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] }, count: { type: "integer", minimum: 0, maximum: 9 } },
  required: ["city", "count"],
  additionalProperties: false,
};
const ADD_TOOL = {
  type: "function",
  function: {
    name: "add",
    description: "Adds two small integers",
    parameters: {
      type: "object",
      properties: { left: { type: "integer", minimum: 0, maximum: 9 }, right: { type: "integer", minimum: 0, maximum: 9 } },
      required: ["left", "right"],
    },
  },
};

/** The error body Ollama clients read, and its status. */
async function ollamaError(url: string, init: RequestInit): Promise<{ status: number; error: string; keys: string[] }> {
  const { status, body } = await getJson<Record<string, unknown>>(url, init);
  assert.equal(typeof body["error"], "string", `expected {error}, got ${JSON.stringify(body)}`);
  return { status, error: body["error"] as string, keys: Object.keys(body) };
}

const post = (body: unknown): RequestInit => ({ method: "POST", headers: json, body: JSON.stringify(body) });

describe("Ollama API on node-llama-cpp", () => {
  let server: TestServer;
  let client: Ollama;
  let hub: FakeHub;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "lmx-ollama-"));
    const chat = await testModel("stories260K-chatml.gguf");
    const plain = await testModel("stories260K.gguf");
    const hermes = path.join(dir, "hermes.gguf");
    await writeChatFamilyModel(hermes, "hermes", { seed: 7 });
    hub = await startFakeHub({
      repos: { "tiny/quants-GGUF": { files: { "stories-Q8_0.gguf": readFileSync(chat.path), "stories-Q4_0.gguf": readFileSync(plain.path) } } },
    });
    server = await startTestServer({
      models: [
        { id: "stories-chat", path: chat.path, context_size: 256, parallel: 2, threads: 1 },
        { id: "stories-embed", path: plain.path, type: "embedding", context_size: 256, parallel: 1, threads: 1 },
        { id: "hermes", path: hermes, context_size: 1024, parallel: 1, threads: 1 },
      ],
      discovery: { hf_cache: path.join(dir, "hf"), lmstudio: false, ollama: false },
      downloads: { hub_url: hub.url, min_free_bytes: 0 },
    });
    client = new Ollama({ host: server.url });
  });
  after(async () => {
    await server?.stop();
    await hub?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("version, and list: the models on disk with Ollama's details", async () => {
    assert.match((await client.version()).version, /^\d+\.\d+/);
    const { models } = await client.list();
    const names = models.map((m) => m.name);
    for (const id of ["stories-chat", "stories-embed", "hermes"]) assert.ok(names.includes(id), `${id} missing from ${names}`);
    const chat = models.find((m) => m.name === "stories-chat")!;
    assert.equal(chat.details.format, "gguf");
    assert.equal(chat.details.family, "llama");
    assert.ok(chat.size > 0);
    assert.match(chat.digest, /^[0-9a-f]{64}$/);
  });

  test("show: template, capabilities, context", async () => {
    const shown = await client.show({ model: "stories-chat" });
    assert.match(shown.template, /<\|im_start\|>/);
    assert.deepEqual(shown.capabilities, ["completion", "tools"]);
    assert.match(shown.parameters, /num_ctx 256/);
    assert.deepEqual((await client.show({ model: "stories-embed" })).capabilities, ["embedding"]);
  });

  const messages = [{ role: "user", content: "Once upon a time" }];
  const options = { temperature: 0, seed: 3, num_predict: 12 };

  test("chat, whole: the answer, done_reason and the counts and durations Ollama sends", async () => {
    const answer = await client.chat({ model: "stories-chat", messages, options, stream: false });
    assert.equal(answer.message.role, "assistant");
    assert.ok(answer.message.content.length > 0);
    assert.equal(answer.done, true);
    assert.ok(["stop", "length"].includes(answer.done_reason));
    assert.ok(answer.prompt_eval_count > 0);
    assert.ok(answer.eval_count > 0 && answer.eval_count <= 12);
    for (const key of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration"] as const) {
      assert.ok(Number.isInteger(answer[key]) && answer[key] >= 0, `${key} = ${answer[key]}`);
    }
    assert.ok(answer.total_duration > 0);
  });

  test("chat, streamed: NDJSON pieces, then one done object; the same text as whole", async () => {
    const whole = await client.chat({ model: "stories-chat", messages, options, stream: false });
    const parts: ChatResponse[] = [];
    for await (const part of await client.chat({ model: "stories-chat", messages, options, stream: true })) parts.push(part);
    assert.ok(parts.length >= 2);
    const last = parts.at(-1)!;
    assert.equal(last.done, true);
    assert.ok(parts.slice(0, -1).every((p) => p.done === false));
    assert.equal(parts.map((p) => p.message.content).join(""), whole.message.content);
    assert.equal(last.eval_count, whole.eval_count);
    assert.equal(last.prompt_eval_count, whole.prompt_eval_count);
    const res = await fetch(`${server.url}/api/chat`, post({ model: "stories-chat", messages, options }));
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    const lines = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { done: boolean });
    assert.equal(lines.at(-1)!.done, true);
  });

  test("token counts equal the OpenAI dialect's for the same prompt (chat and raw generate)", async () => {
    const ollama = await client.chat({ model: "stories-chat", messages, options, stream: false });
    // through the chat layer on both sides (logprobs takes /v1 there): node-llama-cpp's own template path, which
    // plain /v1 chat uses on this engine, renders the ChatML prompt one token longer (see the report)
    const openai = await getJson<{ usage: { prompt_tokens: number; completion_tokens: number } }>(
      `${server.url}/v1/chat/completions`,
      post({ model: "stories-chat", messages, temperature: 0, seed: 3, max_tokens: 12, logprobs: true }),
    );
    assert.equal(openai.status, 200);
    assert.equal(ollama.prompt_eval_count, openai.body.usage.prompt_tokens);
    assert.equal(ollama.eval_count, openai.body.usage.completion_tokens);
    const prompt = "Once upon a time there was";
    const raw = await client.generate({ model: "stories-chat", prompt, raw: true, options, stream: false });
    const completion = await getJson<{ usage: { prompt_tokens: number; completion_tokens: number }; choices: Array<{ text: string }> }>(
      `${server.url}/v1/completions`,
      post({ model: "stories-chat", prompt, temperature: 0, seed: 3, max_tokens: 12 }),
    );
    assert.equal(raw.prompt_eval_count, completion.body.usage.prompt_tokens);
    assert.equal(raw.eval_count, completion.body.usage.completion_tokens);
    assert.equal(raw.response, completion.body.choices[0]!.text);
  });

  test("generate: the template applied to system + prompt, streamed by default", async () => {
    const whole = await client.generate({ model: "stories-chat", system: "You tell stories.", prompt: "A cat", options, stream: false });
    assert.ok((whole.response ?? "").length > 0);
    assert.equal(whole.done, true);
    let text = "";
    let last = null;
    for await (const part of await client.generate({ model: "stories-chat", system: "You tell stories.", prompt: "A cat", options, stream: true })) {
      text += part.response;
      last = part;
    }
    assert.equal(text, whole.response);
    assert.equal(last?.done, true);
    // the template adds the ChatML markers: more prompt tokens than the raw prompt
    const raw = await client.generate({ model: "stories-chat", prompt: "A cat", raw: true, options, stream: false });
    assert.ok(whole.prompt_eval_count > raw.prompt_eval_count);
  });

  test("ps: the loaded models with memory, expiry and context", async () => {
    await client.chat({ model: "stories-chat", messages, options, stream: false });
    const { models } = await client.ps();
    const chat = models.find((m) => m.name === "stories-chat");
    assert.ok(chat, `stories-chat not in ${JSON.stringify(models)}`);
    assert.ok(chat.size > 0);
    assert.ok(!Number.isNaN(new Date(chat.expires_at).getTime()));
    assert.equal((chat as unknown as { context_length: number }).context_length, 256);
  });

  test("embed and embeddings: the runner's vectors, reshaped", async () => {
    const embedded = await client.embed({ model: "stories-embed", input: ["a little girl", "a big dog"] });
    assert.equal(embedded.embeddings.length, 2);
    const dims = embedded.embeddings[0]!.length;
    assert.ok(dims > 0);
    assert.ok(embedded.prompt_eval_count > 0);
    const openai = await getJson<{ data: Array<{ embedding: number[] }> }>(
      `${server.url}/v1/embeddings`,
      post({ model: "stories-embed", input: ["a little girl", "a big dog"], encoding_format: "float" }),
    );
    openai.body.data.forEach((d, i) => d.embedding.forEach((v, j) => assert.ok(Math.abs(v - embedded.embeddings[i]![j]!) < 1e-6)));
    const legacy = await client.embeddings({ model: "stories-embed", prompt: "a little girl" });
    assert.equal(legacy.embedding.length, dims);
    await assert.rejects(client.embed({ model: "stories-chat", input: "x" }), (e: Error & { status_code?: number }) => e.status_code === 400);
  });

  test("format: a bounded JSON schema is what the answer matches (Hermes template)", async () => {
    for (const seed of [1, 2]) {
      const answer = await client.chat({
        model: "hermes",
        messages: [{ role: "user", content: "Which city?" }],
        format: ANSWER_SCHEMA,
        options: { temperature: 1, seed },
        stream: false,
      });
      const value = JSON.parse(answer.message.content) as { city: string; count: number };
      assert.ok(["Paris", "Tokyo", "Lima"].includes(value.city));
      assert.ok(Number.isInteger(value.count) && value.count >= 0 && value.count <= 9);
    }
  });

  test("tools: calls come back as {function:{name, arguments: object}}; a tool history is rendered", async () => {
    const answer = await client.chat({
      model: "hermes",
      messages: [{ role: "user", content: "Add 2 and 3" }],
      tools: [ADD_TOOL],
      options: { temperature: 0, seed: 1, num_predict: 60 },
      stream: false,
    });
    for (const call of answer.message.tool_calls ?? []) {
      assert.equal(call.function.name, "add");
      assert.equal(typeof call.function.arguments, "object");
    }
    assert.ok(!answer.message.content.includes("<tool_call>") || (answer.message.tool_calls ?? []).length === 0);
    const followUp = await client.chat({
      model: "hermes",
      messages: [
        { role: "user", content: "Add 2 and 3" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "add", arguments: { left: 2, right: 3 } } }] },
        { role: "tool", content: "5", tool_name: "add" },
      ],
      tools: [ADD_TOOL],
      format: ANSWER_SCHEMA,
      options: { temperature: 0, seed: 1 },
      stream: false,
    });
    assert.equal(followUp.done, true);
    JSON.parse(followUp.message.content);
  });

  test("num_ctx larger than the loaded context reloads the model with it, never truncates", async () => {
    await client.chat({ model: "stories-chat", messages, options, stream: false });
    const answer = await client.chat({ model: "stories-chat", messages, options: { ...options, num_ctx: 512 }, stream: false });
    assert.equal(answer.done, true);
    const loaded = (await client.ps()).models.find((m) => m.name === "stories-chat") as unknown as { context_length: number };
    assert.equal(loaded.context_length, 512);
    // smaller than loaded: served as loaded
    await client.chat({ model: "stories-chat", messages, options: { ...options, num_ctx: 128 }, stream: false });
    assert.equal(((await client.ps()).models.find((m) => m.name === "stories-chat") as unknown as { context_length: number }).context_length, 512);
  });

  test("keep_alive 0 unloads the model after the answer; an empty chat only loads it", async () => {
    const loaded = await client.chat({ model: "stories-chat", messages: [], stream: false });
    assert.equal(loaded.done_reason, "load");
    await client.chat({ model: "stories-chat", messages, options, keep_alive: 0, stream: false });
    await waitFor(async () => !(await client.ps()).models.some((m) => m.name === "stories-chat"), 20_000, "stories-chat unloaded");
    // an empty chat with keep_alive 0 unloads, and loads nothing that was not loaded
    const unloaded = await client.chat({ model: "stories-chat", messages: [], keep_alive: 0, stream: false });
    assert.equal(unloaded.done_reason, "unload");
    assert.ok(!(await client.ps()).models.some((m) => m.name === "stories-chat"));
  });

  test("bad input: Ollama's {error} body and the right status", async () => {
    const unknownOption = await ollamaError(`${server.url}/api/chat`, post({ model: "stories-chat", messages, options: { mirostat: 2 } }));
    assert.equal(unknownOption.status, 400);
    assert.match(unknownOption.error, /options\.mirostat/);
    assert.deepEqual(unknownOption.keys.sort(), ["code", "error"]);
    assert.equal((await ollamaError(`${server.url}/api/chat`, post({ messages }))).status, 400);
    const missing = await ollamaError(`${server.url}/api/generate`, post({ model: "no-such-model", prompt: "x" }));
    assert.equal(missing.status, 404);
    assert.equal((await ollamaError(`${server.url}/api/chat`, post({ model: "stories-embed", messages }))).status, 400);
    assert.equal(
      (await ollamaError(`${server.url}/api/chat`, post({ model: "stories-chat", messages: [{ role: "user", content: "x", images: ["aGk="] }] })))
        .status,
      400,
    );
    assert.equal((await ollamaError(`${server.url}/api/chat`, post({ model: "stories-chat", messages, format: "xml" }))).status, 400);
    assert.equal((await ollamaError(`${server.url}/api/chat`, post({ model: "stories-chat", messages, keep_alive: "soon" }))).status, 400);
    assert.equal((await ollamaError(`${server.url}/api/nothing`, { method: "GET" })).status, 404);
    const priority = await ollamaError(`${server.url}/api/chat`, {
      ...post({ model: "stories-chat", messages }),
      headers: { ...json, "x-priority": "urgent" },
    });
    assert.equal(priority.status, 400);
    assert.match(priority.error, /x-priority/);
    await assert.rejects(
      client.chat({ model: "stories-chat", messages, options: { num_thread: 2 } }),
      (e: Error & { status_code?: number }) => e.status_code === 400 && /num_thread/.test(e.message),
    );
  });

  test("pull: NDJSON progress from our downloader against the hub, then list, chat, delete", async () => {
    const progress: ProgressResponse[] = [];
    for await (const part of await client.pull({ model: "hf.co/tiny/quants-GGUF:Q8_0", stream: true })) progress.push(part);
    assert.equal(progress[0]!.status, "pulling manifest");
    assert.equal(progress.at(-1)!.status, "success");
    const file = progress.filter((p) => p.status === "pulling stories-Q8_0.gguf");
    assert.ok(file.length >= 1);
    assert.ok(file.every((p) => p.total > 0 && p.completed <= p.total));
    assert.equal(file.at(-1)!.completed, file.at(-1)!.total);
    assert.ok(!progress.some((p) => p.status.includes("Q4_0")), "only the asked quantization is fetched");
    // listed under the repo's id (its one GGUF); the name it was pulled by serves too
    const names = (await client.list()).models.map((m) => m.name);
    assert.ok(names.includes("tiny/quants-GGUF"), `${names}`);
    const answer = await client.chat({ model: "hf.co/tiny/quants-GGUF:Q8_0", messages, options, stream: false });
    assert.equal(answer.done, true);
    // deleting needs no admin key here (none configured) and removes the files
    await client.delete({ model: "hf.co/tiny/quants-GGUF:Q8_0" });
    assert.ok(!(await client.list()).models.some((m) => m.name.startsWith("tiny/quants-GGUF")));
    assert.equal((await ollamaError(`${server.url}/api/show`, post({ model: "tiny/quants-GGUF" }))).status, 404);
    const unknown = await ollamaError(`${server.url}/api/pull`, post({ model: "tiny/absent-GGUF:Q8_0" }));
    assert.equal(unknown.status, 404);
    assert.equal((await ollamaError(`${server.url}/api/pull`, post({ model: "llama3" }))).status, 400);
    assert.equal(
      (await ollamaError(`${server.url}/api/delete`, { method: "DELETE", headers: json, body: JSON.stringify({ model: "stories-chat" }) })).status,
      400,
    );
  });
});

describe("Ollama API: num_ctx refused when reloads are not allowed, admin key for delete, API keys", () => {
  let server: TestServer;
  before(async () => {
    const chat = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({
      models: [{ id: "stories-chat", path: chat.path, context_size: 256, parallel: 1, threads: 1 }],
      ollama: { allow_context_reload: false, port: 0 },
      api_keys: ["sk-test-key-1234"],
      admin_key: "admin-key-1234",
    });
  });
  after(async () => server?.stop());

  test("a larger num_ctx is a 400 naming the switch; the server's own size serves", async () => {
    const client = new Ollama({ host: server.url, headers: { authorization: "Bearer sk-test-key-1234" } });
    await assert.rejects(
      client.chat({ model: "stories-chat", messages: [{ role: "user", content: "hi" }], options: { num_ctx: 4096 } }),
      (e: Error & { status_code?: number }) => e.status_code === 400 && /allow_context_reload/.test(e.message),
    );
    const answer = await client.chat({
      model: "stories-chat",
      messages: [{ role: "user", content: "hi" }],
      options: { num_ctx: 256, num_predict: 4 },
    });
    assert.equal(answer.done, true);
  });

  test("the Ollama port (ollama.port) serves the same app, keys included", async () => {
    assert.ok(server.ollamaUrl && server.ollamaUrl !== server.url);
    const client = new Ollama({ host: server.ollamaUrl, headers: { authorization: "Bearer sk-test-key-1234" } });
    assert.ok((await client.list()).models.some((m) => m.name === "stories-chat"));
    assert.equal((await ollamaError(`${server.ollamaUrl}/api/tags`, { method: "GET" })).status, 401);
  });

  test("without the API key: 401 {error}; delete without the admin key: 401", async () => {
    assert.equal((await ollamaError(`${server.url}/api/tags`, { method: "GET" })).status, 401);
    const del = await ollamaError(`${server.url}/api/delete`, {
      method: "DELETE",
      headers: { ...json, authorization: "Bearer sk-test-key-1234" },
      body: JSON.stringify({ model: "stories-chat" }),
    });
    assert.equal(del.status, 401);
  });
});

describe("Ollama API on llama-server", { skip: binary ? false : NO_LLAMA_SERVER }, () => {
  let server: TestServer;
  let client: Ollama;
  before(async () => {
    const chat = await testModel("stories260K-chatml.gguf");
    server = await startTestServer({
      backends: { llama_server: binary!, cpu_fallback: false },
      models: [{ id: "stories-chat", path: chat.path, context_size: 256, parallel: 1, threads: 1 }],
    });
    client = new Ollama({ host: server.url });
  });
  after(async () => server?.stop());

  test("chat whole and streamed, generate, and the same counts as the OpenAI dialect", async () => {
    const messages = [{ role: "user", content: "Once upon a time" }];
    const options = { temperature: 0, seed: 3, num_predict: 10 };
    const whole = await client.chat({ model: "stories-chat", messages, options, stream: false });
    let text = "";
    for await (const part of await client.chat({ model: "stories-chat", messages, options, stream: true })) text += part.message.content;
    assert.equal(text, whole.message.content);
    const openai = await getJson<{ usage: { prompt_tokens: number; completion_tokens: number } }>(
      `${server.url}/v1/chat/completions`,
      post({ model: "stories-chat", messages, temperature: 0, seed: 3, max_tokens: 10 }),
    );
    assert.equal(whole.prompt_eval_count, openai.body.usage.prompt_tokens);
    assert.equal(whole.eval_count, openai.body.usage.completion_tokens);
    const generated = await client.generate({ model: "stories-chat", prompt: "A cat", options, stream: false });
    assert.ok(generated.eval_count > 0);
  });
});
