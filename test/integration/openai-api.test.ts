/**
 * The OpenAI surface against a real gateway and real runners on the real tiny models, through the official
 * `openai` npm client.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import OpenAI from "openai";
import { startTestServer, getJson, type TestServer } from "../helpers/server.js";
import { testModel, type TestModel } from "../helpers/models.js";

let server: TestServer;
let client: OpenAI;
let chatModel: TestModel;
let storyModel: TestModel;

const hello = [{ role: "user" as const, content: "Tell me a story about a dog." }];

before(async () => {
  chatModel = await testModel("stories260K-chatml.gguf");
  storyModel = await testModel("stories260K.gguf");
  server = await startTestServer({
    models: [
      { id: "stories-chat", path: chatModel.path, parallel: 2, context_size: 512 },
      { id: "stories", path: storyModel.path, parallel: 2, context_size: 512, aliases: ["stories-alias"] },
      { id: "stories-embed", path: storyModel.path, type: "embedding", parallel: 1, context_size: 256 },
    ],
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
});

after(async () => {
  await server?.stop();
});

describe("chat completions", () => {
  test("non-streamed greedy answers are deterministic and have honest usage", async () => {
    const first = await client.chat.completions.create({ model: "stories-chat", messages: hello, max_tokens: 24, temperature: 0 });
    const second = await client.chat.completions.create({ model: "stories-chat", messages: hello, max_tokens: 24, temperature: 0 });
    const text = first.choices[0]?.message.content ?? "";
    assert.ok(text.length > 0, "the model answered");
    assert.equal(second.choices[0]?.message.content, text, "greedy output is the same on a second run");
    assert.equal(first.choices[0]?.finish_reason, "length");
    assert.equal(first.object, "chat.completion");
    assert.equal(first.model, "stories-chat");
    assert.equal(first.usage?.completion_tokens, 24);
    assert.equal(first.usage?.total_tokens, (first.usage?.prompt_tokens ?? 0) + 24);

    // prompt_tokens must match the tokenizer on the ChatML rendering of the conversation
    const llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: chatModel.path });
    // Template text is tokenized with special tokens; the user's text is tokenized as plain text, so a user
    // who types "<|im_end|>" cannot inject a control token. Count the same way here, independently.
    const expected = [
      ...model.tokenize("<|im_start|>user\n", true),
      ...model.tokenize("Tell me a story about a dog.", false),
      ...model.tokenize("<|im_end|>\n<|im_start|>assistant\n", true),
    ];
    const withBos = model.tokens.shouldPrependBosToken && model.tokens.bos !== null ? expected.length + 1 : expected.length;
    assert.equal(first.usage?.prompt_tokens, withBos, "prompt_tokens equals the tokenizer's count of the rendered template");
    assert.equal(model.tokenize(text, false).length <= 24, true);
    await model.dispose();
    await llama.dispose();
  });

  test("streamed output equals non-streamed output, with usage when asked", async () => {
    const plain = await client.chat.completions.create({ model: "stories-chat", messages: hello, max_tokens: 20, temperature: 0 });
    const stream = await client.chat.completions.create({
      model: "stories-chat",
      messages: hello,
      max_tokens: 20,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, plain.choices[0]?.message.content);
    assert.equal(finish, "length");
    assert.ok(chunks > 5, "tokens arrive as separate chunks");
    assert.equal(usage?.completion_tokens, 20);
    assert.equal(usage?.prompt_tokens, plain.usage?.prompt_tokens);
  });

  test("stop strings end the answer before the stop text, with finish_reason stop", async () => {
    const plain = await client.chat.completions.create({ model: "stories-chat", messages: hello, max_tokens: 30, temperature: 0 });
    const text = plain.choices[0]?.message.content ?? "";
    const words = text.trim().split(/\s+/);
    assert.ok(words.length >= 4, `need a few words to pick a stop from: ${JSON.stringify(text)}`);
    const stopWord = ` ${words[3]}`;
    const cut = text.indexOf(stopWord);
    const stopped = await client.chat.completions.create({
      model: "stories-chat",
      messages: hello,
      max_tokens: 30,
      temperature: 0,
      stop: [stopWord],
    });
    assert.equal(stopped.choices[0]?.finish_reason, "stop");
    assert.equal(stopped.choices[0]?.message.content, text.slice(0, cut));
  });

  test("a repeated long prompt reuses the KV cache and reports cached_tokens", async () => {
    const long = "Once upon a time there was a little girl who loved to play in the park with her dog. ".repeat(4);
    const messages = [
      { role: "system" as const, content: long },
      { role: "user" as const, content: "What happened next?" },
    ];
    const first = await getJson<{
      usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
      timings: { prompt_n: number };
    }>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories-chat", messages, max_tokens: 4, temperature: 0 }),
    });
    const second = await getJson<typeof first.body>(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories-chat", messages, max_tokens: 4, temperature: 0 }),
    });
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    assert.equal(second.body.usage.prompt_tokens, first.body.usage.prompt_tokens);
    assert.ok(second.body.usage.prompt_tokens_details.cached_tokens > 100, "most of the prompt came from the cache");
    assert.ok(second.body.timings.prompt_n < first.body.timings.prompt_n, "fewer prompt tokens were evaluated the second time");
    assert.equal(second.body.timings.prompt_n, second.body.usage.prompt_tokens - second.body.usage.prompt_tokens_details.cached_tokens);
  });

  test("a prompt longer than the context is refused, never truncated", async () => {
    await assert.rejects(
      client.chat.completions.create({ model: "stories-chat", messages: [{ role: "user", content: "word ".repeat(2000) }] }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && (error.error as { code?: string }).code === "context_length_exceeded",
    );
    await assert.rejects(
      client.chat.completions.create({ model: "stories-chat", messages: hello, max_tokens: 100_000 }),
      (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === "max_tokens",
    );
  });
});

describe("completions", () => {
  test("continues 'Once upon a time' like the real model does", async () => {
    const result = await client.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
    const text = result.choices[0]?.text ?? "";
    assert.equal(result.object, "text_completion");
    assert.equal(result.usage?.completion_tokens, 12);
    if (storyModel.real) assert.ok(text.startsWith(", there was a little girl named Lily"), `got ${JSON.stringify(text)}`);
    else assert.ok(text.length > 0);
  });

  test("streams the same text, and an alias reaches the same model", async () => {
    const plain = await client.completions.create({ model: "stories", prompt: "Once upon a time", max_tokens: 12, temperature: 0 });
    const stream = await client.completions.create({
      model: "stories-alias",
      prompt: "Once upon a time",
      max_tokens: 12,
      temperature: 0,
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    assert.equal(text, plain.choices[0]?.text);
  });
});

describe("embeddings", () => {
  test("float and base64 vectors agree; lists embed every input", async () => {
    const floats = await client.embeddings.create({ model: "stories-embed", input: ["a little girl", "a big dog"], encoding_format: "float" });
    assert.equal(floats.data.length, 2);
    const dims = floats.data[0]?.embedding.length ?? 0;
    assert.ok(dims > 0);
    assert.ok(floats.usage.prompt_tokens > 0);
    const raw = await getJson<{ data: Array<{ embedding: string }> }>(`${server.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories-embed", input: "a little girl", encoding_format: "base64" }),
    });
    const bytes = Buffer.from(raw.body.data[0]?.embedding ?? "", "base64");
    const decoded = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    assert.equal(decoded.length, dims);
    floats.data[0]?.embedding.forEach((v, i) => assert.ok(Math.abs(v - (decoded[i] ?? NaN)) < 1e-6));
  });

  test("a chat model refuses embeddings and an embedding model refuses chat", async () => {
    await assert.rejects(client.embeddings.create({ model: "stories-chat", input: "x" }), OpenAI.BadRequestError);
    await assert.rejects(client.chat.completions.create({ model: "stories-embed", messages: hello }), OpenAI.BadRequestError);
  });
});

describe("models", () => {
  test("lists every model with its status; unknown ids are 404", async () => {
    const list = await getJson<{ data: Array<{ id: string; status: string }> }>(`${server.url}/v1/models`);
    const ids = list.body.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ["stories", "stories-chat", "stories-embed"]);
    assert.ok(list.body.data.every((m) => ["loaded", "loading", "available"].includes(m.status)));
    const one = await getJson<{ id: string; status: string }>(`${server.url}/v1/models/stories-chat`);
    assert.equal(one.body.status, "loaded");
    const missing = await getJson<{ error: { code: string } }>(`${server.url}/v1/models/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "model_not_found");
    await assert.rejects(client.chat.completions.create({ model: "nope", messages: hello }), OpenAI.NotFoundError);
  });
});
